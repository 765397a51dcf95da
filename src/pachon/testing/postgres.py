"""A throw-away PostgreSQL server for tests and benchmarks.

Starts a private cluster from the Debian ``postgresql`` binaries in a temporary folder, on a
free loopback port, with ``trust`` authentication and ``fsync=off`` (fast, never for real data).
When run as root, the server runs as the ``postgres`` system user, since ``initdb`` refuses root.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from pachon.core.errors import ConfigError

__all__ = ["TemporaryPostgres", "find_postgres_bin"]

_log = logging.getLogger(__name__)


def find_postgres_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (newest Debian version first), or None."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TemporaryPostgres:
    """A private PostgreSQL cluster; use as a context manager.

    Parameters
    ----------
    bindir
        Folder with the server binaries; found with `find_postgres_bin` when None.

    Raises
    ------
    ConfigError
        No PostgreSQL server binaries are installed.
    """

    def __init__(self, bindir: Path | None = None) -> None:
        found = bindir or find_postgres_bin()
        if found is None:
            raise ConfigError("no PostgreSQL server binaries found; install them: apt-get install postgresql")
        self.bindir = found
        self.root = Path(tempfile.mkdtemp(prefix="pachon-pg-"))
        self.datadir = self.root / "data"
        self.port = _free_port()
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            self._prefix = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")
            os.chmod(self.root, 0o700)

    def _run(self, *args: str) -> None:
        subprocess.run([*self._prefix, *args], check=True, capture_output=True, cwd=self.root)

    def start(self) -> TemporaryPostgres:
        """Create the cluster and start the server (waits until it accepts connections)."""
        self._run(str(self.bindir / "initdb"), "-D", str(self.datadir), "-A", "trust", "-U", "postgres")
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-w",
            "-l", str(self.root / "server.log"), "-o", options, "start",
        )
        _log.info("PostgreSQL started on 127.0.0.1:%d (%s)", self.port, self.datadir)
        return self

    def stop(self) -> None:
        """Stop the server and delete the cluster."""
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop")
        except subprocess.CalledProcessError as exc:
            _log.warning("pg_ctl stop failed: %s", exc.stderr.decode(errors="replace"))
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the maintenance database ``postgres``."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        import sqlalchemy

        admin = sqlalchemy.create_engine(self.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return f"{self.url.rsplit('/', 1)[0]}/{name}"

    def __enter__(self) -> TemporaryPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""Shared test fixtures: real-data location and a real PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real telescope data folder ``../shared/data``; skip where it is absent."""
    path = SHARED_DATA.resolve()
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent (see ../shared/data/README.md)")
    return path


def _find_pg_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _PostgresServer:
    """A throw-away PostgreSQL cluster in a temporary folder, on a loopback port."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="pachon-pg-"))
        self.datadir = self.root / "data"
        self.port = _free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            # initdb refuses to run as root: run the server as the Debian 'postgres' user.
            self.prefix = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")
            os.chmod(self.root, 0o700)

    def _run(self, *args: str) -> None:
        subprocess.run([*self.prefix, *args], check=True, capture_output=True, cwd=self.root)

    def start(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.datadir), "-A", "trust", "-U", "postgres")
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-w", "-l", str(self.root / "log"),
            "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off",
            "start",
        )

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of a real PostgreSQL server's maintenance database.

    ``PACHON_TEST_POSTGRES_URL`` points at an existing server; otherwise a private server is
    started from the Debian ``postgresql`` binaries and stopped at the end of the session.
    """
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'pachon[postgres]')")
    url = os.environ.get("PACHON_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    bindir = _find_pg_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql) and no PACHON_TEST_POSTGRES_URL")
    server = _PostgresServer(bindir)
    try:
        server.start()
    except subprocess.CalledProcessError as exc:
        server.stop()
        pytest.fail(f"could not start PostgreSQL from {bindir}: {exc.stderr.decode(errors='replace')}")
    time.sleep(0.1)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database that is dropped after the test."""
    import sqlalchemy

    name = f"pachon_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    base = postgres_server_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
            ), {"n": name})
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()

"""Shared test fixtures: real-data location and a real PostgreSQL server."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"

# Tests run in importlib mode (test files in different folders share base names such as
# test_cli.py); helper modules beside the tests (``*_helpers.py``) are imported by name, so
# every test folder is put on the path here, once.
for _folder in sorted(p for p in Path(__file__).resolve().parent.rglob("*") if p.is_dir()):
    if _folder.name != "__pycache__" and str(_folder) not in sys.path:
        sys.path.append(str(_folder))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real telescope data folder ``../shared/data``; skip where it is absent."""
    path = SHARED_DATA.resolve()
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent (see ../shared/data/README.md)")
    return path


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
    from pachon.testing.postgres import TemporaryPostgres, find_postgres_bin

    bindir = find_postgres_bin()
    if bindir is None:
        pytest.skip(
            "no PostgreSQL server binaries (apt-get install postgresql) and no PACHON_TEST_POSTGRES_URL"
        )
    server = TemporaryPostgres(bindir)
    try:
        server.start()
    except subprocess.CalledProcessError as exc:
        server.stop()
        pytest.fail(f"could not start PostgreSQL from {bindir}: {exc.stderr.decode(errors='replace')}")
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

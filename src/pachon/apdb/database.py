"""Engine creation and write transactions for the APDB, on SQLite and PostgreSQL.

Writers are serialized: on SQLite a write transaction starts with ``BEGIN IMMEDIATE`` (other
writers wait on the busy timeout, WAL lets readers go on); on PostgreSQL it takes a
transaction-level advisory lock.  A store is small (one detector of one visit, milliseconds),
so serializing them costs little and makes the DiaObject version bookkeeping safe when two
detectors of a visit update the same object.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from pachon.apdb.tables import make_metadata
from pachon.core.errors import RepositoryError

__all__ = ["connect", "write_transaction", "create_tables"]

log = logging.getLogger(__name__)

_ADVISORY_KEY = 0x41504442  # "APDB"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.close()
    dbapi_conn.isolation_level = None  # transactions are opened by _sqlite_begin


def _sqlite_begin(conn: Any) -> None:
    write = conn.get_execution_options().get("apdb_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def connect(url: str) -> Any:
    """Create the SQLAlchemy engine of an APDB URL.

    Parameters
    ----------
    url
        ``sqlite:///path/apdb.sqlite3`` or ``postgresql+psycopg://user@host/db``.

    Returns
    -------
    sqlalchemy.Engine
    """
    import sqlalchemy as sa

    try:
        if url.startswith("sqlite"):
            engine = sa.create_engine(url, connect_args={"timeout": 60})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            sa.event.listen(engine, "begin", _sqlite_begin)
        else:
            engine = sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ModuleNotFoundError) as exc:
        raise RepositoryError(
            f"cannot open APDB URL {url!r}: {exc}; use sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST/DB (pip install 'pachon[postgres]')"
        ) from exc
    return engine


@contextlib.contextmanager
def write_transaction(engine: Any) -> Iterator[Any]:
    """A write transaction, serialized against every other APDB writer.

    Parameters
    ----------
    engine
        Engine from :func:`connect`.

    Yields
    ------
    sqlalchemy.Connection
        Committed on normal exit, rolled back on an exception.
    """
    import sqlalchemy as sa

    with engine.execution_options(apdb_write=True).begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY})
        yield conn


def create_tables(engine: Any) -> None:
    """Create the APDB tables that do not exist yet (safe with concurrent callers).

    Parameters
    ----------
    engine
        Engine from :func:`connect`.
    """
    import sqlalchemy as sa

    metadata = make_metadata()
    try:
        with write_transaction(engine) as conn:
            metadata.create_all(conn, checkfirst=True)
    except sa.exc.SQLAlchemyError as exc:
        raise RepositoryError(
            f"cannot create the APDB tables in {engine.url!r}: {exc}; check the URL and "
            "that the database user may create tables"
        ) from exc

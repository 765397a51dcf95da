"""Engine creation and transactions: one code path for SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import sqlalchemy as sa

from pachon.core.errors import RepositoryError
from pachon.repo.registry.tables import make_metadata

__all__ = ["Database"]

_log = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - SQLAlchemy event signature
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
    # pysqlite would open transactions itself; let the "begin" event below do it
    dbapi_conn.isolation_level = None


def _sqlite_begin(conn: sa.Connection) -> None:
    # writers take the lock at BEGIN so concurrent writers queue (busy timeout) instead of
    # failing on lock upgrade; readers use a deferred transaction
    write = conn.get_execution_options().get("pachon_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Database:
    """An SQLAlchemy engine, the registry tables and a re-entrant transaction.

    Parameters
    ----------
    url
        SQLAlchemy URL: ``sqlite:///path`` or ``postgresql+psycopg://user@host/db``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        try:
            if self.is_sqlite:
                self.engine = sa.create_engine(url, connect_args={"timeout": 30}, enable_from_linting=False)
                sa.event.listen(self.engine, "connect", _sqlite_pragmas)
                sa.event.listen(self.engine, "begin", _sqlite_begin)
            else:
                self.engine = sa.create_engine(url, pool_pre_ping=True, enable_from_linting=False)
        except (sa.exc.ArgumentError, ModuleNotFoundError) as exc:
            raise RepositoryError(f"cannot use registry URL {url!r}: {exc}") from exc
        self._writer = self.engine.execution_options(pachon_write=True)
        self.metadata = make_metadata()
        self.tables = self.metadata.tables
        self._conn: sa.Connection | None = None
        self._grown = 0

    #: Rows inserted by this process after which the planner statistics are refreshed.
    ANALYZE_EVERY = 20_000

    def note_growth(self, rows: int) -> None:
        """Count inserted rows; refresh planner statistics (ANALYZE) after large growth.

        Without statistics, SQLite picks the low-selectivity ``run_id`` index for data-ID
        lookups once a run holds 10^5 datasets (100x slower: measured in
        ``benchmarks/bench_repo.py``); PostgreSQL's autovacuum catches up only later.
        """
        self._grown += rows
        if self._grown >= self.ANALYZE_EVERY and self._conn is None:
            self.analyze()

    def analyze(self) -> None:
        """Refresh the query planner's statistics of every registry table."""
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn.exec_driver_sql("ANALYZE")
            else:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
            conn.commit()
        self._grown = 0
        _log.debug("refreshed planner statistics of %s", self.url)

    def create_tables(self) -> None:
        """Create every table (no-op for those that exist)."""
        try:
            self.metadata.create_all(self.engine)
        except sa.exc.OperationalError as exc:
            raise RepositoryError(f"cannot create the registry tables at {self.url!r}: {exc}") from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A connection inside one transaction; nested calls join the outer one.

        Everything done inside commits together or, on an exception, not at all.
        """
        if self._conn is not None:
            yield self._conn
            return
        with self._writer.begin() as conn:
            self._conn = conn
            try:
                yield conn
            finally:
                self._conn = None

    @contextlib.contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A connection for reads (the open transaction's, if any)."""
        if self._conn is not None:
            yield self._conn
            return
        with self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        """Close pooled connections (call in a forked child before use)."""
        self.engine.dispose(close=False)

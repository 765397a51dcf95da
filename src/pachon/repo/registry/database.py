"""Engine creation and transactions: one code path for SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import sqlalchemy as sa

from pachon.core.errors import RepositoryError
from pachon.repo.registry.tables import SCHEMA_VERSION, make_metadata

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

    def sqlite_file(self) -> str | None:
        """The SQLite database file (None for other back ends or an in-memory database)."""
        if not self.is_sqlite:
            return None
        name = sa.engine.make_url(self.url).database
        return None if not name or name == ":memory:" else name

    def create_tables(self) -> None:
        """Create every table (no-op for those that exist)."""
        try:
            self.metadata.create_all(self.engine)
        except sa.exc.DBAPIError as exc:
            raise RepositoryError(f"cannot create the registry tables at {self.safe_url}: {exc}") from exc

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages."""
        try:
            return repr(sa.engine.make_url(self.url).render_as_string(hide_password=True))
        except sa.exc.ArgumentError:
            return repr(self.url)

    def create_registry(self) -> str:
        """Create the tables of a new registry and record its creation id.

        Returns
        -------
        creation_id
            A new UUID identifying this registry.

        Raises
        ------
        RepositoryError
            The database already holds a registry (or is unreachable).
        """
        import datetime
        import uuid

        try:
            existing = sa.inspect(self.engine).get_table_names()
        except sa.exc.DBAPIError as exc:
            raise RepositoryError(f"cannot reach the registry database {self.safe_url}: {exc}") from exc
        if "registry_meta" in existing or "dataset" in existing:
            meta = self.read_meta() if "registry_meta" in existing else {}
            raise RepositoryError(
                f"the database {self.safe_url} already holds a Pachón registry (creation id "
                f"{meta.get('creation_id', 'unknown')}); open the repository that uses it, or "
                f"give a new, empty database"
            )
        self.create_tables()
        creation_id = str(uuid.uuid4())
        rows = [
            {"key": "schema_version", "value": str(SCHEMA_VERSION)},
            {"key": "creation_id", "value": creation_id},
            {"key": "created", "value": datetime.datetime.now(datetime.UTC).isoformat()},
        ]
        try:
            with self._writer.begin() as conn:
                conn.execute(self.tables["registry_meta"].insert(), rows)
        except sa.exc.IntegrityError as exc:
            raise RepositoryError(
                f"the database {self.safe_url} was made a registry by another process meanwhile"
            ) from exc
        return creation_id

    def read_meta(self) -> dict[str, str]:
        """The ``registry_meta`` rows as a dict (empty for a registry made before it existed)."""
        table = self.tables["registry_meta"]
        try:
            with self.engine.connect() as conn:
                if not sa.inspect(conn).has_table("registry_meta"):
                    return {}
                return {r.key: r.value for r in conn.execute(sa.select(table.c.key, table.c.value))}
        except sa.exc.DBAPIError as exc:
            raise RepositoryError(f"cannot read the registry at {self.safe_url}: {exc}") from exc

    def check_registry(self) -> dict[str, str]:
        """Check on open that the database holds a registry of a supported schema version.

        Raises
        ------
        RepositoryError
            The SQLite file is missing, the database holds no registry, or its schema version
            is not this software's.
        """
        path = self.sqlite_file()
        if path is not None:
            import os

            if not os.path.isfile(path):
                raise RepositoryError(
                    f"registry database file {path} is missing; restore it from a backup, or "
                    f"create a new repository (pachon repo create)"
                )
        meta = self.read_meta()
        if not meta:
            try:
                tables = set(sa.inspect(self.engine).get_table_names())
            except sa.exc.DBAPIError as exc:
                raise RepositoryError(f"cannot reach the registry database {self.safe_url}: {exc}") from exc
            if "dataset" not in tables:
                raise RepositoryError(
                    f"the database {self.safe_url} holds no Pachón registry; create a repository "
                    f"with `pachon repo create`"
                )
            _log.warning("registry %s has no registry_meta table (made by an older version)", self.safe_url)
            return meta
        version = meta.get("schema_version")
        if version != str(SCHEMA_VERSION):
            raise RepositoryError(
                f"the registry at {self.safe_url} has schema version {version}; this software "
                f"reads version {SCHEMA_VERSION}; use a matching Pachón version"
            )
        return meta

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

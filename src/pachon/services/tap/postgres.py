"""The PostgreSQL TAP back end: the served tables copied into PostgreSQL, indexed with Q3C.

For catalogs of 10^7 rows and more.  `PostgresCatalog` has the interface of the DuckDB
`~pachon.services.tap.catalogs.CatalogDatabase` (``dialect``, ``tables``, ``keys``,
``execute``, ``refresh``, ``close``) and is built from it: the DuckDB database is the staging
area (same builders, same TAP_SCHEMA, same hidden ``_pachon_run`` column), and each served table
is streamed into PostgreSQL with ``COPY ... FROM STDIN (FORMAT csv)`` in Arrow record batches.
The copy happens only when the repository changed (the staging fingerprint is kept in
``pachon_tap_admin.meta``).

Sky index: Q3C.  Each table with a position gets ``q3c_ang2ipix(ra, dec)`` B-tree indexes (one
per position column pair) and is ``CLUSTER``-ed on the first, so a cone reads a few contiguous
pages; the translator prefilters with ``q3c_radial_query``/``q3c_join`` and keeps the exact
haversine test of the DuckDB path, so both back ends return the same rows.  Q3C was preferred to
pgSphere because it indexes the plain (ra, dec) double columns the tables already have (no
``spoint`` column to add and keep in step) and a B-tree index is cheap to build; pgSphere was not
benchmarked against it.  Measured with ``benchmarks/bench_tap.py`` (10^7 rows, 2 shared cores):
load 92 s, cone (r=1', HTTP+VOTable) median 16.8 ms, p99 47 ms, 69 queries/s from 4 clients.

Read-only in the database, not only in the translator: queries run as a dedicated role
(``<database>_tap_reader``) that has only CONNECT, USAGE on the served schemas and SELECT on the
served tables, no TEMPORARY privilege, ``default_transaction_read_only = on`` and a default
``statement_timeout``; each transaction is also opened ``READ ONLY`` with a ``SET LOCAL
statement_timeout`` of the query's own limit.  Uploaded tables are passed as bound array
parameters (``unnest``) in a ``WITH`` clause the service writes, so nothing is ever created.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa

from pachon.core.errors import ConfigError, QueryError
from pachon.services.tap.catalogs import (
    _POSITION_COLUMNS,
    CatalogDatabase,
    QueryTimeoutError,
)

__all__ = ["PostgresCatalog", "libpq_url", "pg_type"]

_log = logging.getLogger(__name__)

_ADMIN_SCHEMA = "pachon_tap_admin"
_BATCH_ROWS = 200_000
_PG_TYPES = {
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "SMALLINT": "smallint",
    "TINYINT": "smallint",
    "UTINYINT": "smallint",
    "USMALLINT": "integer",
    "UINTEGER": "bigint",
    "UBIGINT": "numeric",
    "HUGEINT": "numeric",
    "DOUBLE": "double precision",
    "FLOAT": "real",
    "BOOLEAN": "boolean",
    "VARCHAR": "text",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP_NS": "timestamp",
    "TIMESTAMP_MS": "timestamp",
    "TIMESTAMP_S": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
}
#: result column type OID -> Arrow type (others come back as strings)
_ARROW_OF_OID = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    700: pa.float32(),
    701: pa.float64(),
    1700: pa.float64(),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
    1082: pa.date32(),
    17: pa.binary(),
}


def libpq_url(url: str) -> str:
    """A libpq URL from a SQLAlchemy one (``postgresql+psycopg://`` -> ``postgresql://``)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}" if sep else url


def pg_type(duck_type: str) -> tuple[str, bool]:
    """(PostgreSQL type, whether DuckDB must cast the column to VARCHAR first) of a DuckDB type."""
    t = duck_type.upper()
    if t in _PG_TYPES:
        return _PG_TYPES[t], t.startswith("TIMESTAMP")
    if t.startswith("DECIMAL"):
        return "numeric", False
    return "text", True


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgresCatalog:
    """Everything TAP serves, in PostgreSQL, queried through a read-only role.

    Parameters
    ----------
    repo
        An open `~pachon.repo.Repository`.
    data_dir
        Folder of the DuckDB staging database (``tap_stage.duckdb``).
    url
        PostgreSQL database to fill, as a user that may create schemas, roles and the ``q3c``
        extension.
    reader_role
        Role queries run as (default ``<database>_tap_reader``).
    default_timeout_s
        The reader role's default ``statement_timeout``.
    pool_size
        Idle reader connections kept open.
    apdb_url, apdb_refresh_s
        The APDB served too, and the least interval between checks of whether it changed
        (see `CatalogDatabase`); an APDB change reloads only the ``apdb`` and ``TAP_SCHEMA``
        schemas.

    Raises
    ------
    ConfigError
        psycopg or the Q3C extension is missing, or the database cannot be reached.
    """

    #: SQL dialect the translator writes for this back end.
    dialect = "postgres"

    def __init__(
        self,
        repo: Any,
        data_dir: str | Path,
        url: str,
        *,
        reader_role: str | None = None,
        default_timeout_s: float = 3600.0,
        pool_size: int = 8,
        apdb_url: str | None = None,
        apdb_refresh_s: float = 10.0,
    ) -> None:
        try:
            import psycopg
        except ImportError:
            raise ConfigError(
                "the PostgreSQL TAP back end needs psycopg: pip install 'pachon[postgres]'"
            ) from None
        self.url = libpq_url(url)
        self.dbname = psycopg.conninfo.conninfo_to_dict(self.url).get("dbname") or "postgres"
        self.reader_role = reader_role or f"{self.dbname}_tap_reader"[:63]
        self.default_timeout_s = default_timeout_s
        self.pool_size = pool_size
        self._password = secrets.token_hex(16)
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self.stage = CatalogDatabase(
            repo, data_dir, filename="tap_stage.duckdb", apdb_url=apdb_url, apdb_refresh_s=apdb_refresh_s
        )
        self.tables = self.stage.tables
        self.keys = self.stage.keys
        self._load_if_changed()

    # -- loading ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Rebuild the staging database and the PostgreSQL copy when the repository changed."""
        self.stage.refresh()
        self.tables, self.keys = self.stage.tables, self.stage.keys
        self._load_if_changed()

    def refresh_apdb(self, *, force: bool = False) -> bool:
        """Reload the APDB tables (staging, then PostgreSQL) if the APDB changed; see `CatalogDatabase`."""
        if not self.stage.refresh_apdb(force=force):
            return False
        self.tables, self.keys = self.stage.tables, self.stage.keys
        self._load_if_changed()
        return True

    def _load_if_changed(self) -> None:
        import psycopg

        cur = self.stage.cursor()
        try:
            stage_meta = dict(cur.execute("SELECT key, value FROM pachon.meta").fetchall())
        finally:
            cur.close()
        fingerprint = stage_meta["fingerprint"]
        try:
            admin = psycopg.connect(self.url)
        except psycopg.Error as exc:
            raise ConfigError(f"cannot connect to the TAP database {self.url!r}: {exc}") from None
        with admin:
            meta = self._meta(admin)
            if meta.get("fingerprint") != fingerprint:
                only = None  # only the APDB changed: reload its schema and TAP_SCHEMA
                same_repo = meta.get("repo_fingerprint") == stage_meta.get("repo_fingerprint")
                if same_repo and meta.get("repo_fingerprint"):
                    only = {"apdb", "TAP_SCHEMA"}
                self._load(admin, json.loads(meta.get("schemas", "[]")), stage_meta, only)
            self._grant(admin)
        self._drain_pool()

    def _meta(self, admin: Any) -> dict[str, str]:
        admin.execute(f"CREATE SCHEMA IF NOT EXISTS {_ADMIN_SCHEMA}")
        admin.execute(f"CREATE TABLE IF NOT EXISTS {_ADMIN_SCHEMA}.meta (key text PRIMARY KEY, value text)")
        admin.commit()
        return dict(admin.execute(f"SELECT key, value FROM {_ADMIN_SCHEMA}.meta").fetchall())

    def _load(
        self, admin: Any, old_schemas: list[str], stage_meta: dict[str, str], only: set[str] | None
    ) -> None:
        import psycopg

        try:
            admin.execute("CREATE EXTENSION IF NOT EXISTS q3c")
        except psycopg.Error as exc:
            raise ConfigError(
                f"the Q3C extension is not available in {self.dbname!r} ({str(exc).strip()}); install it "
                "on the server (apt-get install postgresql-15-q3c) and load as a superuser"
            ) from None
        admin.execute("SET maintenance_work_mem = '512MB'")
        schemas = sorted({t.schema for t in self.tables.values()})
        reload = set(schemas) | set(old_schemas)
        if only is not None:
            reload &= only
        for schema in sorted(reload):
            admin.execute(f"DROP SCHEMA IF EXISTS {_ident(schema)} CASCADE")
        for schema in sorted(reload & set(schemas)):
            admin.execute(f"CREATE SCHEMA {_ident(schema)}")
        loaded = [t for t in self.tables.values() if t.schema in reload]
        for table in loaded:
            self._copy_table(admin, table.schema, table.name)
        admin.execute(f"DELETE FROM {_ADMIN_SCHEMA}.meta")
        admin.execute(
            f"INSERT INTO {_ADMIN_SCHEMA}.meta VALUES ('fingerprint', %s), ('repo_fingerprint', %s), "
            "('schemas', %s)",
            (stage_meta["fingerprint"], stage_meta.get("repo_fingerprint", ""), json.dumps(schemas)),
        )
        admin.commit()
        for table in loaded:  # statistics for the planner (outside the transaction)
            admin.execute(f"ANALYZE {_ident(table.schema)}.{_ident(table.name)}")
        admin.commit()

    def _copy_table(self, admin: Any, schema: str, name: str) -> None:
        import pyarrow.csv as pcsv

        qualified = f"{_ident(schema)}.{_ident(name)}"
        cur = self.stage.cursor()
        try:
            described = cur.execute(f"DESCRIBE {qualified}").fetchall()
            columns = [(row[0], *pg_type(row[1])) for row in described]
            select = ", ".join(
                f"CAST({_ident(c)} AS VARCHAR) AS {_ident(c)}" if cast else _ident(c)
                for c, _, cast in columns
            )
            admin.execute(
                f"CREATE TABLE {qualified} ({', '.join(f'{_ident(c)} {t}' for c, t, _ in columns)})"
            )
            reader = cur.sql(f"SELECT {select} FROM {qualified}").to_arrow_reader(_BATCH_ROWS)
            options = pcsv.WriteOptions(include_header=False)
            with admin.cursor().copy(f"COPY {qualified} FROM STDIN (FORMAT csv)") as copy:
                for batch in reader:
                    buf = io.BytesIO()
                    pcsv.write_csv(batch, buf, options)
                    copy.write(buf.getvalue())
        finally:
            cur.close()
        names = {c for c, _, _ in columns}
        pairs = [(ra, dec) for ra, dec in _POSITION_COLUMNS if ra in names and dec in names]
        for i, (ra, dec) in enumerate(pairs):
            index = _ident(f"{name}_q3c_{ra}"[:63])
            admin.execute(f"CREATE INDEX {index} ON {qualified} (q3c_ang2ipix({_ident(ra)}, {_ident(dec)}))")
            if i == 0:
                admin.execute(f"CLUSTER {qualified} USING {index}")
        _log.info("TAP PostgreSQL table %s loaded (%d q3c indexes)", qualified, len(pairs))

    def _grant(self, admin: Any) -> None:
        from psycopg import sql

        role = sql.Identifier(self.reader_role)
        exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (self.reader_role,)).fetchone()
        if not exists:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
        admin.execute(
            sql.SQL(
                "ALTER ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION "
                "NOBYPASSRLS PASSWORD {}"
            ).format(role, sql.Literal(self._password))
        )
        admin.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(role))
        timeout = f"{int(self.default_timeout_s * 1000)}ms"
        admin.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(role, sql.Literal(timeout)))
        db = sql.Identifier(self.dbname)
        admin.execute(sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC").format(db))
        admin.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(db, role))
        admin.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, role))
        admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        for schema in sorted({t.schema for t in self.tables.values()}):
            admin.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), role))
        for t in self.tables.values():
            admin.execute(
                sql.SQL("GRANT SELECT ON {}.{} TO {}").format(
                    sql.Identifier(t.schema), sql.Identifier(t.name), role
                )
            )
        admin.commit()

    # -- querying --------------------------------------------------------------------------------
    @property
    def reader_url(self) -> str:
        """libpq connection string of the read-only role."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(self.url, user=self.reader_role, password=self._password)

    def _acquire(self) -> Any:
        import psycopg

        with self._lock:
            if self._idle:
                return self._idle.pop()
        conn = psycopg.connect(self.reader_url)
        conn.read_only = True
        return conn

    def _release(self, conn: Any) -> None:
        with self._lock:
            if not conn.closed and len(self._idle) < self.pool_size:
                self._idle.append(conn)
                return
        conn.close()

    def _drain_pool(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def execute(self, sql: str, uploads: dict[str, pa.Table], timeout_s: float) -> pa.Table:
        """Run translated SQL as the read-only role, ``uploads`` bound as arrays, time-limited.

        Raises
        ------
        QueryError
            Execution errors; `QueryTimeoutError` past ``timeout_s``.
        """
        import psycopg

        params: list[Any] = []
        if uploads:
            sql, params = _with_uploads(sql, uploads)
        conn = self._acquire()
        try:
            with conn.cursor() as cur:
                cur.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}")
                cur.execute(sql, params or None)
                names = [d.name for d in cur.description or ()]
                oids = [d.type_code for d in cur.description or ()]
                rows = cur.fetchall()
            conn.rollback()
        except psycopg.errors.QueryCanceled:
            conn.rollback()
            raise QueryTimeoutError(
                f"query ran past the time limit of {timeout_s:g} s; narrow it or run it with /tap/async"
            ) from None
        except psycopg.Error as exc:
            if not conn.closed:
                conn.rollback()
            message = str(exc).strip().split("\n")[0]
            raise QueryError(f"query failed: {message[:400]}") from None
        finally:
            self._release(conn)
        return _to_arrow(names, oids, rows)

    def close(self) -> None:
        """Close the reader connections and the staging database."""
        self._drain_pool()
        self.stage.close()


def _with_uploads(sql: str, uploads: dict[str, pa.Table]) -> tuple[str, list[Any]]:
    """``sql`` behind a WITH clause that binds each upload's columns as array parameters."""
    ctes, params = [], []
    for name, table in uploads.items():
        arrays = []
        for field, column in zip(table.schema, table.columns, strict=True):
            t = field.type
            if pa.types.is_integer(t):
                kind, values = "bigint", column.to_pylist()
            elif pa.types.is_floating(t):
                kind, values = "double precision", column.to_pylist()
            elif pa.types.is_boolean(t):
                kind, values = "boolean", column.to_pylist()
            else:
                kind, values = "text", [None if v is None else str(v) for v in column.to_pylist()]
            arrays.append(f"%s::{kind}[]")
            params.append(values)
        cols = ", ".join(_ident(c) for c in table.column_names)
        ctes.append(f"{_ident(name)} ({cols}) AS (SELECT * FROM unnest({', '.join(arrays)}))")
    return "WITH " + ", ".join(ctes) + " " + sql.replace("%", "%%"), params


def _to_arrow(names: list[str], oids: list[int], rows: list[tuple]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = []
    for oid, values in zip(oids, columns, strict=True):
        kind = _ARROW_OF_OID.get(oid, pa.string())
        if oid == 1700:
            values = [None if v is None else float(v) for v in values]
        elif kind == pa.string():
            values = [None if v is None else str(v) for v in values]
        arrays.append(pa.array(values, kind))
    return pa.Table.from_arrays(arrays, names=names)

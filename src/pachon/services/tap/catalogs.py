"""The TAP back end: a read-only DuckDB database of the repository's tables.

At start-up every table TAP serves is materialized into one DuckDB file in the service data
folder (``catalog.duckdb``), rebuilt only when the repository's datasets changed (a fingerprint of
the dataset ids is kept in the file):

- catalogs: Parquet datasets (storage class ``ArrowTable``) whose dataset type names a Rubin
  table (``source`` -> ``dp1.Source``, ``dia_source`` -> ``dp1.DiaSource`` or ``apdb.DiaSource``...);
- ``ivoa.ObsCore`` from `pachon.services.images.obscore.build_obscore` (skipped with a log line
  when that module is absent);
- ``pachon.provenance`` and ``pachon.provenance_input`` from the registry;
- the APDB tables (``apdb.DiaObject``, ``apdb.DiaSource``...; see
  `pachon.services.tap.apdb_tables`) when an APDB URL is given;
- ``TAP_SCHEMA`` (see `pachon.services.tap.tap_schema`).

The APDB changes while the service runs (every visit of prompt processing): `refresh_apdb`,
called before each query, checks the APDB's cheap fingerprint at most every ``apdb_refresh_s``
seconds and, when it changed, rebuilds only the APDB tables and TAP_SCHEMA in a copy of the
database file, then swaps it in (queries go on against the old file meanwhile).

Each data table carries a hidden column ``_pachon_run`` (the dataset's RUN) so the translator can
keep only rows of collections the user may see; rows are sorted by declination so DuckDB's
per-row-group min/max statistics (zone maps) skip most of the table in a cone search's
declination band.  Queries run on connections opened ``read_only`` with
``enable_external_access=false`` and a locked configuration: even a query that slipped past the
translator could neither write nor read any file.

This is the default back end; `pachon.services.tap.postgres.PostgresCatalog` (PostgreSQL with
Q3C) has the same interface (``dialect``, ``tables``, ``keys``, ``execute``, ``refresh``,
``close``) and is chosen with ``ServiceSettings.tap_backend``; see `open_backend`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from pachon.core.errors import ConfigError, QueryError

__all__ = [
    "CatalogDatabase",
    "ServedTable",
    "ServedColumn",
    "RUN_COLUMN",
    "rubin_table_for",
    "open_backend",
    "QueryTimeoutError",
]

_log = logging.getLogger(__name__)

RUN_COLUMN = "_pachon_run"
_FORMAT_VERSION = "5"
_POSITION_COLUMNS = (("coord_ra", "coord_dec"), ("ra", "dec"), ("s_ra", "s_dec"))


class QueryTimeoutError(QueryError):
    """The query ran past its time limit."""


@dataclass(frozen=True)
class ServedColumn:
    """A column as described in TAP_SCHEMA."""

    name: str
    datatype: str
    arraysize: str | None = None
    xtype: str | None = None
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    description: str | None = None
    principal: bool = False
    indexed: bool = False
    std: bool = False


@dataclass(frozen=True)
class ServedTable:
    """A table served by TAP: where it lives in DuckDB and how it is described."""

    schema: str
    name: str
    description: str
    columns: tuple[ServedColumn, ...]
    run_filtered: bool = True
    position: tuple[str, str] | None = None
    utype: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def qualified(self) -> str:
        """``schema.name``."""
        return f"{self.schema}.{self.name}"


def rubin_table_for(dataset_type: str) -> tuple[str, Any] | None:
    """The (schema name, felis table) a catalog dataset type names, or None.

    ``source`` -> ``dp1.Source``, ``dia_source`` -> ``dp1.DiaSource``; the ``dp1`` schema is
    searched first, then ``apdb``.
    """
    from pachon.core.schemas import load_schema

    camel = "".join(p[:1].upper() + p[1:] for p in re.split(r"[_\W]+", dataset_type) if p)
    for schema_name in ("dp1", "apdb"):
        for table in load_schema(schema_name).tables:
            if table.name.lower() == camel.lower():
                return schema_name, table
    return None


class CatalogDatabase:
    """The DuckDB database of everything TAP serves, built from a repository.

    Parameters
    ----------
    repo
        An open `~pachon.repo.Repository`.
    data_dir
        Folder of ``catalog.duckdb``.
    threads
        DuckDB worker threads per query.
    filename
        Name of the database file in ``data_dir``.
    apdb_url
        SQLAlchemy URL of the APDB whose tables are served too (None: none).
    apdb_refresh_s
        Least interval between two checks of the APDB fingerprint by `refresh_apdb`.
    """

    #: SQL dialect the translator writes for this back end.
    dialect = "duckdb"

    def __init__(
        self,
        repo: Any,
        data_dir: str | Path,
        *,
        threads: int | None = None,
        filename: str = "catalog.duckdb",
        apdb_url: str | None = None,
        apdb_refresh_s: float = 10.0,
    ) -> None:
        self.repo = repo
        self.apdb_url = apdb_url or None
        self.apdb_refresh_s = apdb_refresh_s
        self._apdb_engine: Any = None
        self._apdb_checked = 0.0
        self._meta: dict[str, str] = {}
        self.path = Path(data_dir) / filename
        self.threads = threads or max(1, min(4, os.cpu_count() or 1))
        self.tables: dict[str, ServedTable] = {}
        self.keys: list[tuple[str, str, str, str]] = []
        self._lock = threading.Lock()
        self._conn: Any = None
        self.refresh()

    # -- building --------------------------------------------------------------------------------
    def _sources(self) -> tuple[list[tuple[Any, str, Any, list[tuple[str, str]]]], str]:
        """Catalog dataset types with their files, and a fingerprint of the registry's datasets."""
        from pachon.repo.registry import CollectionType

        runs = [n for n, _ in self.repo.registry.list_collections(types=[CollectionType.RUN])]
        digest = hashlib.sha256(_FORMAT_VERSION.encode())
        sources = []
        for dt in sorted(self.repo.registry.list_dataset_types(), key=lambda d: d.name):
            refs = self.repo.query_datasets(dt.name, runs, find_first=False) if runs else []
            digest.update(dt.name.encode() + b"".join(sorted(r.id.bytes for r in refs)))
            if dt.storage_class != "ArrowTable" or not refs:
                continue
            found = rubin_table_for(dt.name)
            if found is None:
                _log.info("dataset type %s names no Rubin table; not served by TAP", dt.name)
                continue
            recs = {rec.dataset_id: rec for rec in self.repo.registry.file_records([r.id for r in refs])}
            files = [(self.repo.datastore.full_path(recs[r.id].path), r.run) for r in refs if r.id in recs]
            sources.append((dt, found[0], found[1], files))
        digest.update(b"obscore" if _obscore_builder() is not None else b"")
        return sources, digest.hexdigest()

    def refresh(self) -> None:
        """(Re)build the database file when the repository or the APDB changed, then (re)open it."""
        with self._lock:
            sources, repo_fingerprint = self._sources()
            apdb_fingerprint = self._apdb_fingerprint()
            fingerprint = _combine(repo_fingerprint, apdb_fingerprint)
            stored = self._stored_meta()
            if stored.get("fingerprint") != fingerprint:
                if stored.get("repo_fingerprint") == repo_fingerprint:
                    self._rebuild_apdb(stored, fingerprint, apdb_fingerprint)
                else:
                    meta = {
                        "fingerprint": fingerprint,
                        "repo_fingerprint": repo_fingerprint,
                        "apdb_fingerprint": apdb_fingerprint,
                    }
                    self._build(sources, meta)
            self._open()
            self._apdb_checked = time.monotonic()

    def refresh_apdb(self, *, force: bool = False) -> bool:
        """Reload the APDB tables if the APDB changed (checked at most every ``apdb_refresh_s``).

        Returns
        -------
        bool
            Whether the tables were reloaded.
        """
        if self.apdb_url is None or (
            not force and time.monotonic() - self._apdb_checked < self.apdb_refresh_s
        ):
            return False
        with self._lock:
            if not force and time.monotonic() - self._apdb_checked < self.apdb_refresh_s:
                return False  # another thread just checked
            self._apdb_checked = time.monotonic()
            stored = self._stored_meta()
            apdb_fingerprint = self._apdb_fingerprint()
            if stored.get("apdb_fingerprint") == apdb_fingerprint:
                return False
            if "repo_fingerprint" not in stored:  # the file vanished or is of an older format
                self._apdb_checked = 0.0
                raise ConfigError(f"the TAP catalog database {self.path} is not usable; restart the service")
            fingerprint = _combine(stored["repo_fingerprint"], apdb_fingerprint)
            self._rebuild_apdb(stored, fingerprint, apdb_fingerprint)
            self._open()
            return True

    def _apdb_fingerprint(self) -> str:
        if self.apdb_url is None:
            return ""
        from pachon.services.tap.apdb_tables import apdb_engine, apdb_fingerprint

        if self._apdb_engine is None:
            self._apdb_engine = apdb_engine(self.apdb_url)
        return apdb_fingerprint(self._apdb_engine)

    def _stored_meta(self) -> dict[str, str]:
        import duckdb

        if self._conn is not None:  # DuckDB refuses a second connection of another configuration
            return dict(self._meta)
        if not self.path.exists():
            return {}
        try:
            with duckdb.connect(str(self.path), read_only=True) as conn:
                return dict(conn.execute("SELECT key, value FROM pachon.meta").fetchall())
        except duckdb.Error:
            return {}

    def _load_apdb(self, conn: Any, tables: list[ServedTable]) -> list[ServedTable]:
        if self.apdb_url is None:
            return []
        from pachon.services.tap.apdb_tables import load_apdb

        if self._apdb_engine is None:
            from pachon.services.tap.apdb_tables import apdb_engine

            self._apdb_engine = apdb_engine(self.apdb_url)
        return load_apdb(conn, self._apdb_engine, {t.qualified.lower() for t in tables})

    def _rebuild_apdb(self, stored: dict[str, str], fingerprint: str, apdb_fingerprint: str) -> None:
        """Replace the APDB tables and TAP_SCHEMA in a copy of the database, then swap it in."""
        import duckdb

        from pachon.services.tap.builders import read_served_tables, write_tap_schema

        tmp = self.path.with_name(self.path.name + ".building")
        shutil.copyfile(self.path, tmp)
        old = set(json.loads(stored.get("apdb_tables", "[]")))
        _log.info("the APDB changed: reloading its tables into %s", self.path)
        with duckdb.connect(str(tmp)) as conn:
            conn.execute(f"SET threads = {self.threads}")
            kept = [
                t for t in read_served_tables(conn) if t.qualified not in old and t.schema != "TAP_SCHEMA"
            ]
            for name in sorted(old):
                schema, table = name.split(".", 1)
                conn.execute(f'DROP TABLE IF EXISTS "{schema}"."{table}"')
            conn.execute('DROP SCHEMA "TAP_SCHEMA" CASCADE; DROP TABLE pachon.served')
            apdb = self._load_apdb(conn, kept)
            write_tap_schema(conn, kept + apdb)
            meta = {
                "fingerprint": fingerprint,
                "repo_fingerprint": stored["repo_fingerprint"],
                "apdb_fingerprint": apdb_fingerprint,
            }
            self._write_meta(conn, meta, apdb)
            conn.execute("CHECKPOINT")
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        os.replace(tmp, self.path)

    @staticmethod
    def _write_meta(conn: Any, meta: dict[str, str], apdb: list[ServedTable]) -> None:
        rows = [*meta.items(), ("apdb_tables", json.dumps([t.qualified for t in apdb]))]
        conn.execute("DELETE FROM pachon.meta")
        conn.executemany("INSERT INTO pachon.meta VALUES (?, ?)", [list(r) for r in rows])

    def _build(self, sources: list, meta: dict[str, str]) -> None:
        import duckdb

        from pachon.services.tap.builders import (
            load_catalog,
            load_obscore,
            load_provenance,
            write_tap_schema,
        )

        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".building")
        tmp.unlink(missing_ok=True)
        _log.info("building the TAP catalog database %s", self.path)
        tables: list[ServedTable] = []
        with duckdb.connect(str(tmp)) as conn:
            conn.execute(f"SET threads = {self.threads}")
            conn.execute("CREATE SCHEMA pachon; CREATE TABLE pachon.meta (key VARCHAR, value VARCHAR)")
            for dt, schema_name, felis_table, files in sources:
                tables.append(load_catalog(conn, dt.name, schema_name, felis_table, files))
            builder = _obscore_builder()
            if builder is None:
                _log.info("pachon.services.images.obscore is not available: ivoa.ObsCore not served")
            else:
                obscore = load_obscore(conn, builder(self.repo))
                if obscore is not None:
                    tables.append(obscore)
            tables.extend(load_provenance(conn, self.repo))
            apdb = self._load_apdb(conn, tables)
            write_tap_schema(conn, tables + apdb)
            self._write_meta(conn, meta, apdb)
            conn.execute("CHECKPOINT")
        os.replace(tmp, self.path)

    def _open(self) -> None:
        import duckdb

        from pachon.services.tap.builders import read_served_tables

        if self._conn is not None:
            self._conn.close()
        self._conn = duckdb.connect(
            str(self.path),
            read_only=True,
            config={
                "enable_external_access": False,
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "threads": self.threads,
                "lock_configuration": True,
            },
        )
        self._meta = dict(self._conn.execute("SELECT key, value FROM pachon.meta").fetchall())
        self.tables = {t.qualified.lower(): t for t in read_served_tables(self._conn)}
        self.keys = self._conn.execute(
            'SELECT k.from_table, k.target_table, c.from_column, c.target_column FROM "TAP_SCHEMA"."keys" k '
            'JOIN "TAP_SCHEMA"."key_columns" c USING (key_id) ORDER BY k.key_id'
        ).fetchall()
        _log.info("TAP serves %d tables: %s", len(self.tables), ", ".join(sorted(self.tables)))

    # -- querying --------------------------------------------------------------------------------
    def cursor(self) -> Any:
        """A new DuckDB connection (cursor) on the read-only database, for one query."""
        if self._conn is None:
            raise ConfigError(f"the TAP catalog database {self.path} is closed")
        return self._conn.cursor()

    def execute(self, sql: str, uploads: dict[str, pa.Table], timeout_s: float) -> pa.Table:
        """Run translated SQL with ``uploads`` (relation name -> table) registered, time-limited.

        Raises
        ------
        QueryError
            Execution errors; `QueryTimeoutError` past ``timeout_s``.
        """
        import duckdb

        cursor = self.cursor()
        timed_out = threading.Event()
        timer = threading.Timer(timeout_s, lambda: (timed_out.set(), cursor.interrupt()))
        try:
            for name, table in uploads.items():
                cursor.register(name, table)
            timer.start()
            return cursor.sql(sql).to_arrow_table()
        except duckdb.InterruptException:
            raise QueryTimeoutError(
                f"query ran past the time limit of {timeout_s:g} s; narrow it or run it with /tap/async"
            ) from None
        except duckdb.Error as exc:
            if timed_out.is_set():
                raise QueryTimeoutError(f"query ran past the time limit of {timeout_s:g} s") from None
            message = str(exc).split("\n")[0]
            raise QueryError(f"query failed: {message[:400]}") from None
        finally:
            timer.cancel()
            cursor.close()

    def close(self) -> None:
        """Close the database (and the APDB connections)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._apdb_engine is not None:
                self._apdb_engine.dispose()
                self._apdb_engine = None


def open_backend(repo: Any, settings: Any) -> Any:
    """The TAP back end ``settings.tap_backend`` names, built from ``repo``.

    Raises
    ------
    ConfigError
        ``postgresql`` without ``tap_database_url``, or an unknown back end.
    """
    data_dir = settings.resolved_data_dir()
    backend = getattr(settings, "tap_backend", "duckdb")
    apdb = {"apdb_url": settings.resolved_apdb_url(), "apdb_refresh_s": settings.apdb_refresh_s}
    if backend == "duckdb":
        return CatalogDatabase(repo, data_dir, **apdb)
    if backend == "postgresql":
        from pachon.services.tap.postgres import PostgresCatalog

        if not settings.tap_database_url:
            raise ConfigError(
                "tap_backend='postgresql' needs tap_database_url (e.g. postgresql://user@host/db)"
            )
        return PostgresCatalog(
            repo,
            data_dir,
            settings.tap_database_url,
            reader_role=settings.tap_reader_role,
            default_timeout_s=settings.async_timeout_s,
            **apdb,
        )
    raise ConfigError(f"unknown tap_backend {backend!r}; use 'duckdb' or 'postgresql'")


def _combine(repo_fingerprint: str, apdb_fingerprint: str) -> str:
    return hashlib.sha256(f"{repo_fingerprint}/{apdb_fingerprint}".encode()).hexdigest()


def _obscore_builder() -> Any:
    try:
        from pachon.services.images.obscore import build_obscore
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("pachon.services.images"):
            return None
        raise
    return build_obscore


def arrow_position(schema: pa.Schema) -> tuple[str, str] | None:
    """The (ra, dec) column pair of a table, if it has one."""
    names = set(schema.names)
    return next(((ra, dec) for ra, dec in _POSITION_COLUMNS if ra in names and dec in names), None)

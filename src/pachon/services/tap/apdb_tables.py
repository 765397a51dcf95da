"""The APDB (prompt products) as TAP tables: ``apdb.DiaObject``, ``apdb.DiaSource``...

`pachon.apdb.Apdb` keeps the Alert Production Database in SQLite (``<repo>/apdb.sqlite3``, as the
AP pipeline writes it) or PostgreSQL.  TAP serves a copy of its tables in the catalog database,
under the schema ``apdb`` with Rubin's column names, types, units and descriptions (felis
``apdb.yaml``):

- ``apdb.DiaObject``: the *current* version of each DiaObject only (``validityEndMjdTai IS
  NULL``: the APDB closes a version when a later visit writes a new one);
- ``apdb.DiaSource``, ``apdb.DiaForcedSource``, ``apdb.SSObject``, ``apdb.SSSource``: every row,
  for those of these tables the database has.

Our ``pixelId`` index column is not served.  APDB rows belong to no RUN: every row carries the
pseudo-collection `APDB_COLLECTION` (``apdb``) in the hidden run column, so an access rule on
``apdb`` (``pachon access set --repo DIR apdb --group embargo``) embargoes all prompt products.

`apdb_fingerprint` is what tells the catalog database the APDB changed: the number of stored
(visit, detector) pairs (every `Apdb.store` adds one) and the largest primary key of each served
table, all answered from indexes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from pachon.core.errors import ConfigError
from pachon.services.tap.catalogs import RUN_COLUMN, ServedTable, arrow_position

__all__ = [
    "APDB_COLLECTION",
    "APDB_SCHEMA",
    "APDB_TABLES",
    "apdb_engine",
    "apdb_fingerprint",
    "load_apdb",
]

_log = logging.getLogger(__name__)

#: Pseudo-collection of every APDB row, for access rules.
APDB_COLLECTION = "apdb"
#: TAP schema of the APDB tables.
APDB_SCHEMA = "apdb"
#: Served APDB tables -> the column whose maximum the fingerprint records.
APDB_TABLES: dict[str, str] = {
    "DiaObject": "diaObjectId",
    "DiaSource": "diaSourceId",
    "DiaForcedSource": "diaForcedSourceId",
    "SSObject": "ssObjectId",
    "SSSource": "diaSourceId",
}
_STORE_TABLE = "pachon_apdb_store"
_BATCH_ROWS = 100_000


def apdb_engine(url: str) -> Any:
    """A SQLAlchemy engine on an existing APDB (never creates one).

    Raises
    ------
    ConfigError
        A SQLite URL whose file does not exist.
    """
    from pachon.apdb.database import connect

    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if not path or not Path(path).is_file():
            raise ConfigError(
                f"apdb_url {url!r}: no APDB file at {path!r}; run the AP pipeline first or fix "
                "ServiceSettings.apdb_url (empty string: serve no APDB)"
            )
    return connect(url)


def _present(engine: Any) -> list[str]:
    import sqlalchemy as sa

    names = set(sa.inspect(engine).get_table_names())
    return [t for t in APDB_TABLES if t in names]


def apdb_fingerprint(engine: Any) -> str:
    """A cheap digest of the APDB's content: stored detector-visits and largest ids."""
    import sqlalchemy as sa

    from pachon.apdb.tables import make_metadata

    tables = make_metadata().tables
    present = _present(engine)
    parts: list[Any] = [present]
    with engine.connect() as conn:
        if _STORE_TABLE in sa.inspect(conn).get_table_names():
            parts.append(conn.execute(sa.select(sa.func.count()).select_from(tables[_STORE_TABLE])).scalar())
        for name in present:
            tab = tables[name]
            parts.append(conn.execute(sa.select(sa.func.max(tab.c[APDB_TABLES[name]]))).scalar())
        conn.rollback()
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _batches(engine: Any, name: str, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Rows of one APDB table as Arrow record batches of the felis schema (columnar conversion)."""
    import sqlalchemy as sa

    from pachon.apdb.tables import make_metadata

    tab = make_metadata().tables[name]
    query = sa.select(*[tab.c[f.name] for f in schema])
    if name == "DiaObject":
        query = query.where(tab.c.validityEndMjdTai.is_(None))
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True).execute(query)
        for rows in result.partitions(_BATCH_ROWS):
            columns = list(zip(*rows, strict=True))
            yield pa.record_batch(
                [pa.array(col, f.type) for col, f in zip(columns, schema, strict=True)], schema=schema
            )
        conn.rollback()


def load_apdb(conn: Any, engine: Any, taken: set[str]) -> list[ServedTable]:
    """Copy the APDB tables into the DuckDB connection ``conn`` as ``apdb.<Table>``.

    Parameters
    ----------
    conn
        Writable DuckDB connection of the catalog database being built.
    engine
        Engine from `apdb_engine`.
    taken
        Lower-case qualified names already served (a repository catalog mapped onto
        ``apdb.X``); those APDB tables are skipped with a warning.

    Returns
    -------
    list of ServedTable
    """
    from pachon.core.schemas import arrow_schema, load_schema
    from pachon.services.tap.builders import _describe, _felis_meta

    felis = {t.name: t for t in load_schema("apdb").tables}
    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{APDB_SCHEMA}"')
    served = []
    for name in _present(engine):
        qualified = f'"{APDB_SCHEMA}"."{name}"'
        if f"{APDB_SCHEMA}.{name}".lower() in taken:
            _log.warning("%s.%s is served from repository datasets; the APDB table is not", APDB_SCHEMA, name)
            continue
        schema = pa.schema([f.remove_metadata() for f in arrow_schema("apdb", name)])
        reader = pa.RecordBatchReader.from_batches(schema, _batches(engine, name, schema))
        position = arrow_position(schema)
        order = f' ORDER BY "{position[1]}"' if position else ""
        conn.register("pachon_apdb_rows", reader)
        conn.execute(
            f"CREATE TABLE {qualified} AS SELECT *, '{APDB_COLLECTION}' AS {RUN_COLUMN} "
            f"FROM pachon_apdb_rows{order}"
        )
        conn.unregister("pachon_apdb_rows")
        n = conn.execute(f"SELECT count(*) FROM {qualified}").fetchone()[0]
        _log.info("TAP table %s.%s: %d rows from the APDB", APDB_SCHEMA, name, n)
        description = (felis[name].description or "").strip()
        if name == "DiaObject":
            description += " Served: the current version of each DiaObject (validityEndMjdTai is null)."
        served.append(
            ServedTable(
                APDB_SCHEMA,
                name,
                description.strip(),
                _describe(conn, qualified, _felis_meta(felis[name]), position),
                True,
                position,
            )
        )
    return served

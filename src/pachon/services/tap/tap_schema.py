"""TAP_SCHEMA (TAP 1.1 section 4): the tables describing the served tables, in DuckDB.

Descriptions, units, UCDs and utypes come from the Rubin Science Data Model (felis schemas of
lsst-sdm-schemas, read in `pachon.services.tap.builders`); datatypes are derived from the
materialized DuckDB columns so that TAP_SCHEMA always agrees with what queries return.  The
TAP_SCHEMA tables describe themselves too.  ``pachon.served`` keeps what the translator needs
and TAP_SCHEMA cannot say (row filtering by run, position columns).
"""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa

from pachon.services.tap.catalogs import ServedColumn, ServedTable

__all__ = ["write_tap_schema", "read_served_tables", "TAP_SCHEMA_TABLES", "adql_name"]

_log = logging.getLogger(__name__)

_C, _I = ("char", "*"), ("int", None)
#: The TAP_SCHEMA tables: name -> [(column, (datatype, arraysize), description)].
TAP_SCHEMA_TABLES: dict[str, list[tuple[str, tuple[str, str | None], str]]] = {
    "schemas": [
        ("schema_name", _C, "schema name for reference to TAP_SCHEMA.schemas"),
        ("utype", _C, "lists the utypes of schemas"),
        ("description", _C, "describes schemas in the tableset"),
        ("schema_index", _I, "recommended sort order when listing schemas"),
    ],
    "tables": [
        ("schema_name", _C, "the schema this table belongs to"),
        ("table_name", _C, "the fully qualified table name"),
        ("table_type", _C, "one of: table view"),
        ("utype", _C, "lists the utype of tables in the tableset"),
        ("description", _C, "describes tables in the tableset"),
        ("table_index", _I, "recommended sort order when listing tables"),
    ],
    "columns": [
        ("table_name", _C, "the table this column belongs to"),
        ("column_name", _C, "the column name"),
        ("utype", _C, "lists the utypes of columns in the tableset"),
        ("ucd", _C, "lists the UCDs of columns in the tableset"),
        ("unit", _C, "lists the unit used for column values in the tableset"),
        ("description", _C, "describes the columns in the tableset"),
        ("datatype", _C, "lists the ADQL datatype of columns in the tableset"),
        ("arraysize", _C, "lists the size of variable-length columns in the tableset"),
        ("xtype", _C, "a DALI or custom extended type annotation"),
        ("size", _I, "deprecated: use arraysize"),
        ("principal", _I, "a principal column; 1 means 1, 0 means 0"),
        ("indexed", _I, "an indexed column; 1 means 1, 0 means 0"),
        ("std", _I, "a standard column; 1 means 1, 0 means 0"),
        ("column_index", _I, "recommended sort order when listing columns of a table"),
    ],
    "keys": [
        ("key_id", _C, "unique key to join to TAP_SCHEMA.key_columns"),
        ("from_table", _C, "the table with the foreign key"),
        ("target_table", _C, "the table with the primary key"),
        ("utype", _C, "lists the utype of keys in the tableset"),
        ("description", _C, "describes keys in the tableset"),
    ],
    "key_columns": [
        ("key_id", _C, "key to join to TAP_SCHEMA.keys"),
        ("from_column", _C, "column in the from_table"),
        ("target_column", _C, "column in the target_table"),
    ],
}
_SCHEMA_DOCS = {
    "TAP_SCHEMA": "Metadata of the tables served by this TAP service",
    "ivoa": "IVOA standard tables (ObsCore)",
    "dp1": "Rubin data-release catalogs (Science Data Model dp1)",
    "apdb": "Rubin prompt products (Science Data Model apdb)",
    "pachon": "Repository provenance",
}


def _tap_schema_tables() -> list[ServedTable]:
    out = []
    for name, cols in TAP_SCHEMA_TABLES.items():
        columns = tuple(
            ServedColumn(c, dt, size, description=doc, principal=True, std=True)
            for c, (dt, size), doc in cols
        )
        out.append(ServedTable("TAP_SCHEMA", name, f"TAP_SCHEMA.{name}", columns, run_filtered=False))
    return out


def write_tap_schema(conn: Any, tables: list[ServedTable]) -> None:
    """Create the TAP_SCHEMA tables describing ``tables`` (and themselves) in ``conn``."""
    tables = [*tables, *_tap_schema_tables()]
    schemas = sorted({t.schema for t in tables}, key=lambda s: (s != "ivoa", s == "TAP_SCHEMA", s))
    data: dict[str, dict[str, list]] = {
        name: {c: [] for c, _, _ in cols} for name, cols in TAP_SCHEMA_TABLES.items()
    }
    for i, s in enumerate(schemas):
        _append(data["schemas"], schema_name=s, utype=None, description=_SCHEMA_DOCS.get(s), schema_index=i)
    for i, t in enumerate(tables):
        _append(
            data["tables"],
            schema_name=t.schema,
            table_name=t.qualified,
            table_type="table",
            utype=t.utype,
            description=t.description or None,
            table_index=i,
        )
        for j, c in enumerate(t.columns):
            _append(
                data["columns"],
                table_name=t.qualified,
                column_name=adql_name(c.name),
                utype=c.utype,
                ucd=c.ucd,
                unit=c.unit,
                description=c.description,
                datatype=c.datatype,
                arraysize=c.arraysize,
                xtype=c.xtype,
                size=None,
                principal=int(c.principal),
                indexed=int(c.indexed),
                std=int(c.std),
                column_index=j,
            )
    for i, (from_t, from_c, target_t, target_c) in enumerate(_KEYS + _extra_keys(tables)):
        key_id = f"k{i}"
        _append(
            data["keys"],
            key_id=key_id,
            from_table=from_t,
            target_table=target_t,
            utype=None,
            description=f"{from_t}.{from_c} refers to {target_t}.{target_c}",
        )
        _append(data["key_columns"], key_id=key_id, from_column=from_c, target_column=target_c)
    conn.execute('CREATE SCHEMA IF NOT EXISTS "TAP_SCHEMA"')
    for name, cols in TAP_SCHEMA_TABLES.items():
        arrow = pa.table(
            {
                c: pa.array(data[name][c], pa.string() if dt == "char" else pa.int32())
                for c, (dt, _), _ in cols
            }
        )
        conn.register("pachon_tmp", arrow)
        conn.execute(f'CREATE TABLE "TAP_SCHEMA"."{name}" AS SELECT * FROM pachon_tmp')
        conn.unregister("pachon_tmp")
    served = pa.table(
        {
            "schema_name": [t.schema for t in tables],
            "table_name": [t.name for t in tables],
            "run_filtered": [t.run_filtered for t in tables],
            "ra": [t.position[0] if t.position else None for t in tables],
            "dec": [t.position[1] if t.position else None for t in tables],
        }
    )
    conn.register("pachon_tmp", served)
    conn.execute("CREATE TABLE pachon.served AS SELECT * FROM pachon_tmp")
    conn.unregister("pachon_tmp")


#: ADQL reserved words that are also column names here: TAP_SCHEMA lists them delimited.
_RESERVED = {
    "size",
    "date",
    "time",
    "timestamp",
    "value",
    "user",
    "first",
    "last",
    "level",
    "position",
    "zone",
    "section",
    "count",
    "min",
    "max",
    "sum",
    "avg",
    "top",
    "order",
    "group",
    "select",
    "from",
    "where",
    "distance",
    "area",
    "point",
    "circle",
    "box",
    "polygon",
    "region",
    "contains",
    "intersects",
    "lower",
    "upper",
    "mod",
    "power",
    "round",
    "truncate",
    "exp",
    "log",
    "degrees",
    "radians",
    "sign",
}


def adql_name(name: str) -> str:
    """A column name as written in ADQL: delimited when it is a reserved word or not a plain name."""
    plain = name.replace("_", "a").isalnum() and name[:1].isalpha() and name.isascii()
    return f'"{name}"' if name.lower() in _RESERVED or not plain else name


_KEYS = [
    ("TAP_SCHEMA.tables", "schema_name", "TAP_SCHEMA.schemas", "schema_name"),
    ("TAP_SCHEMA.columns", "table_name", "TAP_SCHEMA.tables", "table_name"),
    ("TAP_SCHEMA.keys", "from_table", "TAP_SCHEMA.tables", "table_name"),
    ("TAP_SCHEMA.keys", "target_table", "TAP_SCHEMA.tables", "table_name"),
    ("TAP_SCHEMA.key_columns", "key_id", "TAP_SCHEMA.keys", "key_id"),
]


#: Foreign keys between served tables, declared when both tables and both columns are served.
_OPTIONAL_KEYS = [
    ("pachon.provenance_input", "dataset_id", "pachon.provenance", "dataset_id"),
    ("apdb.DiaSource", "diaObjectId", "apdb.DiaObject", "diaObjectId"),
    ("apdb.DiaForcedSource", "diaObjectId", "apdb.DiaObject", "diaObjectId"),
    ("apdb.DiaSource", "ssObjectId", "apdb.SSObject", "ssObjectId"),
    ("apdb.SSSource", "ssObjectId", "apdb.SSObject", "ssObjectId"),
    ("apdb.SSSource", "diaSourceId", "apdb.DiaSource", "diaSourceId"),
]


def _extra_keys(tables: list[ServedTable]) -> list[tuple[str, str, str, str]]:
    columns = {t.qualified: {c.name for c in t.columns} for t in tables}
    return [
        k for k in _OPTIONAL_KEYS
        if k[1] in columns.get(k[0], ()) and k[3] in columns.get(k[2], ())
    ]


def _append(target: dict[str, list], **values: Any) -> None:
    for k, v in values.items():
        target[k].append(v)


def read_served_tables(conn: Any) -> list[ServedTable]:
    """The served tables as recorded in TAP_SCHEMA and ``pachon.served``."""
    served = conn.execute(
        "SELECT s.schema_name, s.table_name, s.run_filtered, s.ra, s.dec, t.description, t.utype "
        'FROM pachon.served s JOIN "TAP_SCHEMA"."tables" t '
        "ON t.table_name = s.schema_name || '.' || s.table_name ORDER BY t.table_index"
    ).fetchall()
    cols = conn.execute(
        "SELECT table_name, column_name, datatype, arraysize, xtype, unit, ucd, utype, description, "
        'principal, indexed, std FROM "TAP_SCHEMA"."columns" ORDER BY table_name, column_index'
    ).fetchall()
    by_table: dict[str, list[ServedColumn]] = {}
    for row in cols:
        by_table.setdefault(row[0], []).append(
            ServedColumn(
                row[1].strip('"'),
                row[2],
                row[3],
                row[4],
                row[5],
                row[6],
                row[7],
                row[8],
                bool(row[9]),
                bool(row[10]),
                bool(row[11]),
            )
        )
    return [
        ServedTable(
            schema,
            name,
            desc or "",
            tuple(by_table.get(f"{schema}.{name}", ())),
            bool(rf),
            (ra, dec) if ra else None,
            utype,
        )
        for schema, name, rf, ra, dec, desc, utype in served
    ]

"""Loading the served tables into the TAP DuckDB database (used by `CatalogDatabase`)."""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa

from pachon.services.tap.catalogs import RUN_COLUMN, ServedColumn, ServedTable, arrow_position
from pachon.services.tap.tap_schema import read_served_tables, write_tap_schema

__all__ = [
    "load_catalog",
    "load_obscore",
    "load_provenance",
    "write_tap_schema",
    "read_served_tables",
    "duckdb_to_votable",
]

_log = logging.getLogger(__name__)

_DUCK_TO_VOT = {
    "BIGINT": "long",
    "INTEGER": "int",
    "SMALLINT": "short",
    "TINYINT": "short",
    "UBIGINT": "long",
    "UINTEGER": "long",
    "USMALLINT": "int",
    "UTINYINT": "short",
    "DOUBLE": "double",
    "FLOAT": "float",
    "BOOLEAN": "boolean",
    "HUGEINT": "double",
}


def duckdb_to_votable(duck_type: str) -> tuple[str, str | None, str | None]:
    """(VOTable datatype, arraysize, xtype) of a DuckDB column type."""
    t = duck_type.upper()
    if t in _DUCK_TO_VOT:
        return _DUCK_TO_VOT[t], None, None
    if t.startswith("TIMESTAMP") or t == "DATE":
        return "char", "*", "timestamp"
    if t.startswith("DECIMAL"):
        return "double", None, None
    return "char", "*", None


def _describe(
    conn: Any, qualified: str, meta: dict[str, dict[str, Any]], position: tuple | None
) -> tuple[ServedColumn, ...]:
    rows = conn.execute(f"DESCRIBE {qualified}").fetchall()
    cols = []
    for name, duck_type, *_ in rows:
        if name == RUN_COLUMN:
            continue
        datatype, arraysize, xtype = duckdb_to_votable(duck_type)
        m = meta.get(name, {})
        cols.append(
            ServedColumn(
                name,
                datatype,
                arraysize,
                xtype,
                m.get("unit"),
                m.get("ucd"),
                m.get("utype"),
                m.get("description"),
                bool(m.get("principal")),
                bool(position and name in position),
                bool(m.get("std")),
            )
        )
    return tuple(cols)


def _felis_meta(felis_table: Any) -> dict[str, dict[str, Any]]:
    meta = {}
    for c in felis_table.columns:
        meta[c.name] = {
            "unit": getattr(c, "ivoa_unit", None) or getattr(c, "fits_tunit", None),
            "ucd": getattr(c, "ivoa_ucd", None),
            "utype": getattr(c, "votable_utype", None),
            "description": getattr(c, "description", None),
            "principal": getattr(c, "tap_principal", 0),
            "std": getattr(c, "tap_std", 0),
        }
    return meta


def _create_sorted(conn: Any, qualified: str, select_sql: str, position: tuple[str, str] | None) -> None:
    order = f' ORDER BY "{position[1]}"' if position else ""
    conn.execute(f"CREATE TABLE {qualified} AS {select_sql}{order}")


def load_catalog(
    conn: Any, dataset_type: str, schema_name: str, felis_table: Any, files: list[tuple[str, str]]
) -> ServedTable:
    """Materialize the Parquet files of one catalog dataset type as ``schema.Table``."""
    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema_name}"')
    qualified = f'"{schema_name}"."{felis_table.name}"'
    conn.register("pachon_files", pa.table({"filename": [f for f, _ in files], "run": [r for _, r in files]}))
    probe = (
        conn.sql(
            "SELECT * FROM read_parquet($files, union_by_name = true) LIMIT 0",
            params={"files": [f for f, _ in files]},
        )
        .to_arrow_table()
        .schema
    )
    position = arrow_position(probe)
    select = (
        f"SELECT p.* EXCLUDE (filename), f.run AS {RUN_COLUMN} "
        "FROM read_parquet($files, filename = true, union_by_name = true) AS p "
        "JOIN pachon_files AS f USING (filename)"
    )
    order = f' ORDER BY p."{position[1]}"' if position else ""
    conn.execute(f"CREATE TABLE {qualified} AS {select}{order}", {"files": [f for f, _ in files]})
    conn.unregister("pachon_files")
    n = conn.execute(f"SELECT count(*) FROM {qualified}").fetchone()[0]
    _log.info(
        "TAP table %s.%s: %d rows from %d %s files",
        schema_name,
        felis_table.name,
        n,
        len(files),
        dataset_type,
    )
    return ServedTable(
        schema_name,
        felis_table.name,
        (felis_table.description or "").strip(),
        _describe(conn, qualified, _felis_meta(felis_table), position),
        True,
        position,
    )


def load_obscore(conn: Any, table: pa.Table) -> ServedTable | None:
    """Materialize the ObsCore table as ``ivoa.ObsCore`` (rows filtered by ``obs_collection``)."""
    from pachon.core.schemas import load_schema

    if "obs_collection" not in table.column_names:
        _log.warning("the ObsCore table has no obs_collection column; ivoa.ObsCore not served")
        return None
    felis_table = load_schema("ivoa_obscore").tables[0]
    conn.execute('CREATE SCHEMA IF NOT EXISTS "ivoa"')
    conn.register("pachon_obscore", table)
    position = ("s_ra", "s_dec") if {"s_ra", "s_dec"} <= set(table.column_names) else None
    _create_sorted(
        conn, '"ivoa"."ObsCore"', f"SELECT *, obs_collection AS {RUN_COLUMN} FROM pachon_obscore", position
    )
    conn.unregister("pachon_obscore")
    meta = _felis_meta(felis_table)
    for f in table.schema:  # the builder's own field metadata completes felis'
        extra = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
        meta.setdefault(f.name, {}).update({k: v for k, v in extra.items() if not meta[f.name].get(k)})
    for m in meta.values():
        m["std"] = 1
    return ServedTable(
        "ivoa",
        "ObsCore",
        "ObsCore 1.1: one row per image dataset",
        _describe(conn, '"ivoa"."ObsCore"', meta, position),
        True,
        position,
        "ivo://ivoa.net/std/ObsCore#table-1.1",
    )


_PROVENANCE_DOC = {
    "dataset_id": ("meta.id;meta.main", "Dataset UUID"),
    "dataset_type": ("meta.code", "Dataset type name"),
    "run": ("meta.dataset", "RUN collection holding the dataset"),
    "data_id": ("meta.id", "Data ID (dimension=value pairs)"),
    "storage_class": ("meta.code", "Storage class"),
    "path": ("meta.ref.uri", "File path relative to the datastore root"),
    "file_size": ("phys.size", "File size (bytes)"),
    "checksum": ("meta.code", "File checksum"),
    "task": ("meta.code", "Task that made the dataset"),
    "quantum_id": ("meta.id", "Quantum that made the dataset"),
    "config_hash": ("meta.code", "Hash of the task configuration"),
    "software_version": ("meta.version", "Pachón version"),
    "created_ns": ("time.creation", "Creation time (ns TAI since 1970)"),
    "input_id": ("meta.id", "Input dataset UUID"),
}


def load_provenance(conn: Any, repo: Any) -> list[ServedTable]:
    """``pachon.provenance`` (one row per dataset) and ``pachon.provenance_input`` (its inputs)."""
    import sqlalchemy as sa

    t = repo.registry.db.tables
    ds, dtype, coll, fil, prov, inp = (
        t[n] for n in ("dataset", "dataset_type", "collection", "file_record", "provenance", "dataset_input")
    )
    query = (
        sa.select(
            ds.c.id,
            dtype.c.name.label("dataset_type"),
            coll.c.name.label("run"),
            ds.c.data_key,
            dtype.c.storage_class,
            fil.c.path,
            fil.c.size.label("file_size"),
            fil.c.checksum,
            prov.c.task,
            prov.c.quantum_id,
            prov.c.config_hash,
            prov.c.software_version,
            prov.c.created_ns,
        )
        .join(dtype, dtype.c.id == ds.c.dataset_type_id)
        .join(coll, coll.c.id == ds.c.run_id)
        .outerjoin(fil, fil.c.dataset_id == ds.c.id)
        .outerjoin(prov, prov.c.dataset_id == ds.c.id)
    )
    inputs_q = (
        sa.select(inp.c.dataset_id, inp.c.input_id, coll.c.name)
        .join(ds, ds.c.id == inp.c.dataset_id)
        .join(coll, coll.c.id == ds.c.run_id)
    )
    with repo.registry.db.reading() as c:
        rows = c.execute(query).all()
        input_rows = c.execute(inputs_q).all()
    names = [
        "dataset_id",
        "dataset_type",
        "run",
        "data_id",
        "storage_class",
        "path",
        "file_size",
        "checksum",
        "task",
        "quantum_id",
        "config_hash",
        "software_version",
        "created_ns",
    ]
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
    types = [pa.string()] * 6 + [pa.int64()] + [pa.string()] * 5 + [pa.int64()]
    arrays = [pa.array([str(v) for v in cols[0]], pa.string())]
    arrays += [pa.array(list(v), ty) for v, ty in zip(cols[1:], types[1:], strict=True)]
    table = pa.table(arrays, names=names).append_column(RUN_COLUMN, pa.array(list(cols[2]), pa.string()))
    inputs = pa.table(
        {
            "dataset_id": pa.array([str(r[0]) for r in input_rows], pa.string()),
            "input_id": pa.array([str(r[1]) for r in input_rows], pa.string()),
            RUN_COLUMN: pa.array([r[2] for r in input_rows], pa.string()),
        }
    )
    conn.execute('CREATE SCHEMA IF NOT EXISTS "pachon"')
    served = []
    for name, tbl, doc in (
        ("provenance", table, "Datasets of the repository with their file and provenance"),
        ("provenance_input", inputs, "Input datasets of each dataset"),
    ):
        conn.register("pachon_tmp", tbl)
        conn.execute(f'CREATE TABLE "pachon"."{name}" AS SELECT * FROM pachon_tmp')
        conn.unregister("pachon_tmp")
        meta = {k: {"ucd": u, "description": d, "principal": 1} for k, (u, d) in _PROVENANCE_DOC.items()}
        meta["file_size"]["unit"] = "byte"
        served.append(ServedTable("pachon", name, doc, _describe(conn, f'"pachon"."{name}"', meta, None)))
    return served

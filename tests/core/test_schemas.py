from __future__ import annotations

import pyarrow as pa
import pytest

from pachon.core.errors import ConfigError
from pachon.core.schemas import (
    arrow_schema,
    available_schemas,
    column_names,
    load_schema,
    sqlalchemy_metadata,
)


def test_available_and_cached():
    names = available_schemas()
    assert {"apdb", "dp1", "ivoa_obscore"} <= set(names)
    assert load_schema("apdb") is load_schema("apdb")
    assert load_schema("apdb").name == "ApdbSchema"


def test_unknown_names_list_what_exists():
    with pytest.raises(ConfigError, match="available: .*apdb.*dp1"):
        load_schema("nope")
    with pytest.raises(ConfigError, match="its tables are: .*DiaSource"):
        column_names("apdb", "NoSuchTable")
    with pytest.raises(ConfigError, match="Object"):
        arrow_schema("dp1", "Objects")


def test_apdb_diasource_columns_and_types():
    cols = column_names("apdb", "DiaSource")
    for name in ("diaSourceId", "visit", "detector", "diaObjectId", "ra", "dec", "psfFlux", "psfFluxErr",
                 "midpointMjdTai", "x", "y", "snr"):  # fmt: skip
        assert name in cols
    sch = arrow_schema("apdb", "DiaSource")
    assert sch.names == cols
    assert sch.field("diaSourceId").type == pa.int64() and not sch.field("diaSourceId").nullable
    assert sch.field("detector").type == pa.int16()
    assert sch.field("ra").type == pa.float64()
    assert sch.field("psfFlux").type == pa.float32()
    assert sch.field("midpointMjdTai").type == pa.float64()
    meta = sch.field("psfFlux").metadata
    assert meta[b"unit"] == b"nJy" and b"description" in meta and b"ucd" in meta
    assert sch.field("ra").metadata[b"unit"] == b"deg"
    assert sch.metadata[b"sdm_schema"] == b"apdb"


def test_type_mapping_covers_booleans_strings_and_timestamps():
    sch = arrow_schema("apdb", "DiaObject")
    types = {str(f.type) for f in sch}
    assert {"int64", "double", "float"} <= types
    assert arrow_schema("apdb", "mpc_orbits").field("created_at").type == pa.timestamp("us")
    meta = arrow_schema("apdb", "metadata")
    assert meta.field("name").type == pa.string()
    flags = [f for f in arrow_schema("dp1", "Object") if f.type == pa.bool_()]
    assert flags, "dp1 Object has boolean flag columns"


def test_dp1_object():
    sch = arrow_schema("dp1", "Object")
    assert len(sch) > 500
    assert sch.field("objectId").type == pa.int64()
    assert sch.field("coord_ra").type == pa.float64()
    assert sch.field("coord_ra").metadata[b"unit"] == b"deg"
    assert sch.field("tract").type in (pa.int64(), pa.int32())
    # an empty table of that schema round-trips through Parquet
    import io

    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(sch.empty_table(), buf)
    assert pq.read_schema(io.BytesIO(buf.getvalue())).field("coord_ra").metadata[b"unit"] == b"deg"


def test_apdb_tables_in_sqlite():
    import sqlalchemy as sa

    md = sqlalchemy_metadata("apdb")
    engine = sa.create_engine("sqlite://")
    md.create_all(engine)
    table = md.tables["DiaSource"]
    required = {c.name: 0 for c in table.columns if not c.nullable}
    row = {**required, "diaSourceId": 42, "ra": 359.5, "dec": -30.25, "psfFlux": 1234.5, "psfFluxErr": 5.0,
           "midpointMjdTai": 60500.25}  # fmt: skip
    with engine.begin() as conn:
        conn.execute(table.insert().values(**row))
        got = conn.execute(sa.select(table).where(table.c.diaSourceId == 42)).mappings().one()
    assert got["ra"] == 359.5 and got["dec"] == -30.25
    assert got["psfFlux"] == pytest.approx(1234.5)
    assert got["midpointMjdTai"] == 60500.25
    assert set(sa.inspect(engine).get_table_names()) >= {"DiaSource", "DiaObject", "DiaForcedSource"}
    # with a database schema name, for PostgreSQL
    named = sqlalchemy_metadata("apdb", db_schema="ppdb")
    assert "ppdb.DiaSource" in named.tables


def test_fast_yaml_path_equals_felis_for_every_table():
    from pachon.core.schemas import _felis_arrow_schema, _raw_tables, arrow_schema

    for name in ("apdb", "dp1", "ivoa_obscore"):
        for table in _raw_tables(name):
            fast = arrow_schema(name, table)
            reference = _felis_arrow_schema(name, table)
            assert fast.equals(reference, check_metadata=True), (name, table)

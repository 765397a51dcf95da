"""The grouped encoder of flat records writes exactly what fastavro writes."""

from __future__ import annotations

import io
import math

import fastavro
import numpy as np
import pyarrow as pa
import pytest

from pachon.alerts.avro_encode import encode_records
from pachon.alerts.avro_flat import flat_plan
from pachon.core.errors import FormatError

FLAT = fastavro.parse_schema({
    "type": "record", "name": "t.flat", "fields": [
        {"name": "id", "type": "long"},
        {"name": "small", "type": "int"},
        {"name": "obj", "type": ["null", "long"], "default": None},
        {"name": "x", "type": "float"},
        {"name": "f", "type": ["null", "float"], "default": None},
        {"name": "g", "type": ["float", "null"]},  # null second: branch bytes 0 / 2
        {"name": "d", "type": ["null", "double"], "default": None},
        {"name": "ok", "type": "boolean"},
        {"name": "flag", "type": ["null", "boolean"], "default": None},
        {"name": "band", "type": ["null", "string"], "default": None},
        {"name": "name", "type": "string"},
        {"name": "blob", "type": ["null", "bytes"], "default": None},
        {"name": "absent", "type": ["null", "double"], "default": None},
    ]}, named_schemas={})


def _reference(rows: list[dict]) -> list[bytes]:
    out = []
    for r in rows:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, FLAT, r)
        out.append(buf.getvalue())
    return out


def _table(m: int, seed: int, long_names: bool = False) -> tuple[pa.Table, list[dict]]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(-2**62, 2**62, m)
    ids[: m // 2] = rng.integers(0, 100, m // 2)  # short and long varints
    small = rng.integers(-2**31, 2**31, m).astype(np.int32)
    obj = [None if i % 4 == 0 else int(v) for i, v in enumerate(rng.integers(0, 2**40, m))]
    x = rng.normal(0, 1e3, m).astype(np.float32)
    f = [None if i % 3 == 0 else float(v) for i, v in enumerate(rng.normal(0, 10, m))]
    g = [None if i % 5 == 1 else float(v) for i, v in enumerate(rng.normal(0, 10, m))]
    d = [None if i % 2 else float(v) for i, v in enumerate(rng.normal(0, 1e9, m))]
    ok = rng.random(m) < 0.5
    flag = [None if i % 7 == 0 else bool(v) for i, v in enumerate(rng.random(m) < 0.5)]
    band = [None if i % 6 == 0 else "ugrizy"[i % 6] * (i % 3) for i in range(m)]
    name = [("n" * 100 if long_names and i == 1 else "é" * (i % 4)) for i in range(m)]
    blob = [None if i % 2 else rng.bytes(i % 9) for i in range(m)]
    table = pa.table({
        "id": pa.array(ids, pa.int64()), "small": pa.array(small), "obj": pa.array(obj, pa.int64()),
        "x": pa.array(x), "f": pa.array(f, pa.float64()), "g": pa.array(g, pa.float32()),
        "d": pa.array(d, pa.float64()), "ok": pa.array(ok), "flag": pa.array(flag, pa.bool_()),
        "band": pa.array(band, pa.string()), "name": pa.array(name, pa.large_string()),
        "blob": pa.array(blob, pa.binary()),
    })
    rows = table.to_pylist()
    for r in rows:
        r["absent"] = None
    return table, rows


@pytest.mark.parametrize("long_names", [False, True])
def test_flat_records_byte_identical_to_fastavro(long_names: bool) -> None:
    assert flat_plan(FLAT, {}) is not None
    table, rows = _table(300, seed=1, long_names=long_names)
    assert encode_records(FLAT, table) == _reference(rows)
    assert encode_records(FLAT, table.slice(0, 1)) == _reference(rows[:1])


def test_nan_of_nullable_floats_as_null_only_when_asked() -> None:
    table, rows = _table(50, seed=2)
    nulls = table.column("f").is_null().to_numpy(zero_copy_only=False)
    f = table.column("f").to_numpy(zero_copy_only=False).copy()
    f[[1, 2, 4]] = np.nan
    table = table.set_column(table.column_names.index("f"), "f", pa.array(f, mask=nulls))
    as_null = [dict(r, f=None if math.isnan(v) else v) for r, v in zip(rows, f, strict=True)]
    assert encode_records(FLAT, table, nan_null=True) == _reference(as_null)
    raw = encode_records(FLAT, table)  # NaN written as a float
    back = [fastavro.schemaless_reader(io.BytesIO(p), FLAT, None) for p in raw]
    assert math.isnan(back[1]["f"]) and back[3]["f"] is None  # 3: a real null


def test_required_null_is_named() -> None:
    table, _ = _table(20, seed=3)
    small = table.column("small").to_pylist()
    small[5] = None
    bad = table.set_column(table.column_names.index("small"), "small", pa.array(small, pa.int32()))
    with pytest.raises(FormatError, match=r"t\.flat\.small is required .* 1 value"):
        encode_records(FLAT, bad)
    with pytest.raises(FormatError, match=r"t\.flat\.ok is required .* absent"):
        encode_records(FLAT, table.drop_columns(["ok"]))

"""The vectorized batch codecs give exactly the reference (fastavro, per packet) results."""

from __future__ import annotations

import io
import math

import fastavro
import numpy as np
import pyarrow as pa
import pytest

from pachon.alerts.avro_decode import decode_records
from pachon.alerts.avro_encode import arrow_schema, encode_records
from pachon.alerts.schema import load_schema
from pachon.alerts.serialize import alerts_to_arrow, serialize_alert, serialize_alerts
from pachon.core.errors import FormatError

SCHEMA = fastavro.parse_schema({
    "type": "record", "name": "t.rec", "fields": [
        {"name": "id", "type": "long"},
        {"name": "x", "type": ["null", "double"]},
        {"name": "f", "type": ["float", "null"]},
        {"name": "ok", "type": "boolean"},
        {"name": "s", "type": ["null", "string"]},
        {"name": "blob", "type": ["null", "bytes"]},
        {"name": "hist", "type": ["null", {"type": "array", "items": {
            "type": "record", "name": "t.item", "fields": [
                {"name": "t", "type": "double"}, {"name": "band", "type": ["null", "string"]},
                {"name": "n", "type": "int"}]}}]},
        {"name": "sub", "type": ["null", "t.item"]},
    ]}, named_schemas={})


def _records(n: int) -> list[dict]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        k = int(rng.integers(0, 4))
        out.append({
            "id": int(rng.integers(-2**62, 2**62)) if i % 3 else -i,
            "x": None if i % 4 == 0 else (math.nan if i % 7 == 0 else float(rng.normal())),
            "f": None if i % 5 == 0 else float(rng.normal() * 1e3),
            "ok": bool(i % 2),
            "s": None if i % 6 == 0 else "é" * (i % 3) + str(i),
            "blob": None if i % 2 else bytes(rng.integers(0, 256, 700 * (i % 3), dtype=np.uint8)),
            "hist": None if i % 8 == 0 else [
                {"t": float(j), "band": None if j == 1 else "gri"[j % 3], "n": j * 1000 - 7}
                for j in range(k)],
            "sub": None if i % 3 == 0 else {"t": 1.5, "band": "r", "n": -(2**31)},
        })
    return out


def _reference(records: list[dict]) -> list[bytes]:
    out = []
    for r in records:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, SCHEMA, r)
        out.append(buf.getvalue())
    return out


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_encoder_matches_fastavro_bytes():
    records = _records(60)
    arrow = pa.Table.from_pylist(records, schema=pa.schema(list(arrow_schema(SCHEMA))))
    assert encode_records(SCHEMA, arrow) == _reference(records)
    assert encode_records(SCHEMA, arrow.slice(7, 20)) == _reference(records[7:27])


def test_decoder_matches_fastavro_values():
    records = _records(60)
    packets = [b"\x00abcd" + p for p in _reference(records)]
    decoded = decode_records(SCHEMA, packets, skip=5).to_pylist()
    expected = [fastavro.schemaless_reader(io.BytesIO(p[5:]), SCHEMA, None) for p in packets]
    assert _same(decoded, expected)
    part = decode_records(SCHEMA, packets, skip=5, projection={"id": True, "hist": {"band": True}})
    assert part.to_pylist()[9] == {"id": expected[9]["id"],
                                   "hist": [{"band": h["band"]} for h in expected[9]["hist"]]}


def test_decoder_rejects_truncated_packet():
    packets = _reference(_records(5))
    packets[2] = packets[2][:-3]
    with pytest.raises(FormatError, match="packet"):
        decode_records(SCHEMA, packets)


def test_serialize_alerts_real_packets_identical(rubin_alerts):
    alerts, version = rubin_alerts
    expected = [serialize_alert(a, version=version, wire=True) for a in alerts]
    assert serialize_alerts(alerts, version=version, wire=True) == expected
    table = alerts_to_arrow(alerts, version)
    assert serialize_alerts(table, version=version, wire=True) == expected
    no_cut = [{**a, "cutoutScience": None, "prvDiaSources": None} for a in alerts]
    assert serialize_alerts(no_cut, version=version) == [
        serialize_alert(a, version=version) for a in no_cut]


def test_serialize_alerts_built_latest_schema():
    from pachon.alerts.schema import latest_version

    schema = load_schema()
    source = next(f["type"] for f in schema["fields"] if f["name"] == "diaSource")
    rows = []
    for i in range(5):
        row = {}
        for f in source["fields"]:
            t = f["type"][1] if isinstance(f["type"], list) else f["type"]
            t = t["type"] if isinstance(t, dict) else t
            value = {"long": i * 1000 + 1, "int": -i, "float": 0.25 * i, "double": 1e-3 * i,
                     "boolean": i % 2 == 0, "string": "r"}.get(t)
            nullable = isinstance(f["type"], list)
            row[f["name"]] = None if nullable and (i + len(f["name"])) % 3 == 0 else value
        rows.append({"diaSourceId": i + 1, "diaSource": row, "prvDiaSources": [row] * i})
    alerts = [{f["name"]: r.get(f["name"]) for f in schema["fields"]} for r in rows]
    expected = [serialize_alert(a, wire=True) for a in alerts]
    assert serialize_alerts(alerts, version=latest_version(), wire=True) == expected


def test_serialize_alerts_bad_alert_names_field(rubin_alerts):
    alerts, version = rubin_alerts
    bad = dict(alerts[0], diaSourceId=None)
    with pytest.raises(FormatError, match="diaSourceId"):
        serialize_alerts([alerts[1], bad], version=version)


def test_broker_vectorized_table_equals_reference(rubin_alerts):
    from pachon.alerts.broker.packets import Packet
    from pachon.alerts.broker.table import build_table, decode_rubin_batch, map_packet, rubin_table
    from pachon.alerts.serialize import deserialize_alert

    alerts, version = rubin_alerts
    raws = serialize_alerts(alerts, version=version, wire=True)
    batches = [f"v{i % 3}" for i in range(len(raws))]
    fast = rubin_table(decode_rubin_batch(raws, version), batches)
    mapped = [map_packet(Packet(deserialize_alert(r), "rubin", version)) for r in raws]
    ref = build_table("rubin", [m[0] for m in mapped], [m[1] for m in mapped], batches)
    assert fast.column_names == ref.column_names
    for name in ref.column_names:
        assert _same(fast.column(name).to_pylist(), ref.column(name).to_pylist()), name
    assert sum(f["ndet"] for f in fast.column("features").to_pylist()) == len(raws) + 16 + 22 + 2

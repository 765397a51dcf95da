"""The broker decodes only the fields its filters use, with the same matches as decoding all."""

from __future__ import annotations

import io

import fastavro
import numpy as np
import pytest

from pachon.alerts.avro_decode import decode_records
from pachon.alerts.broker.projection import ALWAYS_SOURCE_FIELDS, Needs, sql_needs


def test_sql_needs_reads_record_fields_conservatively() -> None:
    needs = sql_needs('DIASOURCE."psfFlux" > 3 AND diaObject.nDiaSources > 2 AND features.ndet >= 2')
    assert needs.records == {"diaSource": {"psfflux"}, "diaObject": {"ndiasources"}}
    assert sql_needs("alerts.diaSource.ra BETWEEN 1 AND 2").records == {"diaSource": {"ra"}}
    # a record used whole, or named in a way we do not parse: all of it
    assert sql_needs("struct_extract(diaSource, 'snr') > 1").records == {"diaSource": None}
    assert sql_needs("diaObject IS NOT NULL").records == {"diaObject": None}
    assert sql_needs("diaSource['snr'] > 1").records == {"diaSource": None}
    assert sql_needs("survey = 'diaSource'").everything
    assert sql_needs("len(COLUMNS(*)) > 0").everything
    assert sql_needs("candidate.magpsf < 18").records == {}
    both = sql_needs("diaSource.snr > 1").union(sql_needs("diaSource.x > 2"))
    assert both.records == {"diaSource": {"snr", "x"}}
    assert both.union(Needs(everything=True)).everything


def test_projected_batch_equals_full_decode(rubin_alerts) -> None:
    """Fields decoded under a projection equal those of fastavro; the others are absent."""
    from pachon.alerts.broker.table import decode_rubin_batch
    from pachon.alerts.schema import load_schema
    from pachon.alerts.serialize import serialize_alerts

    alerts, version = rubin_alerts
    raws = serialize_alerts(alerts, version=version, wire=True)
    decoded = decode_rubin_batch(raws, version, sql_needs("diaSource.x > 10")).to_pylist()
    expected = [fastavro.schemaless_reader(io.BytesIO(r[5:]), load_schema(version), None)
                for r in raws]
    for got, want in zip(decoded, expected, strict=True):
        assert set(got) == {"diaSource", "prvDiaSources"}  # no diaObject: not named
        assert set(got["diaSource"]) == ALWAYS_SOURCE_FIELDS | {"x"}
        assert got["diaSource"] == {k: want["diaSource"][k] for k in got["diaSource"]}
        history = want["prvDiaSources"]
        assert got["prvDiaSources"] == (None if history is None else [
            {k: p[k] for k in ("midpointMjdTai", "psfFlux", "band")} for p in history])
    # nothing but an id: every other field (histories and cutouts included) skipped
    schema = load_schema(version)
    ids = decode_records(schema, raws, skip=5, projection={"diaSourceId": True})
    assert ids.to_pylist() == [{"diaSourceId": a["diaSourceId"]} for a in alerts]


@pytest.mark.parametrize("where", ["diaSource.snr > 10 AND features.ndet >= 2",
                                   "diaObject.nDiaSources >= 1 OR diaSource.x < 500"])
def test_broker_matches_with_projection_equal_full_decoding(tmp_path, rubin_alerts, where) -> None:
    from pachon.alerts.broker import Broker
    from pachon.alerts.broker.packets import decode_message
    from pachon.alerts.serialize import serialize_alerts
    from pachon.alerts.stream import StreamMessage

    alerts, version = rubin_alerts
    raws = serialize_alerts(alerts, version=version, wire=True)
    msgs = [StreamMessage("t", str(i), r, "v0", 0, i, 0) for i, r in enumerate(raws)]
    results = []
    for k, everything in enumerate((False, True)):
        broker = Broker(tmp_path / f"out{k}", where=where)
        if everything:
            broker.needs = Needs(everything=True)
        matched = broker.process([decode_message(m, lazy=True) for m in msgs])
        broker.close()
        results.append(sorted(p.key for p in matched))
    assert results[0] == results[1]
    assert 0 < len(results[0]) < len(raws)  # the filter does select
    # and the hand count: the same filter on the fastavro-decoded packets
    if where.startswith("diaSource.snr"):
        ndet = [1 + len(a["prvDiaSources"] or []) for a in alerts]
        snr = np.array([a["diaSource"]["snr"] for a in alerts], float)
        hand = [str(i) for i in range(len(alerts)) if snr[i] > 10 and ndet[i] >= 2]
        assert results[0] == sorted(hand)


def test_corrupt_union_byte_in_a_skipped_field_is_reported() -> None:
    from pachon.core.errors import FormatError

    schema = fastavro.parse_schema({"type": "record", "name": "t.r", "fields": [
        {"name": "x", "type": ["null", "double"]}, {"name": "id", "type": "long"}]},
        named_schemas={})
    packets = []
    for i, x in enumerate([1.5, None, 2.5]):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, {"x": x, "id": -i})
        packets.append(buf.getvalue())
    ids = decode_records(schema, packets, projection={"id": True})
    assert ids.to_pylist() == [{"id": 0}, {"id": -1}, {"id": -2}]
    packets[1] = b"\x06" + packets[1][1:]  # union branch 3 of a two-branch union
    with pytest.raises(FormatError, match="packet"):
        decode_records(schema, packets, projection={"id": True})
    with pytest.raises(FormatError, match="union branch"):
        decode_records(schema, packets)

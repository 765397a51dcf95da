"""The fast paths give exactly what the reference paths give.

Cutouts joined per packet by the batch encoder, the raw container reader of the file log
(memory-mapped, values as views), zero-copy batch decoding, and the broker's vectorized
decode + ``writev`` output, each checked against fastavro / the per-packet path.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import fastavro
import numpy as np
import pytest

from pachon.alerts.avro_decode import decode_records
from pachon.alerts.broker import Broker, follow
from pachon.alerts.broker.packets import decode_message
from pachon.alerts.schema import load_schema
from pachon.alerts.serialize import read_avro_file, serialize_alert, serialize_alerts
from pachon.alerts.stream import StreamMessage, open_consumer, open_publisher, publish_batch
from pachon.alerts.stream.container import read_envelopes
from pachon.alerts.stream.filelog import ENVELOPE_SCHEMA
from pachon.core.errors import FormatError

TYPICAL = "diaSource.snr > 10 AND features.ndet >= 2"


def test_batch_encoder_joins_big_cutouts_per_packet_byte_identical(rubin_alerts):
    alerts, version = rubin_alerts
    rng = np.random.default_rng(3)
    batch = []
    for i, base in enumerate(alerts[:12]):
        alert = dict(base)
        alert["cutoutScience"] = rng.bytes(2000 + 37 * i)  # big: leaves the batch buffer
        alert["cutoutTemplate"] = None if i % 3 == 0 else rng.bytes(900)
        alert["cutoutDifference"] = None if i % 2 else b""
        batch.append(alert)
    packets = serialize_alerts(batch, version=version, wire=True)
    assert all(isinstance(p, bytes) for p in packets)
    assert packets == [serialize_alert(a, version=version, wire=True) for a in batch]


def _segment(records: list[dict], codec: str, appends: int) -> bytes:
    handle = io.BytesIO()
    step = len(records) // appends
    for k in range(appends):  # appended flushes: one header, several blocks
        part = records[k * step: (k + 1) * step if k < appends - 1 else None]
        fastavro.writer(handle, ENVELOPE_SCHEMA, part, codec=codec)
        handle.seek(0)
    return handle.getvalue()


@pytest.mark.parametrize("codec", ["null", "deflate"])
def test_raw_container_reader_matches_fastavro(codec):
    rng = np.random.default_rng(5)
    records = [{"key": f"{i}é", "value": rng.bytes(int(rng.integers(0, 3000))), "timestamp_ms": 10**12 + i}
               for i in range(40)]
    data = _segment(records, codec, appends=3)
    got = read_envelopes(data)
    assert [(k, bytes(v), t) for k, v, t in got] == [
        (r["key"], r["value"], r["timestamp_ms"]) for r in fastavro.reader(io.BytesIO(data))]
    if codec == "null":  # values are views into the buffer, not copies
        assert all(isinstance(v, memoryview) and v.obj is data for _, v, _ in got)
    damaged = bytearray(data)
    damaged[-3] ^= 0xFF  # the last sync marker
    with pytest.raises(FormatError, match="sync marker"):
        read_envelopes(bytes(damaged), "seg.avro")
    with pytest.raises(FormatError, match="seg.avro: not an Avro"):
        read_envelopes(b"PAR1....", "seg.avro")


def test_zero_copy_decoding_equals_decoding_of_bytes(night):
    schema = load_schema("10.0")
    packets = [v for _, items in night[:2] for _, v in items]
    half = len(packets) // 2
    # two "segments": packets as views into two separate buffers, with other bytes between
    bases = [b"xx".join(packets[:half]), b"yyy".join(packets[half:])]
    views = []
    for base, group, sep in ((bases[0], packets[:half], 2), (bases[1], packets[half:], 3)):
        pos = 0
        for p in group:
            views.append(memoryview(base)[pos: pos + len(p)])
            pos += len(p) + sep
    projection = {"diaSource": True, "prvDiaSources": {"psfFlux": True, "band": True}}
    fast = decode_records(schema, views, skip=5, projection=projection)
    slow = decode_records(schema, packets, skip=5, projection=projection)
    assert fast.to_pylist() == slow.to_pylist()
    assert fast.field("diaSource").field("diaSourceId").to_pylist() == [int(key) for _, items in night[:2]
                                                                         for key, _ in items]
    with pytest.raises(FormatError, match="do not end where"):
        decode_records(schema, [views[0][:-1], *views[1:]], skip=5, projection=projection)


def _reference(url: str, out: Path, n: int) -> list[str]:
    """Per-packet path: bytes copies, fastavro decoding, one packet mapped at a time."""
    broker = Broker(out, where=TYPICAL)
    consumer = open_consumer(url, "reference", ["alerts"])
    keys = []
    while msgs := consumer.poll(1000):
        msgs = [StreamMessage(m.topic, m.key, bytes(m.value), m.batch, m.partition, m.offset,
                              m.timestamp_ms) for m in msgs]
        keys += [p.key for p in broker.process([decode_message(m) for m in msgs])]
    broker.close()
    assert len(keys) <= n
    return keys


def test_file_log_fast_path_matches_the_per_packet_path_on_real_alerts(tmp_path, night):
    url = str(tmp_path / "log")
    publisher = open_publisher(url)
    for visit, items in night:
        publish_batch(publisher, "alerts", visit, items)
    publisher.close()
    n = sum(len(items) for _, items in night)
    expected = _reference(url, tmp_path / "ref", n)
    # hand count: S/N > 10 and at least two detections, from the decoded alerts themselves
    hand = [key for _, items in night for key, raw in items
            if (a := decode_message(StreamMessage("t", key, raw, "", 0, 0, 0)).alert)["diaSource"]["snr"]
            is not None and a["diaSource"]["snr"] > 10 and len(a["prvDiaSources"] or []) + 1 >= 2]
    assert sorted(expected) == sorted(hand) and 0 < len(hand) < n
    stats = follow(open_consumer(url, "fast", ["alerts"]), Broker(tmp_path / "fast", where=TYPICAL),
                   max_messages=n, idle_timeout=1)
    assert stats.received == n and stats.matched == len(hand)
    by_key = {key: raw for _, items in night for key, raw in items}
    written = {}
    for path in sorted((tmp_path / "fast" / "alerts").glob("*.avro")):
        for alert in read_avro_file(path):
            written[str(alert["diaSourceId"])] = serialize_alert(alert, version="10.0", wire=True)
    assert sorted(written) == sorted(hand)
    assert all(written[k] == by_key[k] for k in written)  # packets written through writev intact
    ref_files = sorted(os.listdir(tmp_path / "ref" / "alerts"))
    assert sorted(os.listdir(tmp_path / "fast" / "alerts")) == ref_files

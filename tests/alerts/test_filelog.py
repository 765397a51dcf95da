"""The append-only Avro file log: layout, offsets, crash recovery, idempotent republish."""

from __future__ import annotations

import json

import fastavro
import pytest

from pachon.alerts.stream import Deduplicator, publish_batch
from pachon.alerts.stream.filelog import FileLogConsumer, FileLogPublisher
from pachon.core.errors import ConfigError


def _items(prefix: int, n: int) -> list[tuple[str, bytes]]:
    return [(str(prefix + i), f"packet-{prefix + i}".encode()) for i in range(n)]


def test_segments_are_avro_and_groups_are_independent(tmp_path):
    pub = FileLogPublisher(tmp_path)
    publish_batch(pub, "lsst", "visit1", _items(100, 5))
    publish_batch(pub, "lsst", "visit2", _items(200, 3))
    pub.close()
    with open(tmp_path / "topics" / "lsst" / "visit1.avro", "rb") as handle:
        records = list(fastavro.reader(handle))  # any Avro tool reads a segment
    assert [r["key"] for r in records] == [str(100 + i) for i in range(5)]

    a = FileLogConsumer(tmp_path, "a")
    first = a.poll(4)
    assert [m.offset for m in first] == [0, 1, 2, 3] and first[0].value == b"packet-100"
    a.commit()
    rest = a.poll(100)
    assert [m.key for m in rest] == ["104", "200", "201", "202"] and rest[1].batch == "visit2"
    # not committed: a restarted consumer of group a starts again at offset 4
    again = FileLogConsumer(tmp_path, "a")
    assert again.lag() == 4 and again.poll(1)[0].offset == 4
    assert len(FileLogConsumer(tmp_path, "b").poll(100)) == 8


def test_republished_visit_is_idempotent_and_offsets_stay(tmp_path):
    pub = FileLogPublisher(tmp_path)
    publish_batch(pub, "lsst", "visit1", _items(0, 3))
    publish_batch(pub, "lsst", "visit2", _items(10, 2))
    pub.close()
    consumer = FileLogConsumer(tmp_path, "g")
    before = [(m.offset, m.key) for m in consumer.poll(100)]
    pub = FileLogPublisher(tmp_path)
    publish_batch(pub, "lsst", "visit1", _items(0, 5))  # 3 already there, 2 new
    pub.close()
    after = [(m.offset, m.key) for m in consumer.poll(100)]
    assert before == [(0, "0"), (1, "1"), (2, "2"), (3, "10"), (4, "11")]
    assert after == [(5, "3"), (6, "4")]


def test_torn_writes_are_ignored_and_repaired(tmp_path):
    pub = FileLogPublisher(tmp_path)
    publish_batch(pub, "lsst", "visit1", _items(0, 4))
    pub.close()
    topic = tmp_path / "topics" / "lsst"
    size = (topic / "visit1.avro").stat().st_size
    # a publisher killed mid-append: half a block in the segment, half a line in the index
    with open(topic / "visit1.avro", "ab") as handle:
        handle.write(b"\x02garbage-block")
    with open(topic / "index.jsonl", "a") as handle:
        handle.write('{"segment": "visit1.avro", "sta')
    assert [m.key for m in FileLogConsumer(tmp_path, "g").poll(100)] == ["0", "1", "2", "3"]
    # the restarted publisher truncates the torn tail before appending
    lines = (topic / "index.jsonl").read_text()
    (topic / "index.jsonl").write_text(lines[: lines.rfind("\n") + 1])
    pub = FileLogPublisher(tmp_path)
    publish_batch(pub, "lsst", "visit1", _items(0, 6))
    pub.close()
    entries = [json.loads(x) for x in (topic / "index.jsonl").read_text().splitlines()]
    assert entries[-1]["start"] == 4 and entries[-1]["stop"] == 6 and entries[-1]["bytes"] > size
    assert [m.key for m in FileLogConsumer(tmp_path, "h").poll(100)] == [str(i) for i in range(6)]


def test_one_publisher_per_topic_and_clear_errors(tmp_path):
    first = FileLogPublisher(tmp_path)
    publish_batch(first, "lsst", "v1", _items(0, 1))
    second = FileLogPublisher(tmp_path)
    with pytest.raises(ConfigError, match="held by another publisher"):
        second.publish("lsst", "9", b"x", batch="v1")
    with pytest.raises(ConfigError, match="not a valid file-log name"):
        first.publish("../evil", "9", b"x", batch="v1")
    first.close()
    with pytest.raises(ConfigError, match="not an alert file log"):
        FileLogConsumer(tmp_path / "nowhere", "g")


def test_deduplicator_journal_survives_a_torn_line(tmp_path):
    journal = tmp_path / "seen.txt"
    d = Deduplicator(journal)
    assert d.add("1") and d.add("2") and not d.add("1")
    d.close()
    with open(journal, "a") as handle:
        handle.write("3")  # killed before the newline
    d = Deduplicator(journal)
    assert "1" in d and "2" in d and "3" not in d and len(d) == 2
    assert d.add("3")
    d.close()
    assert journal.read_text().split() == ["1", "2", "3"]

"""The zero-setup alert stream: an append-only Avro file log on a local folder.

Layout under the log's root folder::

    topics/<topic>/<batch>.avro   one Avro container file per batch (visit) of envelope
                                  records {key, value, timestamp_ms}; readable by any Avro tool
    topics/<topic>/index.jsonl    one line per durable flush: segment, first and last record,
                                  and the byte length of the segment after that flush
    topics/<topic>/.lock          held (flock) by the one publisher of the topic
    groups/<group>/<topic>.json   committed offset of a consumer group

Offsets count records in index order, so they never move when an earlier visit is appended to
again.  Crash safety: a segment is appended and fsync'ed *before* its index line is written;
readers only read what the index declares, and a restarted publisher truncates a segment to its
last declared length before appending.  Publishing is idempotent per segment: a key already
durable in the batch's segment is not written twice, so a publisher killed mid-visit simply
republishes the whole visit on restart.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pachon.alerts.stream.api import StreamMessage
from pachon.core.errors import ConfigError, FormatError

__all__ = ["FileLogPublisher", "FileLogConsumer", "ENVELOPE_SCHEMA", "list_topics"]

log = logging.getLogger(__name__)

ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Message",
    "namespace": "pachon.stream",
    "fields": [
        {"name": "key", "type": "string"},
        {"name": "value", "type": "bytes"},
        {"name": "timestamp_ms", "type": "long"},
    ],
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def _check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(
            f"{kind} {name!r} is not a valid file-log name: use letters, digits, '.', '_', '-' "
            "(at most 200 characters, not starting with '.')"
        )
    return name


def _fsync_append(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def list_topics(root: str | Path) -> list[str]:
    """Return the topics of a file log (folders under ``topics/`` that have an index)."""
    base = Path(root) / "topics"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / "index.jsonl").exists())


@dataclass(frozen=True, slots=True)
class _Chunk:
    segment: str
    start: int  # first record (within the segment) of this chunk
    stop: int  # one past the last record
    nbytes: int  # segment length after the flush that wrote this chunk


class _Index:
    """Incremental reader of a topic's ``index.jsonl``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.chunks: list[_Chunk] = []
        self.total = 0
        self._pos = 0

    def refresh(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as handle:
            handle.seek(self._pos)
            data = handle.read()
        end = data.rfind(b"\n") + 1  # a torn last line is left for later (or forever)
        for line in data[:end].splitlines():
            entry = json.loads(line)
            chunk = _Chunk(entry["segment"], entry["start"], entry["stop"], entry["bytes"])
            self.chunks.append(chunk)
            self.total += chunk.stop - chunk.start
        self._pos += end

    def durable(self) -> dict[str, tuple[int, int]]:
        """Segment -> (records, bytes) declared durable."""
        out: dict[str, tuple[int, int]] = {}
        for chunk in self.chunks:
            out[chunk.segment] = (chunk.stop, chunk.nbytes)
        return out


def _read_segment(path: Path, nbytes: int) -> list[tuple[str, Any, int]]:
    """The ``(key, value, timestamp_ms)`` envelopes of the first ``nbytes`` of a segment.

    The segment is memory-mapped and each value is a ``memoryview`` into the map (no copy of
    the packets); segments of a codec the raw reader does not handle go through fastavro.
    """
    import mmap

    from pachon.alerts.stream.container import RAW_CODECS, container_header, read_envelopes

    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size < nbytes:
            raise FormatError(
                f"{path}: segment is shorter ({size} bytes) than its index declares ({nbytes}); "
                "the file log was damaged outside Pachón"
            )
        data = mmap.mmap(handle.fileno(), nbytes, access=mmap.ACCESS_READ)
    meta, _, _ = container_header(data, str(path))
    if meta.get("avro.codec", b"null").decode() in RAW_CODECS:
        return read_envelopes(data, str(path))
    import fastavro

    log.debug("%s: codec outside %s, read with fastavro", path, RAW_CODECS)
    return [(r["key"], r["value"], r["timestamp_ms"]) for r in fastavro.reader(io.BytesIO(data[:]))]


class FileLogPublisher:
    """Publishes packets to a file log (one publisher per topic at a time).

    Parameters
    ----------
    root
        Root folder of the log (created if needed).
    codec
        Avro block codec of the segments (``"null"`` or ``"deflate"``).
    """

    def __init__(self, root: str | Path, *, codec: str = "null") -> None:
        self.root = Path(root)
        self.codec = codec
        self._pending: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self._keys: dict[tuple[str, str], set[str]] = {}
        self._indexes: dict[str, _Index] = {}
        self._locks: dict[str, Any] = {}

    def _topic_dir(self, topic: str) -> Path:
        path = self.root / "topics" / _check_name("topic", topic)
        if topic not in self._locks:
            path.mkdir(parents=True, exist_ok=True)
            lock = open(path / ".lock", "a")  # noqa: SIM115 - held until close()
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                raise ConfigError(
                    f"topic {topic!r} of file log {self.root} is held by another publisher; "
                    "stop it first (one publisher per topic)"
                ) from None
            self._locks[topic] = lock
            index = _Index(path / "index.jsonl")
            index.refresh()
            self._indexes[topic] = index
        return path

    def _known_keys(self, topic: str, segment: str) -> set[str]:
        slot = (topic, segment)
        if slot not in self._keys:
            records, nbytes = self._indexes[topic].durable().get(segment, (0, 0))
            path = self._topic_dir(topic) / segment
            keys = {r[0] for r in _read_segment(path, nbytes)} if records else set()
            self._keys[slot] = keys
        return self._keys[slot]

    def publish(self, topic: str, key: str, value: bytes, *, batch: str) -> None:
        """Queue one packet; it is durable after the next :meth:`flush`."""
        self._topic_dir(topic)
        segment = _check_name("batch", batch) + ".avro"
        keys = self._known_keys(topic, segment)
        if key in keys:
            return
        keys.add(key)
        if not isinstance(value, bytes):
            value = bytes(value)  # fastavro writes bytes fields from bytes only
        self._pending[(topic, segment)].append(
            {"key": key, "value": value, "timestamp_ms": int(time.time() * 1000)}
        )

    def flush(self) -> None:
        """Append the queued packets to their segments, fsync, then extend the index."""
        import fastavro

        for (topic, segment), records in list(self._pending.items()):
            if not records:
                continue
            tdir = self._topic_dir(topic)
            index = self._indexes[topic]
            start, nbytes = index.durable().get(segment, (0, 0))
            path = tdir / segment
            with open(path, "a+b") as handle:
                handle.truncate(nbytes)  # drop a torn tail left by a killed publisher
                handle.seek(nbytes)
                fastavro.writer(handle, ENVELOPE_SCHEMA, records, codec=self.codec)
                handle.flush()
                os.fsync(handle.fileno())
                size = handle.tell()
            entry = {"segment": segment, "start": start, "stop": start + len(records), "bytes": size}
            _fsync_append(index.path, json.dumps(entry))
            index.refresh()
            log.debug("file log %s/%s: +%d packets", topic, segment, len(records))
        self._pending.clear()

    def close(self) -> None:
        """Flush and release the topic locks."""
        self.flush()
        for lock in self._locks.values():
            lock.close()
        self._locks.clear()


class FileLogConsumer:
    """Reads topics of a file log as a consumer group (offsets in ``groups/<group>/``).

    Parameters
    ----------
    root
        Root folder of the log.
    group
        Consumer group name; each group sees every packet.
    topics
        Topics to read; all topics of the log when None (new topics are picked up).
    """

    def __init__(self, root: str | Path, group: str, topics: list[str] | None = None) -> None:
        self.root = Path(root)
        if not (self.root / "topics").is_dir():
            raise ConfigError(
                f"{self.root} is not an alert file log (no 'topics' folder); publish to it "
                "first or check the path"
            )
        self.group = _check_name("group", group)
        self._fixed_topics = topics
        self._indexes: dict[str, _Index] = {}
        self._positions: dict[str, int] = {}
        self._committed: dict[str, int] = {}
        self._cache: tuple[str, str, int, list[tuple[str, Any, int]]] | None = None
        self._discover()

    def _offset_path(self, topic: str) -> Path:
        return self.root / "groups" / self.group / f"{topic}.json"

    def _discover(self) -> None:
        names = self._fixed_topics if self._fixed_topics is not None else list_topics(self.root)
        for topic in names:
            if topic in self._indexes:
                continue
            _check_name("topic", topic)
            self._indexes[topic] = _Index(self.root / "topics" / topic / "index.jsonl")
            path = self._offset_path(topic)
            offset = json.loads(path.read_text())["offset"] if path.exists() else 0
            self._positions[topic] = self._committed[topic] = offset

    def _records(self, topic: str, chunk: _Chunk) -> list[tuple[str, Any, int]]:
        cache = self._cache
        if cache is None or cache[:3] != (topic, chunk.segment, chunk.nbytes):
            path = self.root / "topics" / topic / chunk.segment
            self._cache = cache = (topic, chunk.segment, chunk.nbytes, _read_segment(path, chunk.nbytes))
        return cache[3]

    def _read(self, topic: str, max_messages: int) -> list[StreamMessage]:
        index = self._indexes[topic]
        position = self._positions[topic]
        out: list[StreamMessage] = []
        base = 0
        for chunk in index.chunks:
            size = chunk.stop - chunk.start
            if position < base + size and len(out) < max_messages:
                records = self._records(topic, chunk)
                batch = chunk.segment.removesuffix(".avro")
                first = chunk.start + (position - base)
                last = min(chunk.stop, first + max_messages - len(out))
                for i, (key, value, stamp) in enumerate(records[first:last]):
                    out.append(StreamMessage(topic, key, value, batch, 0, position + i, stamp))
                position += last - first
            base += size
            if len(out) >= max_messages:
                break
        self._positions[topic] = position
        return out

    def poll(self, max_messages: int = 1000, timeout: float = 0.0) -> list[StreamMessage]:
        """Return up to ``max_messages`` packets after the current position.

        Parameters
        ----------
        max_messages
            Most packets returned.
        timeout
            Seconds to wait for new packets when there are none (the log is re-read
            every 50 ms).

        Returns
        -------
        list of StreamMessage
            Possibly empty.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self._fixed_topics is None:
                self._discover()
            out: list[StreamMessage] = []
            for topic, index in self._indexes.items():
                index.refresh()
                out.extend(self._read(topic, max_messages - len(out)))
                if len(out) >= max_messages:
                    break
            if out or time.monotonic() >= deadline:
                return out
            time.sleep(0.05)

    def commit(self) -> bool:
        """Persist the positions reached (atomic replace of each topic's offset file); True."""
        for topic, position in self._positions.items():
            if self._committed.get(topic) == position:
                continue
            path = self._offset_path(topic)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            with open(tmp, "w") as handle:
                json.dump({"offset": position}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
            self._committed[topic] = position
        return True

    def lag(self) -> int:
        """Packets declared in the index that this consumer has not yet read."""
        total = 0
        for topic, index in self._indexes.items():
            index.refresh()
            total += index.total - self._positions[topic]
        return total

    def close(self) -> None:
        """Release the cached segment (positions not committed are forgotten)."""
        self._cache = None

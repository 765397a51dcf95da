"""The stream API shared by the file log and Kafka: messages, publishers, consumers.

A stream carries opaque packets (``bytes``, normally the Confluent wire format) with a key
(the ``diaSourceId`` as decimal ASCII), a topic and a batch label (the visit).  Delivery is
at least once: a consumer may see a packet again after a crash and deduplicates by key
(:class:`Deduplicator`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["StreamMessage", "Publisher", "Consumer", "Deduplicator", "publish_batch"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """One packet read from a stream.

    Attributes
    ----------
    topic
        Topic (survey stream) it was published to.
    key
        The ``diaSourceId`` as decimal text.
    value
        The packet as a read-only ``memoryview``: into the memory-mapped segment (file log),
        or into one buffer per poll that the values were copied to once (Kafka), so that a
        batch is decoded in place; ``bytes(value)`` gives an independent copy.
    batch
        Batch (visit) label given by the publisher.
    partition
        Partition (always 0 in the file log).
    offset
        Offset within the partition.
    timestamp_ms
        Publication time, milliseconds since the Unix epoch (used to measure lag).
    """

    topic: str
    key: str
    value: bytes | memoryview
    batch: str
    partition: int
    offset: int
    timestamp_ms: int


@runtime_checkable
class Publisher(Protocol):
    """Writes packets to topics; :meth:`flush` makes everything published durable."""

    def publish(self, topic: str, key: str, value: bytes, *, batch: str) -> None:
        """Queue one packet for ``topic``."""

    def flush(self) -> None:
        """Block until every queued packet is durably stored."""

    def close(self) -> None:
        """Flush and release resources."""


@runtime_checkable
class Consumer(Protocol):
    """Reads packets of a consumer group; offsets advance only on :meth:`commit`."""

    def poll(self, max_messages: int = 1000, timeout: float = 0.0) -> list[StreamMessage]:
        """Return up to ``max_messages`` new packets, waiting at most ``timeout`` seconds."""

    def commit(self) -> bool:
        """Record that every packet returned so far has been processed.

        Returns False when the offsets could not be stored because the group was rebalancing
        (Kafka): those packets are then delivered again, to this or another member.
        """

    def lag(self) -> int:
        """Number of packets published but not yet returned to this consumer."""

    def close(self) -> None:
        """Release resources (without committing)."""


def publish_batch(
    publisher: Publisher, topic: str, batch: str, items: Iterable[tuple[str, bytes]]
) -> int:
    """Publish a whole batch (visit) and flush it.

    Parameters
    ----------
    publisher
        Any :class:`Publisher`.
    topic
        Destination topic.
    batch
        Batch (visit) label.
    items
        ``(key, packet)`` pairs.

    Returns
    -------
    int
        Number of packets published.
    """
    count = 0
    for key, value in items:
        publisher.publish(topic, key, value, batch=batch)
        count += 1
    publisher.flush()
    return count


class Deduplicator:
    """Remembers the keys already processed, optionally in a crash-safe journal file.

    The journal holds one key per line and is appended (and flushed) in :meth:`add`; a torn
    last line left by a killed process is ignored on reopening.

    Parameters
    ----------
    journal
        Path of the journal; in memory only when None.
    """

    def __init__(self, journal: str | Path | None = None) -> None:
        self._seen: set[str] = set()
        self._handle = None
        if journal is not None:
            path = Path(journal)
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                data = path.read_bytes()
                complete = data[: data.rfind(b"\n") + 1]
                self._seen.update(complete.decode().split())
                if len(complete) != len(data):
                    log.warning("%s: dropping a torn last line left by a crash", path)
                    with open(path, "r+b") as handle:
                        handle.truncate(len(complete))
            self._handle = open(path, "ab")  # noqa: SIM115 - closed in close()

    def __contains__(self, key: str) -> bool:
        return key in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, key: str) -> bool:
        """Record ``key``; return True if it is new, False if it was seen before."""
        if key in self._seen:
            return False
        self._seen.add(key)
        if self._handle is not None:
            self._handle.write(key.encode() + b"\n")
        return True

    def sync(self) -> None:
        """Flush the journal to disk (call before committing consumer offsets)."""
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        """Flush and close the journal."""
        if self._handle is not None:
            self.sync()
            self._handle.close()
            self._handle = None

"""Kafka back end of the alert stream (confluent-kafka), with the file log's API.

Packets are sent as they are (the Confluent wire format: magic byte, 4-byte schema id, Avro
body), keyed by ``diaSourceId`` so that a replay lands on the same partition and brokers with
log compaction keep one copy; the batch (visit) label travels in the ``pachon-batch`` header.
Publishing waits for ``acks=all`` in :meth:`KafkaPublisher.flush`.

The consumer assigns itself every partition of its topics and commits explicit offsets to the
group coordinator: one process per consumer group, which is what a mini broker needs, and it
avoids depending on group rebalancing (not every Kafka-protocol broker implements it fully).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pachon.alerts.stream.api import StreamMessage
from pachon.core.errors import ConfigError, PachonError

__all__ = ["KafkaPublisher", "KafkaConsumer", "StreamError", "BATCH_HEADER", "wait_for_topic"]

log = logging.getLogger(__name__)

BATCH_HEADER = "pachon-batch"


class StreamError(PachonError, RuntimeError):
    """The stream back end failed (names the server and what to check)."""


def _kafka() -> Any:
    try:
        import confluent_kafka
    except ModuleNotFoundError as exc:
        raise ConfigError(
            "the Kafka alert stream needs confluent-kafka: pip install 'pachon[kafka]'"
        ) from exc
    return confluent_kafka


class KafkaPublisher:
    """Publishes packets to Kafka topics.

    Parameters
    ----------
    bootstrap
        ``host:port`` of the brokers.
    config
        Extra librdkafka producer settings.
    """

    def __init__(self, bootstrap: str, *, config: dict[str, Any] | None = None) -> None:
        kafka = _kafka()
        self.bootstrap = bootstrap
        settings = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "none",
            "message.max.bytes": 10_000_000,
        }
        settings.update(config or {})
        self._producer = kafka.Producer(settings)
        self._errors: list[str] = []

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()} key={msg.key()!r}: {err}")

    def publish(self, topic: str, key: str, value: bytes, *, batch: str) -> None:
        """Queue one packet (sent in the background; durable after :meth:`flush`)."""
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key.encode(), headers=[(BATCH_HEADER, batch.encode())],
                    on_delivery=self._delivered,
                )
                break
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain
        self._producer.poll(0)

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every queued packet is acknowledged by the brokers.

        Raises
        ------
        StreamError
            When packets remain unacknowledged or were rejected.
        """
        left = self._producer.flush(timeout)
        if left or self._errors:
            errors, self._errors = self._errors[:5], []
            raise StreamError(
                f"Kafka at {self.bootstrap}: {left} packets not acknowledged after {timeout} s; "
                f"errors: {errors}; check that the broker is up, then publish the batch again "
                "(keys make the replay idempotent for consumers)"
            )

    def close(self) -> None:
        """Flush the queue."""
        self.flush()


class KafkaConsumer:
    """Reads Kafka topics as a consumer group, with explicit offset commits.

    Parameters
    ----------
    bootstrap
        ``host:port`` of the brokers.
    group
        Consumer group id (offsets are stored by the Kafka group coordinator).
    topics
        Topics to read.
    config
        Extra librdkafka consumer settings.
    """

    def __init__(
        self, bootstrap: str, group: str, topics: list[str], *, config: dict[str, Any] | None = None
    ) -> None:
        kafka = _kafka()
        self.bootstrap, self.group, self.topics = bootstrap, group, list(topics)
        settings = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.message.max.bytes": 10_000_000,
        }
        settings.update(config or {})
        self._kafka = kafka
        self._consumer = kafka.Consumer(settings)
        self._next: dict[tuple[str, int], int] = {}
        self._partitions: list[Any] = []
        self._assign()

    def _assign(self) -> None:
        kafka = self._kafka
        wanted = []
        for topic in self.topics:
            meta = self._consumer.list_topics(topic, timeout=10)
            info = meta.topics.get(topic)
            if info is None or info.error is not None or not info.partitions:
                raise StreamError(
                    f"Kafka at {self.bootstrap}: topic {topic!r} is unknown "
                    f"({getattr(info, 'error', None)}); publish to it first or check the name"
                )
            wanted += [kafka.TopicPartition(topic, p) for p in sorted(info.partitions)]
        committed = self._consumer.committed(wanted, timeout=10)
        start = []
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else kafka.OFFSET_BEGINNING
            start.append(kafka.TopicPartition(tp.topic, tp.partition, offset))
        self._partitions = wanted
        self._consumer.assign(start)

    def poll(self, max_messages: int = 1000, timeout: float = 0.0) -> list[StreamMessage]:
        """Return up to ``max_messages`` packets, waiting at most ``timeout`` seconds."""
        out: list[StreamMessage] = []
        msgs = self._consumer.consume(max_messages, max(timeout, 0.001))
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() == self._kafka.KafkaError._PARTITION_EOF:
                    continue
                raise StreamError(f"Kafka at {self.bootstrap}, group {self.group}: {err}")
            headers = dict(msg.headers() or [])
            batch = headers.get(BATCH_HEADER, b"").decode()
            _, ts = msg.timestamp()
            out.append(
                StreamMessage(msg.topic(), (msg.key() or b"").decode(), msg.value(), batch,
                              msg.partition(), msg.offset(), ts)
            )
            self._next[(msg.topic(), msg.partition())] = msg.offset() + 1
        return out

    def commit(self) -> None:
        """Commit, synchronously, the offsets after every packet returned so far."""
        if not self._next:
            return
        offsets = [self._kafka.TopicPartition(t, p, o) for (t, p), o in self._next.items()]
        self._consumer.commit(offsets=offsets, asynchronous=False)

    def lag(self) -> int:
        """Packets between this consumer's position and the end of each partition."""
        total = 0
        for tp in self._partitions:
            low, high = self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            position = self._next.get((tp.topic, tp.partition))
            if position is None:
                got = self._consumer.committed([tp], timeout=5)[0].offset
                position = got if got >= 0 else low
            total += max(high - position, 0)
        return total

    def close(self) -> None:
        """Leave without committing."""
        self._consumer.close()


def wait_for_topic(bootstrap: str, topic: str, timeout: float = 10.0) -> None:
    """Wait until ``topic`` exists on the brokers (it is auto-created by the first publish)."""
    _kafka()
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if topic in admin.list_topics(timeout=timeout).topics:
            return
        time.sleep(0.05)
    raise StreamError(f"Kafka at {bootstrap}: topic {topic!r} did not appear within {timeout} s")

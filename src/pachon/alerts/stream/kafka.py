"""Kafka back end of the alert stream (confluent-kafka), with the file log's API.

Packets are sent as they are (the Confluent wire format: magic byte, 4-byte schema id, Avro
body), keyed by ``diaSourceId`` so that a replay lands on the same partition and brokers with
log compaction keep one copy; the batch (visit) label travels in the ``pachon-batch`` header.
Publishing waits for ``acks=all`` in :meth:`KafkaPublisher.flush`.

Consumers join their group (``subscribe``): the members of a group share the partitions of its
topics, and when one leaves or dies its partitions go to the others, starting from the group's
committed offsets.  ``membership="all"`` instead assigns one process every partition (no group
rebalancing; offsets are still committed to the group).

Group joining and Tansu: Tansu 0.6 (the broker the tests use) answers the first JoinGroup of a
forming group only after about half the session timeout, to gather the members; with
librdkafka's default ``session.timeout.ms`` (45 s) a consumer waits ~23 s before its first
assignment, which looks like a hang.  The default session timeout here is therefore 6 s
(joining takes ~3 s on Tansu, immediate on Apache Kafka after its initial rebalance delay); a
dead member's partitions move to the others after that timeout.
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
#: Value buffers a consumer keeps for reuse (see :meth:`KafkaConsumer._buffer`).
ARENAS = 3


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
    """Reads Kafka topics as a member of a consumer group, with explicit offset commits.

    Parameters
    ----------
    bootstrap
        ``host:port`` of the brokers.
    group
        Consumer group id (offsets are stored by the Kafka group coordinator).
    topics
        Topics to read.
    config
        Extra librdkafka consumer settings (they override the defaults here).
    membership
        ``"group"``: subscribe, sharing the partitions with the other members of the group
        (rebalanced when members come and go); ``"all"``: assign this process every partition.
    join_timeout
        Seconds to wait, in the constructor, for the first partition assignment of the group.
    linger
        Once a poll has its first packet, seconds it may wait for more (up to its
        ``max_messages``): fewer, larger batches for the broker, at most this much more lag.

    Raises
    ------
    StreamError
        When a topic is unknown or no assignment came within ``join_timeout``.

    Notes
    -----
    Packets returned by :meth:`poll` are ``memoryview`` slices of one buffer per poll (the
    values copied once from librdkafka), so that the broker decodes a batch in place, as on
    the file log; ``bytes(msg.value)`` gives an independent copy.
    """

    def __init__(
        self, bootstrap: str, group: str, topics: list[str], *, config: dict[str, Any] | None = None,
        membership: str = "group", join_timeout: float = 30.0, linger: float = 0.2,
    ) -> None:
        kafka = _kafka()
        if membership not in ("group", "all"):
            raise ConfigError(f"membership must be 'group' or 'all', got {membership!r}")
        self.bootstrap, self.group, self.topics = bootstrap, group, list(topics)
        self.membership, self.linger = membership, linger
        settings: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.message.max.bytes": 10_000_000,
            "fetch.wait.max.ms": 100,  # a live consumer sees new packets within 0.1 s
            "queued.max.messages.kbytes": 262_144,  # read ahead ~2,000 alerts with cutouts
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
        }
        settings.update(config or {})
        self._kafka = kafka
        self._consumer = kafka.Consumer(settings)
        self._pending: dict[tuple[str, int], int] = {}
        self._stash: list[Any] = []
        self._assigned: list[Any] | None = None
        self._arenas: list[bytearray] = []
        try:
            self._start(join_timeout)
        except BaseException:
            self._consumer.close()
            raise

    def _start(self, join_timeout: float) -> None:
        """Assign every partition, or join the group and wait for the first assignment."""
        if self.membership == "all":
            self._assign_all()
        else:
            self._partitions()  # unknown topics: a clear error now, not a silent empty assignment
            self._consumer.subscribe(self.topics, on_assign=self._on_assign,
                                     on_revoke=self._on_revoke, on_lost=self._on_revoke)
            deadline = time.monotonic() + join_timeout
            while self._assigned is None:
                if time.monotonic() > deadline:
                    raise StreamError(
                        f"Kafka at {self.bootstrap}: group {self.group!r} gave no partition assignment "
                        f"within {join_timeout} s; check that the broker is up and supports "
                        "consumer groups, or use membership='all'"
                    )
                self._stash += self._consumer.consume(1000, 0.1)

    # -- partitions --------------------------------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self._assigned = list(partitions)
        log.info("Kafka group %s: assigned %s", self.group,
                 [f"{p.topic}[{p.partition}]" for p in partitions])

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        # Packets of these partitions returned but not committed go to their next owner
        # (at least once: the consumer deduplicates by key).
        gone = {(p.topic, p.partition) for p in partitions}
        for tp in gone:
            self._pending.pop(tp, None)
        self._stash = [m for m in self._stash if (m.topic(), m.partition()) not in gone]
        self._assigned = [p for p in self._assigned or [] if (p.topic, p.partition) not in gone]
        log.info("Kafka group %s: revoked %s", self.group, sorted(gone))

    def _partitions(self) -> list[Any]:
        """Every partition of the topics; StreamError when a topic is unknown."""
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
        return wanted

    def _assign_all(self) -> None:
        kafka = self._kafka
        wanted = self._partitions()
        committed = self._consumer.committed(wanted, timeout=10)
        start = []
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else kafka.OFFSET_BEGINNING
            start.append(kafka.TopicPartition(tp.topic, tp.partition, offset))
        self._assigned = wanted
        self._consumer.assign(start)

    def assignment(self) -> list[tuple[str, int]]:
        """The ``(topic, partition)`` pairs this member reads now."""
        return sorted((p.topic, p.partition) for p in self._assigned or [])

    # -- reading -----------------------------------------------------------------------------

    def _fetch(self, max_messages: int, timeout: float) -> list[Any]:
        """Up to ``max_messages`` raw messages: what is queued, else the first to arrive."""
        msgs, self._stash = self._stash[:max_messages], self._stash[max_messages:]
        if len(msgs) < max_messages:
            msgs += self._consumer.consume(max_messages - len(msgs), 0)
        if not msgs and timeout > 0:
            msgs = self._consumer.consume(1, timeout)
        if msgs and self.linger > 0:
            # more may be on their way: wait up to ``linger`` s to fill the batch (a batch
            # costs the broker a fixed overhead), never for a full ``max_messages``
            deadline = time.monotonic() + self.linger
            while len(msgs) < max_messages and (left := deadline - time.monotonic()) > 0:
                msgs += self._consumer.consume(max_messages - len(msgs), min(left, 0.02))
        elif msgs and len(msgs) < max_messages:
            msgs += self._consumer.consume(max_messages - len(msgs), 0)
        return msgs

    def _buffer(self, size: int) -> bytearray:
        """A buffer of at least ``size`` bytes that no packet refers to any more.

        Buffers are reused (a fresh one costs page faults on every byte): the caller usually
        still holds the previous batch while it polls the next, so a few are kept.
        """
        for arena in self._arenas:
            if len(arena) >= size:
                try:  # a bytearray cannot grow while memoryviews of it exist
                    arena.append(0)
                    arena.pop()
                    return arena
                except BufferError:
                    continue
        arena = bytearray(max(size, 1 << 20))
        self._arenas = [arena, *self._arenas[:ARENAS - 1]]
        return arena

    def poll(self, max_messages: int = 1000, timeout: float = 0.0) -> list[StreamMessage]:
        """Return up to ``max_messages`` packets, waiting at most ``timeout`` s for the first
        (then at most ``linger`` s for more)."""
        good = []
        for msg in self._fetch(max_messages, timeout):
            err = msg.error()
            if err is not None:
                if err.code() == self._kafka.KafkaError._PARTITION_EOF:
                    continue
                raise StreamError(f"Kafka at {self.bootstrap}, group {self.group}: {err}")
            good.append(msg)
        if not good:
            return []
        values = [m.value() or b"" for m in good]
        arena = self._buffer(sum(map(len, values)))
        view = memoryview(arena).toreadonly()
        out: list[StreamMessage] = []
        pos = 0
        for msg, value in zip(good, values, strict=True):
            end = pos + len(value)
            arena[pos:end] = value
            batch = b""
            for name, data in msg.headers() or ():
                if name == BATCH_HEADER:
                    batch = data
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            out.append(StreamMessage(topic, (msg.key() or b"").decode(), view[pos:end],
                                     batch.decode(), partition, offset, msg.timestamp()[1]))
            self._pending[(topic, partition)] = offset + 1
            pos = end
        return out

    def commit(self) -> bool:
        """Commit, synchronously, the offsets after every packet returned so far.

        Returns
        -------
        bool
            False when the group coordinator refused the commit because the group is
            rebalancing: the packets are then delivered again to the partitions' next owner
            (at least once); the refusal is logged.

        Raises
        ------
        StreamError
            On any other failure.
        """
        if not self._pending:
            return True
        kafka = self._kafka
        offsets = [kafka.TopicPartition(t, p, o) for (t, p), o in self._pending.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except kafka.KafkaException as exc:
            code = exc.args[0].code() if exc.args else None
            retriable = {kafka.KafkaError.REBALANCE_IN_PROGRESS, kafka.KafkaError.ILLEGAL_GENERATION,
                         kafka.KafkaError.UNKNOWN_MEMBER_ID, kafka.KafkaError._NO_OFFSET}
            if code not in retriable:
                raise StreamError(f"Kafka at {self.bootstrap}, group {self.group}: commit failed: "
                                  f"{exc}") from exc
            log.warning("Kafka group %s: commit dropped during a rebalance (%s); those packets "
                        "will be delivered again", self.group, exc)
            self._pending.clear()
            return False
        self._pending.clear()
        return True

    def lag(self) -> int:
        """Packets between this member's position and the end of its partitions.

        Uses the high watermarks of the last fetch responses (no broker round trip) where known.
        """
        parts = list(self._assigned or [])
        if not parts:
            return 0
        positions = self._consumer.position(parts)
        total = 0
        for tp in positions:
            low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:
                low, high = self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            position = tp.offset
            if position < 0:
                got = self._consumer.committed([tp], timeout=5)[0].offset
                position = got if got >= 0 else low
            total += max(high - position, 0)
        return total

    def close(self) -> None:
        """Leave the group (without committing)."""
        self._stash = []
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

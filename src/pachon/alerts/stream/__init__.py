"""Alert distribution: an append-only Avro file log (default) and Kafka, with one API.

``open_publisher(url)`` / ``open_consumer(url, group, topics)`` take either a folder (the file
log) or ``kafka://host:port``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pachon.alerts.stream.api import Consumer, Deduplicator, Publisher, StreamMessage, publish_batch

__all__ = [
    "StreamMessage",
    "Publisher",
    "Consumer",
    "Deduplicator",
    "publish_batch",
    "open_publisher",
    "open_consumer",
    "is_kafka_url",
]


def is_kafka_url(url: str | Path) -> bool:
    """True when ``url`` names Kafka brokers (``kafka://host:port``)."""
    return str(url).startswith("kafka://")


def open_publisher(url: str | Path) -> Publisher:
    """Open a publisher on a file log folder or on ``kafka://host:port``."""
    if is_kafka_url(url):
        from pachon.alerts.stream.kafka import KafkaPublisher

        return KafkaPublisher(str(url).removeprefix("kafka://").rstrip("/"))
    from pachon.alerts.stream.filelog import FileLogPublisher

    return FileLogPublisher(url)


def open_consumer(
    url: str | Path, group: str, topics: list[str] | None = None, *, membership: str = "group",
    config: dict[str, Any] | None = None,
) -> Consumer:
    """Open a consumer of a group on a file log folder or on ``kafka://host:port``.

    Parameters
    ----------
    url
        The file log folder or ``kafka://host:port``.
    group
        Consumer group.
    topics
        Topics to read (required for Kafka; all topics of a file log when None).
    membership
        Kafka only: ``"group"`` (default) joins the group, whose members share the partitions
        (a dead member's partitions go to the others); ``"all"`` assigns this process every
        partition.  A file-log group has one member (one partition per topic).
    config
        Kafka only: extra librdkafka consumer settings (e.g. ``session.timeout.ms``).

    Returns
    -------
    Consumer
        The consumer.
    """
    if is_kafka_url(url):
        from pachon.alerts.stream.kafka import KafkaConsumer
        from pachon.core.errors import ConfigError

        if not topics:
            raise ConfigError(f"reading {url} needs the topics to follow (--topic)")
        return KafkaConsumer(str(url).removeprefix("kafka://").rstrip("/"), group, topics,
                             config=config, membership=membership)
    from pachon.alerts.stream.filelog import FileLogConsumer

    return FileLogConsumer(url, group, topics)

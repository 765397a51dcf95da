"""The mini broker: filter batches of alerts, write what matches, report throughput and lag.

``Broker.process(items)`` takes decoded packets (and bad ones, which are quarantined), maps
them to the common filter fields, computes features and the cross-match, applies the filters
and writes the matching packets, their summary and optionally re-publishes them to an output
topic.  :func:`replay` feeds it from files (as fast as possible or at a speed-up of the
original cadence); :func:`follow` from a live stream (file log or Kafka), committing offsets
only after the outputs are written (at least once) and skipping keys already processed.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pachon.alerts.broker.filters import PythonFilter, SqlFilter
from pachon.alerts.broker.outputs import AlertWriter, Quarantine, SummaryWriter
from pachon.alerts.broker.packets import (
    BadPacket,
    LazyAlert,
    Packet,
    decode_message,
    iter_source,
)
from pachon.alerts.broker.projection import Needs
from pachon.alerts.broker.table import (
    ROW_COLUMN,
    build_table,
    decode_rubin_batch,
    map_packet,
    rubin_table,
)
from pachon.alerts.broker.xmatch import Catalog
from pachon.alerts.stream.api import Consumer, Deduplicator, Publisher
from pachon.core.errors import FormatError, QueryError

__all__ = ["Broker", "BrokerStats", "replay", "follow"]

log = logging.getLogger(__name__)

#: Seconds between two progress lines (alerts processed, lag) of :func:`follow`.
LAG_REPORT_S = 5.0


@dataclass
class BrokerStats:
    """Counters of a broker run."""

    received: int = 0
    matched: int = 0
    quarantined: int = 0
    duplicates: int = 0
    batches: int = 0
    seconds: float = 0.0
    lags: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Alerts processed per second of broker time."""
        return self.received / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain summary (with lag percentiles in seconds when measured)."""
        out = {"received": self.received, "matched": self.matched, "quarantined": self.quarantined,
               "duplicates": self.duplicates, "batches": self.batches,
               "seconds": round(self.seconds, 3), "alerts_per_s": round(self.rate, 1)}
        if self.lags:
            lags = np.asarray(self.lags)
            out.update(lag_median_s=round(float(np.median(lags)), 3), lag_max_s=round(float(lags.max()), 3))
        return out


class Broker:
    """Filters alerts and writes the matching ones.

    Parameters
    ----------
    out_dir
        Output folder (``alerts/``, ``summary.parquet``, ``quarantine/``).
    where
        SQL WHERE expression over the flattened alert, or None.
    functions
        Vectorized Python filters (see :class:`~pachon.alerts.broker.filters.PythonFilter`).
    catalog
        Cross-match catalog (a path or a :class:`Catalog`), or None.
    radius_arcsec
        Cross-match radius.
    publisher, out_topic
        Optional stream to re-publish matching packets to (packets that came as bytes).
    dedup
        Keys already processed (a journal in live mode); in memory when None.
    """

    def __init__(
        self,
        out_dir: str | Path,
        *,
        where: str | None = None,
        functions: Iterable[Any] = (),
        catalog: str | Path | Catalog | None = None,
        radius_arcsec: float = 1.0,
        publisher: Publisher | None = None,
        out_topic: str | None = None,
        dedup: Deduplicator | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.filters: list[Any] = [SqlFilter(where)] if where else []
        self.filters += [f if isinstance(f, PythonFilter) else PythonFilter(f) for f in functions]
        self.catalog = Catalog.read(catalog) if isinstance(catalog, str | Path) else catalog
        self.radius_arcsec = radius_arcsec
        self.publisher, self.out_topic = publisher, out_topic
        self.dedup = dedup if dedup is not None else Deduplicator()
        self.alerts = AlertWriter(self.out_dir)
        self.summary = SummaryWriter(self.out_dir)
        self.quarantine = Quarantine(self.out_dir)
        self.stats = BrokerStats()
        self.needs = Needs()  # no filter: the fields of the table and summary only
        for flt in self.filters:  # a Python filter may read any field: all of them
            self.needs = self.needs.union(flt.needs if isinstance(flt, SqlFilter) else
                                          Needs(everything=True))

    def _bad(self, bad: BadPacket) -> None:
        self.quarantine.put(bad)
        self.stats.quarantined += 1

    def _map(self, item: Packet, groups: dict[str, list[tuple[Packet, Any, Any]]]) -> None:
        """Reference path: map one decoded packet to the filter fields."""
        try:
            mapped, curve = map_packet(item)
        except (FormatError, KeyError, TypeError, ValueError) as exc:
            self._bad(BadPacket(bytes(item.raw or b""), f"{item.source}: cannot map packet: {exc}",
                                item.source, item.key, item.batch))
            return
        if not self.dedup.add(str(mapped["alertId"])):
            self.stats.duplicates += 1
            return
        groups[item.survey].append((item, mapped, curve))

    def _fast(self, version: str, packets: list[Packet],
              groups: dict[str, list[tuple[Packet, Any, Any]]]) -> Any | None:
        """Vectorized path for Rubin wire packets of one version; None when it falls back."""
        try:
            decoded = decode_rubin_batch([p.raw for p in packets], version, self.needs)
            table = rubin_table(decoded, [p.batch for p in packets], catalog=self.catalog,
                                radius_arcsec=self.radius_arcsec)
        except (FormatError, KeyError, TypeError, ValueError) as exc:
            log.debug("vectorized decoding of %d packets failed (%s): packet by packet",
                      len(packets), exc)
            for p in packets:
                self._map(p, groups)
            return None
        ids = table.column("alertId").to_pylist()
        keep = np.fromiter((self.dedup.add(str(i)) for i in ids), bool, len(ids))
        self.stats.duplicates += int((~keep).sum())
        if not keep.all():
            import pyarrow as pa

            table = table.filter(pa.array(keep)).drop_columns([ROW_COLUMN])
            table = table.add_column(0, ROW_COLUMN, pa.array(np.arange(table.num_rows)))
            packets = [p for p, k in zip(packets, keep.tolist(), strict=True) if k]
        return packets, table

    def process(self, items: Iterable[Packet | BadPacket]) -> list[Packet]:
        """Filter one batch; write and return the matching packets."""
        start = time.perf_counter()
        groups: dict[str, list[tuple[Packet, dict[str, Any], Any]]] = defaultdict(list)
        fast: dict[str, list[Packet]] = defaultdict(list)
        for item in items:
            self.stats.received += 1
            if isinstance(item, BadPacket):
                self._bad(item)
            elif isinstance(item.alert, LazyAlert) and not item.alert.decoded:
                fast[item.schema_key].append(item)
            else:
                self._map(item, groups)
        tables: list[tuple[str, list[Packet], Any]] = []
        for version, packets in fast.items():
            done = self._fast(version, packets, groups)
            if done is not None:
                tables.append(("rubin", *done))
        for survey, entries in groups.items():
            packets = [e[0] for e in entries]
            tables.append((survey, packets, build_table(
                survey, [e[1] for e in entries], [e[2] for e in entries],
                [p.batch for p in packets], catalog=self.catalog, radius_arcsec=self.radius_arcsec)))
        matched: list[Packet] = []
        now = time.time()
        for survey, packets, table in tables:
            matched += self._filter_and_write(survey, packets, table, now)
        if self.publisher is not None:
            self.publisher.flush()
        self.dedup.sync()
        self.stats.matched += len(matched)
        self.stats.batches += 1
        self.stats.seconds += time.perf_counter() - start
        return matched

    def _filter_and_write(self, survey: str, packets: list[Packet], table: Any,
                          now: float) -> list[Packet]:
        mask = np.ones(table.num_rows, dtype=bool)
        for flt in self.filters:
            try:
                mask &= flt(table, survey)
            except QueryError:
                raise
            except Exception as exc:  # a user function failed: keep the batch, say why
                for p in packets:
                    self._bad(BadPacket(bytes(p.raw or b""), f"filter {flt.name} raised {exc!r}",
                                        p.source, p.key, p.batch))
                return []
        chosen = np.flatnonzero(mask)
        if not len(chosen):
            return []
        hits = [packets[i] for i in chosen]
        lag = np.array([now - p.timestamp_ms / 1000 if p.timestamp_ms else np.nan for p in hits])
        self.stats.lags += [x for x in lag.tolist() if x == x]
        self.alerts.write(hits)
        self.summary.write(table.take(chosen), lag)
        if self.publisher is not None and self.out_topic:
            for p in hits:
                if p.raw is not None:
                    self.publisher.publish(self.out_topic, p.key or str(p.alert.get("diaSourceId")),
                                           bytes(p.raw), batch=p.batch or "batch")
        return hits

    def close(self) -> None:
        """Finish the summary table and the dedup journal."""
        self.summary.close()
        self.dedup.close()
        if self.publisher is not None:
            self.publisher.close()


def _alert_mjd(item: Packet | BadPacket) -> float | None:
    if isinstance(item, BadPacket):
        return None
    alert = item.alert
    src = alert.get("diaSource") or {}
    if src.get("midpointMjdTai") is not None:
        return src["midpointMjdTai"]
    cand = alert.get("candidate") or {}
    if cand.get("jd") is not None:
        return cand["jd"] - 2400000.5
    return cand.get("mjd")


def _chunks(items: Iterator[Packet | BadPacket], size: int) -> Iterator[list[Packet | BadPacket]]:
    chunk: list[Packet | BadPacket] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def replay(source: str | Path, broker: Broker, *, speedup: float | None = None,
           batch_size: int = 2000) -> BrokerStats:
    """Replay a file, a folder of alert files or a file log through ``broker``.

    Parameters
    ----------
    source
        What to replay.
    broker
        The broker (closed at the end).
    speedup
        None for as fast as possible; else alerts are released at their original cadence
        (alert time, MJD) divided by this factor (one alert time per batch).
    batch_size
        Alerts per batch when running as fast as possible.

    Returns
    -------
    BrokerStats
        Counters.
    """
    items = iter_source(source)
    try:
        if speedup is None:
            for chunk in _chunks(items, batch_size):
                broker.process(chunk)
        else:
            if speedup <= 0:
                raise QueryError(f"--speedup must be positive, got {speedup}")
            everything = list(items)
            times = [_alert_mjd(i) for i in everything]
            t0 = min((t for t in times if t is not None), default=0.0)
            wall0 = time.monotonic()
            order = sorted(range(len(everything)), key=lambda k: times[k] if times[k] is not None else t0)
            batch: list[Packet | BadPacket] = []
            batch_t = None
            for k in order:
                t = times[k] if times[k] is not None else t0
                if batch and t != batch_t:
                    broker.process(batch)
                    batch = []
                if not batch:
                    batch_t = t
                    delay = wall0 + (t - t0) * 86400.0 / speedup - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                batch.append(everything[k])
            if batch:
                broker.process(batch)
    finally:
        broker.close()
    log.info("replay of %s: %s", source, broker.stats.as_dict())
    return broker.stats


def follow(consumer: Consumer, broker: Broker, *, max_messages: int | None = None,
           idle_timeout: float | None = None, batch_size: int = 2000) -> BrokerStats:
    """Follow a live stream: decode, filter, write, then commit the offsets.

    Parameters
    ----------
    consumer
        A consumer group on the file log or Kafka.
    broker
        The broker (its dedup journal skips packets processed before a crash).
    max_messages
        Stop after this many packets (None: no limit).
    idle_timeout
        Stop after this many seconds without new packets (None: run until interrupted).
    batch_size
        Most packets per poll.

    Returns
    -------
    BrokerStats
        Counters (lag is publish-to-processed time per matching alert).
    """
    seen = 0
    last = time.monotonic()
    reported = last
    try:
        while max_messages is None or seen < max_messages:
            want = batch_size if max_messages is None else min(batch_size, max_messages - seen)
            msgs = consumer.poll(want, timeout=0.5)
            if not msgs:
                if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                    break
                continue
            last = time.monotonic()
            broker.process([decode_message(m, lazy=True) for m in msgs])
            consumer.commit()
            seen += len(msgs)
            if last - reported > LAG_REPORT_S and log.isEnabledFor(logging.INFO):
                reported = last  # (lag may ask the brokers: not on every batch)
                log.info("broker: %d alerts, %s behind", seen, consumer.lag())
    finally:
        broker.close()
        consumer.close()
    return broker.stats

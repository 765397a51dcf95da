"""What the broker writes: matching packets, a summary table, and quarantined input.

Under the output folder::

    alerts/<batch>.<survey>.avro   matching packets, Avro container files with the writer
                                   schema embedded (Rubin packets use their schema version)
    summary.parquet                one row per matching alert (later runs: summary.N.parquet):
                                   ids, position, time, band, magnitude, S/N, features, cross-match, lag)
    quarantine/NNNNNN.bin          bytes of each bad input, and quarantine/reasons.jsonl
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from pachon.alerts.broker.features import FEATURE_NAMES
from pachon.alerts.broker.packets import BadPacket, Packet

__all__ = ["AlertWriter", "SummaryWriter", "Quarantine", "SUMMARY_COLUMNS"]

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = (
    "alertId", "objectId", "survey", "batch", "ra", "dec", "mjd", "band", "mag", "snr",
    *FEATURE_NAMES, "xmatch_id", "xmatch_sep_arcsec", "lag_s",
)


class AlertWriter:
    """Writes matching packets as Avro container files, one per (batch, survey) and call."""

    def __init__(self, out_dir: str | Path) -> None:
        self.dir = Path(out_dir) / "alerts"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._parsed: dict[str, Any] = {}
        self._counts: dict[str, int] = defaultdict(int)

    def _schema(self, packet: Packet) -> Any:
        key = f"{packet.survey}:{packet.schema_key}"
        if key not in self._parsed:
            if packet.survey == "rubin":
                from pachon.alerts.schema import load_schema

                self._parsed[key] = load_schema(packet.schema_key)
            else:
                import fastavro

                self._parsed[key] = fastavro.parse_schema(packet.writer_schema, named_schemas={})
        return self._parsed[key]

    def write(self, packets: list[Packet]) -> list[Path]:
        """Write ``packets``; return the files written."""
        import fastavro

        groups: dict[tuple[str, str, str], list[Packet]] = defaultdict(list)
        for p in packets:
            groups[(p.batch or "batch", p.survey, p.schema_key)].append(p)
        written = []
        for (batch, survey, _), group in groups.items():
            stem = f"{batch}.{survey}"
            self._counts[stem] += 1
            suffix = "" if self._counts[stem] == 1 else f".{self._counts[stem] - 1}"
            path = self.dir / f"{stem}{suffix}.avro"
            with open(path, "w+b") as handle:
                if all(p.raw is not None and p.raw[:1] == b"\x00" for p in group):
                    bodies = [memoryview(p.raw)[5:] for p in group]
                    _write_raw_block(handle, self._schema(group[0]), bodies)
                else:
                    fastavro.writer(handle, self._schema(group[0]), [p.alert for p in group], codec="null")
            written.append(path)
        return written


def _zigzag(value: int) -> bytes:
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_IOV_MAX = 1024  # buffers per writev call (the POSIX minimum of IOV_MAX)


def _write_raw_block(handle: Any, schema: Any, bodies: list[Any]) -> None:
    """Write a container file from already-encoded record bodies (no decode/re-encode).

    fastavro writes the header (schema, codec ``null``, sync marker) into memory; the records
    follow as one block: count, byte size, the bodies, the sync marker (Avro 1.x spec).  The
    whole file goes out with ``writev`` straight from the bodies' buffers (no joined copy).
    """
    import io

    import fastavro

    head = io.BytesIO()
    fastavro.writer(head, schema, [], codec="null")
    header = head.getvalue()
    sync = header[-16:]
    size = sum(len(b) for b in bodies)
    parts = [header + _zigzag(len(bodies)) + _zigzag(size), *bodies, sync]
    handle.flush()
    fd = handle.fileno()
    for k in range(0, len(parts), _IOV_MAX):
        chunk = parts[k: k + _IOV_MAX]
        want = sum(len(b) for b in chunk)
        done = os.writev(fd, chunk)
        if done < want:  # a short write: finish this chunk the slow way
            rest = memoryview(b"".join(chunk))[done:]
            while rest:
                rest = rest[os.write(fd, rest):]


class SummaryWriter:
    """Appends one row per matching alert to ``summary.parquet`` (closed by :meth:`close`)."""

    def __init__(self, out_dir: str | Path) -> None:
        import pyarrow as pa

        self.path = Path(out_dir) / "summary.parquet"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        run = 0
        while self.path.exists():  # a restarted live broker keeps the earlier runs' tables
            run += 1
            self.path = Path(out_dir) / f"summary.{run}.parquet"
        types = {"alertId": pa.int64(), "objectId": pa.string(), "survey": pa.string(),
                 "batch": pa.string(), "band": pa.string(), "xmatch_id": pa.string(), "ndet": pa.int64()}
        self.schema = pa.schema([(c, types.get(c, pa.float64())) for c in SUMMARY_COLUMNS])
        self._writer: Any = None
        self.rows = 0

    def write(self, table: Any, lag_s: np.ndarray) -> None:
        """Append the summary of the matching rows of a filter table."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if table.num_rows == 0:
            return
        src = table.column("diaSource").combine_chunks()
        feats = table.column("features").combine_chunks()
        data: dict[str, Any] = {c: table.column(c) for c in ("alertId", "objectId", "survey", "batch")}
        for out, name in (("ra", "ra"), ("dec", "dec"), ("mjd", "midpointMjdTai"), ("band", "band"),
                          ("mag", "mag"), ("snr", "snr")):
            data[out] = src.field(name)
        for name in FEATURE_NAMES:
            data[name] = feats.field(name)
        if "xmatch" in table.column_names:
            xm = table.column("xmatch").combine_chunks()
            data["xmatch_id"], data["xmatch_sep_arcsec"] = xm.field("id"), xm.field("sep_arcsec")
        else:
            data["xmatch_id"] = pa.nulls(table.num_rows, pa.string())
            data["xmatch_sep_arcsec"] = pa.nulls(table.num_rows, pa.float64())
        data["lag_s"] = pa.array(lag_s, pa.float64())
        out = pa.table({c: pa.array(data[c]).cast(self.schema.field(c).type)
                        if not isinstance(data[c], pa.ChunkedArray)
                        else data[c].cast(self.schema.field(c).type) for c in SUMMARY_COLUMNS})
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self.schema)
        self._writer.write_table(out)
        self.rows += out.num_rows

    def close(self) -> None:
        """Finish the Parquet file (an empty table when nothing matched)."""
        import pyarrow.parquet as pq

        if self._writer is None:
            pq.write_table(self.schema.empty_table(), self.path)
        else:
            self._writer.close()
            self._writer = None


class Quarantine:
    """Keeps bad input with the reason: ``quarantine/NNNNNN.bin`` + ``reasons.jsonl``."""

    def __init__(self, out_dir: str | Path) -> None:
        self.dir = Path(out_dir) / "quarantine"
        self.count = 0

    def put(self, bad: BadPacket) -> Path:
        """Store one bad input; return the file holding its bytes."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{self.count:06d}.bin"
        while path.exists():
            self.count += 1
            path = self.dir / f"{self.count:06d}.bin"
        path.write_bytes(bad.raw)
        entry = {"file": path.name, "source": bad.source, "key": bad.key, "batch": bad.batch,
                 "reason": bad.reason}
        with open(self.dir / "reasons.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
        self.count += 1
        log.warning("quarantined %s (%s): %s", bad.source or bad.key, path, bad.reason)
        return path

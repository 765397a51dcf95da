"""The prompt-processing latency table: one row per processed (exposure, detector).

Stored as a Parquet file, ``REPO/prompt/latency.parquet`` (rewritten atomically on each
append; only the service's main process writes it).  Columns: ``instrument``, ``exposure``,
``detector``, ``status`` (``succeeded`` / ``failed``), ``failed_step``, ``error``, ``n_alerts``,
``run``, the times in ns TAI ``ingest_ns`` (the raw's registration), ``start_ns`` (first step
started), ``end_ns`` (alert packets written), the spans in seconds ``queue_s`` (ingest → first
step), ``processing_s`` (first step → alerts), ``total_s`` (ingest → alerts), and
``<step>_s`` (wall time of each AP step, NaN when it did not run).

Detectors announced by a "next visit" notification (:mod:`pachon.services.prompt.visits`) also
fill ``group`` (the visit's group id), ``notified_ns`` (when the notification was received),
``since_notice_s`` (notification → alerts), ``preload_s`` (wall time spent reading inputs
ahead of the raw), ``preloaded`` (datasets read ahead) and ``preload_hits`` (how many of them
the AP steps took from memory); they are null for raws found by the watcher.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

__all__ = ["LATENCY_FILE", "STEPS", "latency_path", "read_latency", "append_latency"]

_log = logging.getLogger(__name__)

#: Location of the table in the repository folder.
LATENCY_FILE = Path("prompt") / "latency.parquet"

#: AP steps (task labels of ``ap.yaml``) in order.
STEPS = ("isr", "characterize", "calibrate", "diffim", "dia", "association", "alerts")

_INT = ("exposure", "detector", "n_alerts", "ingest_ns", "start_ns", "end_ns")
_STR = ("instrument", "status", "failed_step", "error", "run")
_FLOAT = ("queue_s", "processing_s", "total_s", *(f"{s}_s" for s in STEPS))
#: Columns of announced visits (null otherwise), after the others.
_NOTICE_STR = ("group",)
_NOTICE_INT = ("notified_ns", "preloaded", "preload_hits")
_NOTICE_FLOAT = ("since_notice_s", "preload_s")


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema([*(pa.field(c, pa.string()) for c in _STR[:2]),
                      *(pa.field(c, pa.int64()) for c in _INT),
                      *(pa.field(c, pa.string()) for c in _STR[2:]),
                      *(pa.field(c, pa.float64()) for c in _FLOAT),
                      *(pa.field(c, pa.string()) for c in _NOTICE_STR),
                      *(pa.field(c, pa.int64()) for c in _NOTICE_INT),
                      *(pa.field(c, pa.float64()) for c in _NOTICE_FLOAT)])


def latency_path(repo_root: str | Path) -> Path:
    """The latency table of a repository."""
    return Path(repo_root) / LATENCY_FILE


def read_latency(repo_root: str | Path) -> Any:
    """The latency table (an empty table with the schema when nothing was processed yet).

    Columns added since the file was written are filled with nulls.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema()
    path = latency_path(repo_root)
    if not path.exists():
        return schema.empty_table()
    table = pq.read_table(path)
    for f in schema:
        if f.name not in table.column_names:
            table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    return table.select(schema.names).cast(schema)


def append_latency(repo_root: str | Path, rows: list[dict[str, Any]]) -> Any:
    """Add rows (missing columns are null) and rewrite the file atomically; returns the table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema()
    new = pa.Table.from_pylist([{c: r.get(c) for c in schema.names} for r in rows], schema=schema)
    table = pa.concat_tables([read_latency(repo_root), new])
    path = latency_path(repo_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return table

"""The prompt-processing latency table: one row per processed (exposure, detector).

Stored as a Parquet file, ``REPO/prompt/latency.parquet`` (rewritten atomically on each
append; only the service's main process writes it).  Columns: ``instrument``, ``exposure``,
``detector``, ``status`` (``succeeded`` / ``failed``), ``failed_step``, ``error``, ``n_alerts``,
``run``, the times in ns TAI ``ingest_ns`` (the raw's registration), ``start_ns`` (first step
started), ``end_ns`` (alert packets written), the spans in seconds ``queue_s`` (ingest → first
step), ``processing_s`` (first step → alerts), ``total_s`` (ingest → alerts), and
``<step>_s`` (wall time of each AP step, NaN when it did not run).
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


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema([*(pa.field(c, pa.string()) for c in _STR[:2]),
                      *(pa.field(c, pa.int64()) for c in _INT),
                      *(pa.field(c, pa.string()) for c in _STR[2:]),
                      *(pa.field(c, pa.float64()) for c in _FLOAT)])


def latency_path(repo_root: str | Path) -> Path:
    """The latency table of a repository."""
    return Path(repo_root) / LATENCY_FILE


def read_latency(repo_root: str | Path) -> Any:
    """The latency table (an empty table with the schema when nothing was processed yet)."""
    import pyarrow.parquet as pq

    path = latency_path(repo_root)
    if not path.exists():
        return _schema().empty_table()
    return pq.read_table(path)


def append_latency(repo_root: str | Path, rows: list[dict[str, Any]]) -> Any:
    """Add rows (missing columns are null) and rewrite the file atomically; returns the table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema()
    new = pa.Table.from_pylist([{c: r.get(c) for c in schema.names} for r in rows], schema=schema)
    table = pa.concat_tables([read_latency(repo_root).select(schema.names).cast(schema), new])
    path = latency_path(repo_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return table

"""Process one (exposure, detector) through the AP pipeline and measure its latency.

:func:`process_detector` runs in a worker (a process of the service's pool, or a thread): it
runs the AP pipeline restricted to one detector of one exposure into its own RUN collection
(``prompt/<instrument>/<exposure>/<detector>``), then reads the per-quantum metadata records
(``<label>_metadata``: start and end times) to build one row of the latency table.  Any error
is turned into a ``failed`` row: one detector never stops the others.

The quanta read through a `PreloadedRepository` inside a `preload_scope` of the detector (the
service's, or one opened here when the caller has none), so each step's exposures reach the
next step in memory instead of being decoded again from their files (still written).
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pachon.services.prompt.latency import STEPS

__all__ = ["DetectorJob", "process_detector", "detector_run"]

_log = logging.getLogger(__name__)

_NS = 1e-9


@dataclass
class DetectorJob:
    """What a worker needs to process one detector (picklable)."""

    repo_root: str
    instrument: str
    exposure: int
    detector: int
    ingest_ns: int
    inputs: list[str]
    apdb_url: str | None = None
    stream_url: str | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Group id and notification time (ns TAI) of an announced visit (None: found by the watcher).
    group: str | None = None
    notified_ns: int | None = None


def detector_run(instrument: str, exposure: int, detector: int) -> str:
    """The RUN collection of one detector-visit."""
    return f"prompt/{instrument}/{exposure}/{detector}"


def _count_alerts(repo: Any, run: str, data_id: dict[str, Any]) -> int:
    import io

    import fastavro

    refs = repo.query_datasets("alerts", run, data_id=data_id)
    return sum(blk.num_records for ref in refs for blk in fastavro.block_reader(io.BytesIO(repo.get(ref))))


def _step_times(repo: Any, run: str, data_id: dict[str, Any]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for label in STEPS:
        for ref in repo.query_datasets(f"{label}_metadata", run, data_id=data_id):
            meta = repo.get(ref)
            out[label] = (int(meta["start_ns_tai"]), int(meta["end_ns_tai"]))
    return out


def process_detector(job: DetectorJob) -> dict[str, Any]:
    """Run the AP chain on one detector-visit; return its latency-table row (never raises)."""
    from pachon.services.prompt.preload import current_scope, preload_scope

    if current_scope() is not None:  # the caller (the next-visit service) owns the scope and its store
        return _process_detector(job)
    import uuid

    from pachon.pipe.quantum import repository_for, use_repository
    from pachon.services.prompt.preload import PreloadedRepository, PreloadStore

    repo = repository_for(str(Path(job.repo_root).resolve()))  # the quanta's key: str(Repository.root)
    if not isinstance(repo, PreloadedRepository):
        try:
            repo = PreloadedRepository(job.repo_root, PreloadStore())
        except Exception:  # noqa: BLE001 - the row reports the repository error
            return _process_detector(job)
        use_repository(repo)
    key = f"{detector_run(job.instrument, job.exposure, job.detector)}/{uuid.uuid4().hex}"
    try:
        with preload_scope(key):
            row = _process_detector(job)
        row["passed_in_memory"] = repo.preloads.pop_passed(key)
        return row
    finally:
        repo.preloads.drop(key)


def _process_detector(job: DetectorJob) -> dict[str, Any]:
    from pachon.pipe import run_pipeline
    from pachon.pipelines.ap import load_ap_pipeline
    from pachon.repo import Repository
    from pachon.repo.butler import now_ns

    run = detector_run(job.instrument, job.exposure, job.detector)
    row: dict[str, Any] = {"instrument": job.instrument, "exposure": job.exposure, "detector": job.detector,
                           "ingest_ns": job.ingest_ns, "run": run, "n_alerts": 0, "group": job.group,
                           "notified_ns": job.notified_ns}
    started = now_ns()
    try:
        repo = Repository(job.repo_root)
        try:
            pipe = load_ap_pipeline(repo.root, apdb_url=job.apdb_url, stream_url=job.stream_url,
                                    overrides=job.overrides)
            report = run_pipeline(repo, pipe, inputs=job.inputs, output_run=run,
                                  where="instrument = :i AND exposure = :e AND detector = :d",
                                  bind={"i": job.instrument, "e": job.exposure, "d": job.detector})
            data_id = {"instrument": job.instrument, "exposure": job.exposure, "detector": job.detector}
            times = _step_times(repo, run, data_id)
            fails = report.failures()
            if fails:
                row.update(status="failed", failed_step=fails[0].label, error=fails[0].error)
            elif "alerts" not in times:
                row.update(status="failed", failed_step="(graph)",
                           error="no AP quanta for this detector (templates or calibrations missing?)")
            else:
                row.update(status="succeeded", n_alerts=_count_alerts(repo, run, data_id))
        finally:
            repo.close()
    except Exception as exc:  # noqa: BLE001 - one detector's failure is a row, not a crash
        _log.error("prompt %s exposure %s detector %s: %s", job.instrument, job.exposure, job.detector, exc)
        row.update(status="failed", failed_step="(service)", error=f"{type(exc).__name__}: {exc}",
                   traceback=traceback.format_exc())
        times = {}
    for label in STEPS:
        row[f"{label}_s"] = (times[label][1] - times[label][0]) * _NS if label in times else float("nan")
    start = min((t[0] for t in times.values()), default=started)
    end = times["alerts"][1] if "alerts" in times and row["status"] == "succeeded" else now_ns()
    row.update(start_ns=start, end_ns=end, queue_s=(start - job.ingest_ns) * _NS,
               processing_s=(end - start) * _NS, total_s=(end - job.ingest_ns) * _NS)
    if job.notified_ns is not None:
        row["since_notice_s"] = (end - job.notified_ns) * _NS
    _log.info("prompt %s exposure %s detector %s: %s, %d alerts, %.2f s from ingest", job.instrument,
              job.exposure, job.detector, row["status"], row["n_alerts"], row["total_s"])
    return row

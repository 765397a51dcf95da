"""The prompt-processing service: watch the registry for new science raws, run AP per detector.

:class:`PromptService` polls the registry for science raws (``exposure.observation_type =
'science'``) of the ``<instrument>/raw/all`` collections that have no row in the latency table
yet, and submits each (exposure, detector) to a worker pool as soon as its raw is registered:
threads (``workers=1``, in-process) or processes (``workers>1``, spawned).  Rows are appended to
the latency table (:mod:`pachon.services.prompt.latency`) as each detector finishes, in whatever
order they finish, so a late or failed detector holds up nobody.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pachon.services.prompt.latency import append_latency, read_latency
from pachon.services.prompt.worker import DetectorJob, process_detector

__all__ = ["PromptConfig", "PromptService", "default_inputs"]

_log = logging.getLogger(__name__)


@dataclass
class PromptConfig:
    """Settings of the prompt service.

    Attributes
    ----------
    repo
        Repository root.
    apdb_url
        APDB URL (SQLite ``REPO/apdb.sqlite3`` when None).
    stream_url
        Alert stream (file-log folder or ``kafka://``); None: alerts only as datasets.
    workers
        Detectors processed at once (1: in this process; more: a process pool).
    poll_s
        Seconds between registry polls.
    inputs
        Input collections of the AP pipeline per instrument (`default_inputs` when None).
    overrides
        Extra task config per label (as `load_ap_pipeline`).
    since_ns
        Only raws ingested at or after this time (ns TAI; e.g. not the template epoch); all when None.
    """

    repo: Path
    apdb_url: str | None = None
    stream_url: str | None = None
    workers: int = 1
    poll_s: float = 2.0
    inputs: list[str] | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    since_ns: int | None = None


def default_inputs(repo: Any, instrument: str) -> list[str]:
    """Raws, certified calibrations, every ``refcats/*`` collection and ``templates`` (those that exist)."""
    names = {n for n, _ in repo.list_collections()}
    wanted = [f"{instrument}/raw/all", f"{instrument}/calib",
              *sorted(n for n in names if n.startswith("refcats/")), "templates"]
    return [c for c in wanted if c in names]


class PromptService:
    """Poll for new science raws and run the AP pipeline on each detector (see the module docstring)."""

    def __init__(self, config: PromptConfig) -> None:
        from pachon.repo import Repository

        self.config = config
        self.repo = Repository(config.repo)
        self._stop = threading.Event()
        self._seen = {(r["instrument"], int(r["exposure"]), int(r["detector"]))
                      for r in read_latency(self.repo.root).select(["instrument", "exposure", "detector"])
                      .to_pylist()}
        self._registered: set[str] = set()

    def stop(self) -> None:
        """Ask :meth:`run` to return once the detectors in flight are done."""
        self._stop.set()

    def close(self) -> None:
        """Close the repository."""
        self.repo.close()

    def pending(self) -> list[DetectorJob]:
        """Science raws not processed nor in flight, oldest ingest first."""
        jobs = []
        for name, _ in self.repo.list_collections("*/raw/all", types=["RUN"]):
            instrument = name.split("/")[0]
            refs = self.repo.query_datasets("raw", name, where="exposure.observation_type = 'science'")
            new = [r for r in refs if (instrument, int(r.data_id["exposure"]), int(r.data_id["detector"]))
                   not in self._seen]
            if not new:
                continue
            self._register_types(instrument)
            inputs = self.config.inputs or default_inputs(self.repo, instrument)
            cfg = self.config
            for ref in new:
                ingest_ns = self.repo.provenance(ref).created_ns or 0
                if cfg.since_ns is not None and ingest_ns < cfg.since_ns:
                    continue
                jobs.append(DetectorJob(str(self.repo.root), instrument, int(ref.data_id["exposure"]),
                                        int(ref.data_id["detector"]), int(ingest_ns), list(inputs),
                                        cfg.apdb_url, cfg.stream_url, dict(cfg.overrides)))
        return sorted(jobs, key=lambda j: (j.ingest_ns, j.exposure, j.detector))

    def _register_types(self, instrument: str) -> None:
        # Output dataset types are registered once here, not concurrently by the workers.
        if instrument in self._registered:
            return
        from pachon.pipe.runner import register_output_types
        from pachon.pipelines.ap import load_ap_pipeline

        register_output_types(self.repo, load_ap_pipeline(self.repo.root, apdb_url=self.config.apdb_url,
                                                          overrides=self.config.overrides))
        self._registered.add(instrument)

    def _pool(self) -> cf.Executor:
        if self.config.workers <= 1:
            return cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="prompt")
        return cf.ProcessPoolExecutor(max_workers=self.config.workers,
                                      mp_context=multiprocessing.get_context("spawn"))

    def run(self, *, once: bool = False) -> list[dict[str, Any]]:
        """Process new raws until :meth:`stop` (or, with ``once``, those present now); return the rows."""
        rows: list[dict[str, Any]] = []
        futures: dict[cf.Future, DetectorJob] = {}
        with self._pool() as pool:
            polled = False
            while True:
                if not (once and polled) and not self._stop.is_set():
                    for job in self.pending():
                        self._seen.add((job.instrument, job.exposure, job.detector))
                        futures[pool.submit(process_detector, job)] = job
                        _log.info("prompt: exposure %s detector %s queued", job.exposure, job.detector)
                    polled = True
                if not futures and (once or self._stop.is_set()):
                    break
                done, _ = cf.wait(futures, timeout=self.config.poll_s, return_when=cf.FIRST_COMPLETED)
                finished = [self._row(f, futures.pop(f)) for f in done]
                if finished:
                    append_latency(self.repo.root, finished)
                    rows += finished
        return rows

    @staticmethod
    def _row(future: cf.Future, job: DetectorJob) -> dict[str, Any]:
        try:
            return future.result()
        except Exception as exc:  # noqa: BLE001 - a dead worker is a failed detector
            _log.error("prompt: exposure %s detector %s: worker died: %s", job.exposure, job.detector, exc)
            return {"instrument": job.instrument, "exposure": job.exposure, "detector": job.detector,
                    "ingest_ns": job.ingest_ns, "status": "failed", "failed_step": "(worker)",
                    "error": f"{type(exc).__name__}: {exc}", "n_alerts": 0}

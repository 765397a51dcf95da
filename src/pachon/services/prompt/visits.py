"""Announced visits: preload each detector's inputs, then process it as its raw lands.

`VisitManager` is the state behind the ``/prompt`` endpoints (`pachon.services.prompt.routes`).
`VisitManager.announce` takes a `NextVisit`, checks it against the repository's instruments
and, once per (instrument, group) — announcing the same visit again changes nothing — submits
one preload per detector (`pachon.services.prompt.preload`: calibrations, reference-catalog
shards and template patches read into memory).  A dispatcher thread polls the registry every
``poll_s`` for raws of the announced groups; each raw that lands goes to the processing pool
(threads of this process, so the quanta can take the preloaded objects), which runs the AP
chain on the detector (`process_detector`) and appends its row to the latency table with the
times from the notification and from the raw's registration.  A detector whose raw has not
landed ``raw_timeout_s`` after the expected end of the exposure (or after the notification, for
an announcement that comes late, e.g. a replay of old data) is marked ``expired``; detectors
are independent, so a late or failing one holds up nobody.

Per-detector states: ``preloading`` → ``waiting`` (for the raw) → ``queued`` → ``processing`` →
``succeeded`` / ``failed``; or ``expired``; or ``processed_before`` (the latency table already
has this exposure and detector: nothing runs twice).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pachon.core.errors import ConfigError, ConflictError
from pachon.services.prompt.latency import append_latency, read_latency
from pachon.services.prompt.next_visit import NextVisit, NextVisitError
from pachon.services.prompt.preload import (
    PreloadedRepository,
    PreloadReport,
    PreloadStore,
    exposure_region,
    find_preload_refs,
    preload_detector,
    preload_scope,
)
from pachon.services.prompt.service import PromptConfig, default_inputs
from pachon.services.prompt.worker import DetectorJob, process_detector

__all__ = ["VisitManager", "DetectorState", "VisitRecord", "FINAL_STATES"]

_log = logging.getLogger(__name__)

#: States after which nothing more happens to a detector.
FINAL_STATES = frozenset({"succeeded", "failed", "expired", "processed_before"})
_ROW_KEYS = ("status", "failed_step", "error", "n_alerts", "run", "queue_s", "processing_s", "total_s",
             "since_notice_s")


@dataclass
class DetectorState:
    """Where one detector of an announced visit stands."""

    detector: int
    state: str = "preloading"
    exposure: int | None = None
    raw_ns: int | None = None
    preload: PreloadReport | None = None
    preload_hits: int = 0
    row: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        out: dict[str, Any] = {"detector": self.detector, "state": self.state, "exposure": self.exposure,
                               "raw_ns": self.raw_ns}
        if self.preload is not None:
            out.update(preloaded=self.preload.total, preload_s=round(self.preload.seconds, 4),
                       preload_counts=dict(self.preload.counts), preload_error=self.preload.error)
        out["preload_hits"] = self.preload_hits
        if self.row is not None:
            out.update({k: self.row.get(k) for k in _ROW_KEYS})
            out.update({k: v for k, v in self.row.items() if k.endswith("_s") and k not in out})
        # JSON has no NaN: a step that did not run is null
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in out.items()}


@dataclass
class VisitRecord:
    """An announced visit and its detectors."""

    visit: NextVisit
    notified_ns: int
    detectors: dict[int, DetectorState]
    preloads: dict[int, cf.Future] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``instrument/group``."""
        return f"{self.visit.instrument}/{self.visit.group}"

    @property
    def done(self) -> bool:
        """Whether every detector is in a final state."""
        return all(d.state in FINAL_STATES for d in self.detectors.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary (the visit as announced, resolved, and each detector's state)."""
        from pachon.repo.times import from_ns

        return {"instrument": self.visit.instrument, "group": self.visit.group,
                "notified": from_ns(self.notified_ns).utc.isot + "Z", "notified_ns": self.notified_ns,
                "done": self.done, "visit": self.visit.model_dump(mode="json"),
                "detectors": [d.as_dict() for d in sorted(self.detectors.values(), key=lambda d: d.detector)]}


class VisitManager:
    """Announced visits of one repository (see the module docstring).

    Parameters
    ----------
    config
        Repository, APDB, stream, processing threads (``workers``), ``poll_s``, inputs, overrides.
    raw_timeout_s
        Seconds after the expected end of the exposure (or the notification, if later) after which
        a missing raw is given up (read at each poll).
    preload_workers
        Threads reading inputs ahead.
    """

    def __init__(self, config: PromptConfig, *, raw_timeout_s: float = 600.0,
                 preload_workers: int = 2) -> None:
        self.config = config
        self.raw_timeout_s = raw_timeout_s
        self.preload_workers = preload_workers
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._visits: dict[tuple[str, str], VisitRecord] = {}
        self._store = PreloadStore()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._preload_pool: cf.ThreadPoolExecutor | None = None
        self._process_pool: cf.ThreadPoolExecutor | None = None
        self._pipelines: dict[str, Any] = {}
        self._registered: set[str] = set()
        self._seen: set[tuple[str, int, int]] | None = None

    # -- public -------------------------------------------------------------------------------
    def configure(self, config: PromptConfig) -> None:
        """Replace the settings (only before the first announcement)."""
        with self._lock:
            if self._thread is not None:
                raise ConfigError("the prompt service's settings cannot change once visits were announced")
            self.config = config

    def announce(self, visit: NextVisit) -> tuple[dict[str, Any], bool]:
        """Register a visit and start preloading; returns ``(status, created)``.

        Raises
        ------
        NextVisitError
            Unknown instrument, detector or filter (``loc`` names the field).
        ConflictError
            The same (instrument, group) was announced with other values.
        """
        from pachon.repo.butler import now_ns

        notified = now_ns()
        resolved = visit.resolve(self._instrument(visit.instrument))
        key = (resolved.instrument, resolved.group)
        with self._lock:
            rec = self._visits.get(key)
            if rec is not None:
                if rec.visit != resolved:
                    diff = [k for k in type(resolved).model_fields
                            if getattr(rec.visit, k) != getattr(resolved, k)]
                    raise ConflictError(f"visit {rec.key} was announced with other values ({', '.join(diff)} "
                                        "differ); a group id names one visit")
                return rec.as_dict(), False
            self._start()
            rec = VisitRecord(resolved, notified, {d: DetectorState(d) for d in resolved.detectors or ()})
            self._visits[key] = rec
            assert self._preload_pool is not None
            for det in rec.detectors:
                rec.preloads[det] = self._preload_pool.submit(self._preload, rec, det)
            self._changed.notify_all()
            _log.info("next visit %s: %d detectors announced, %s band, expected %s", rec.key,
                      len(rec.detectors), resolved.band, resolved.expected_time.isoformat())
            return rec.as_dict(), True

    def status(self, instrument: str, group: str) -> dict[str, Any] | None:
        """The state of an announced visit, or None when it was not announced."""
        with self._lock:
            rec = self._visits.get((instrument, group))
            return None if rec is None else rec.as_dict()

    def visits(self) -> list[dict[str, Any]]:
        """One line per announced visit: instrument, group, notified, done, detector states."""
        with self._lock:
            out = []
            for rec in self._visits.values():
                states: dict[str, int] = {}
                for d in rec.detectors.values():
                    states[d.state] = states.get(d.state, 0) + 1
                out.append({"instrument": rec.visit.instrument, "group": rec.visit.group,
                            "notified_ns": rec.notified_ns, "done": rec.done, "states": states})
            return out

    def wait(self, instrument: str, group: str, timeout: float) -> bool:
        """Block until every detector of the visit is final (True) or ``timeout`` s pass (False)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                rec = self._visits.get((instrument, group))
                if rec is not None and rec.done:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.5))

    def close(self) -> None:
        """Stop polling, finish the detectors in flight, forget the preloads."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join()
        for pool in (self._preload_pool, self._process_pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    # -- internals ----------------------------------------------------------------------------
    def _instrument(self, name: str) -> Any:
        from pachon.instruments import get_instrument
        from pachon.repo import Repository

        with Repository(self.config.repo) as repo:
            known = sorted(r["name"] for r in repo.query_dimension_records("instrument"))
        if name not in known:
            raise NextVisitError(("instrument",), f"{name!r} is not registered in the repository; "
                                 f"registered: {', '.join(known) or 'none'}")
        return get_instrument(name)

    def _start(self) -> None:
        if self._thread is not None:
            return
        from pachon.pipe.quantum import use_repository

        # the quanta of this process read through this repository: it serves the preloads
        use_repository(PreloadedRepository(self.config.repo, self._store))
        self._seen = {(r["instrument"], int(r["exposure"]), int(r["detector"]))
                      for r in read_latency(self.config.repo).select(["instrument", "exposure", "detector"])
                      .to_pylist()}
        self._preload_pool = cf.ThreadPoolExecutor(self.preload_workers, thread_name_prefix="prompt-preload")
        self._process_pool = cf.ThreadPoolExecutor(max(1, self.config.workers),
                                                   thread_name_prefix="prompt-ap")
        self._thread = threading.Thread(target=self._loop, name="prompt-dispatch", daemon=True)
        self._thread.start()

    def _pipeline(self, instrument: str) -> Any:
        from pachon.pipelines.ap import load_ap_pipeline

        with self._lock:
            if instrument not in self._pipelines:
                cfg = self.config
                self._pipelines[instrument] = load_ap_pipeline(
                    cfg.repo, apdb_url=cfg.apdb_url, stream_url=cfg.stream_url, overrides=cfg.overrides)
            return self._pipelines[instrument]

    def _inputs(self, repo: Any, instrument: str) -> list[str]:
        return list(self.config.inputs or default_inputs(repo, instrument))

    def _preload(self, rec: VisitRecord, det: int) -> None:
        from pachon.instruments import get_instrument
        from pachon.repo import Repository

        v = rec.visit
        report = PreloadReport()
        try:
            with Repository(self.config.repo) as repo:
                data_id = {"instrument": v.instrument, "detector": det, "physical_filter": v.physical_filter,
                           "band": v.band}
                mid_ns = v.expected_ns + int(v.exposure_time * 5e8)
                region = exposure_region(get_instrument(v.instrument), v.ra, v.dec)
                refs = find_preload_refs(repo, self._pipeline(v.instrument), self._inputs(repo, v.instrument),
                                         data_id, mid_ns, region)
                report = preload_detector(repo, self._store, f"{rec.key}/{det}", refs)
        except Exception as exc:  # noqa: BLE001 - without preloads the detector still runs
            _log.warning("preload %s detector %s failed: %s", rec.key, det, exc)
            report.error = f"{type(exc).__name__}: {exc}"
        with self._changed:
            st = rec.detectors[det]
            st.preload = report
            if st.state == "preloading":
                st.state = "waiting"
            self._changed.notify_all()

    def _loop(self) -> None:
        from pachon.repo import Repository

        repo = Repository(self.config.repo)
        try:
            while not self._stop.is_set():
                try:
                    self._poll(repo)
                except Exception:  # noqa: BLE001 - keep polling; the log has the error
                    _log.exception("prompt: polling for announced raws failed")
                with self._changed:
                    self._changed.wait(self.config.poll_s)
        finally:
            repo.close()

    def _poll(self, repo: Any) -> None:
        from pachon.core.errors import CollectionError, DatasetNotFoundError
        from pachon.repo.butler import now_ns

        with self._lock:
            open_visits = [rec for rec in self._visits.values()
                           if any(d.state in ("preloading", "waiting") for d in rec.detectors.values())]
        for rec in open_visits:
            v = rec.visit
            try:
                refs = repo.query_datasets("raw", f"{v.instrument}/raw/all", where="exposure.group = :g",
                                           bind={"g": v.group})
            except (CollectionError, DatasetNotFoundError):  # no raw ingested yet at all
                refs = []
            jobs = []
            with self._changed:
                for ref in refs:
                    st = rec.detectors.get(int(ref.data_id["detector"]))
                    if st is None or st.state not in ("preloading", "waiting"):
                        continue
                    st.exposure = int(ref.data_id["exposure"])
                    st.raw_ns = int(repo.provenance(ref).created_ns or now_ns())
                    assert self._seen is not None
                    if (v.instrument, st.exposure, st.detector) in self._seen:
                        st.state = "processed_before"
                        self._store.drop(f"{rec.key}/{st.detector}")
                        continue
                    self._seen.add((v.instrument, st.exposure, st.detector))
                    st.state = "queued"
                    jobs.append(st)
                end_ns = max(v.expected_ns + int(v.exposure_time * 1e9), rec.notified_ns)
                late = now_ns() > end_ns + int(self.raw_timeout_s * 1e9)
                for st in rec.detectors.values():
                    if late and st.state in ("preloading", "waiting"):
                        st.state = "expired"
                        self._store.drop(f"{rec.key}/{st.detector}")
                        _log.warning("prompt %s detector %s: no raw %.0f s after the expected end; given up",
                                     rec.key, st.detector, self.raw_timeout_s)
                self._changed.notify_all()
            if jobs:
                self._register_types(repo, v.instrument)
            assert self._process_pool is not None
            cfg = self.config
            for st in jobs:
                job = DetectorJob(str(repo.root), v.instrument, st.exposure or 0, st.detector, st.raw_ns or 0,
                                  self._inputs(repo, v.instrument), cfg.apdb_url, cfg.stream_url,
                                  dict(cfg.overrides), group=v.group, notified_ns=rec.notified_ns)
                self._process_pool.submit(self._process, rec, st, job)

    def _register_types(self, repo: Any, instrument: str) -> None:
        # output dataset types are registered once here, not concurrently by the workers
        if instrument not in self._registered:
            from pachon.pipe.runner import register_output_types

            register_output_types(repo, self._pipeline(instrument))
            self._registered.add(instrument)

    def _process(self, rec: VisitRecord, st: DetectorState, job: DetectorJob) -> None:
        key = f"{rec.key}/{st.detector}"
        try:
            rec.preloads[st.detector].result()  # a preload in flight finishes first (it never raises)
        except Exception as exc:  # noqa: BLE001 - defensive: processing goes on without the preloads
            _log.warning("prompt %s: preload raised %s", key, exc)
        with self._changed:
            st.state = "processing"
            self._changed.notify_all()
        with preload_scope(key):
            row = process_detector(job)
        hits = self._store.pop_hits(key)
        row["passed_in_memory"] = self._store.pop_passed(key)
        unused = self._store.drop(key)
        report = st.preload or PreloadReport()
        row.update(preloaded=report.total, preload_s=report.seconds, preload_hits=hits)
        if unused:
            _log.info("prompt %s: %d preloaded datasets were not used", key, unused)
        try:
            with self._lock:
                append_latency(self.config.repo, [row])
        except Exception:  # noqa: BLE001 - the status keeps the row
            _log.exception("prompt %s: could not append to the latency table", key)
        with self._changed:
            st.row, st.preload_hits, st.state = row, hits, row["status"]
            self._changed.notify_all()

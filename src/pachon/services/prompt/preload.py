"""Reading a detector's inputs when its visit is announced, before its raw arrives.

On a next-visit notification the service knows the instrument, detector, filter, expected time
and pointing, which is all the AP pipeline's prerequisite lookups need: the calibrations valid
at that time (``lookup="calibration"``: bias, dark, flat...) and the datasets overlapping the
exposure's sky region (``lookup="region"``: reference-catalog shards, template coadd patches).
`find_preload_refs` makes the same registry lookups as the quantum-graph builder
(`pachon.pipe.prerequisites`); `preload_detector` reads them into a `PreloadStore`.

When the raw arrives, the AP quanta run in this process on a `PreloadedRepository` (installed
with `pachon.pipe.quantum.use_repository`): inside ``preload_scope(key)``, ``get`` of a
preloaded dataset returns the object read ahead instead of reading its file, once (an object
is handed out a single time, so a task that modifies its input in place harms nobody; a second
read goes to the file).  A lookup that predicted the wrong dataset costs nothing but the read:
the quantum reads what its graph names.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pachon.repo import Repository
from pachon.repo.refs import DatasetRef

__all__ = ["PreloadStore", "PreloadedRepository", "PreloadReport", "preload_scope", "find_preload_refs",
           "preload_detector", "exposure_region"]

_log = logging.getLogger(__name__)

_SCOPE: contextvars.ContextVar[str | None] = contextvars.ContextVar("pachon_prompt_preload", default=None)


class PreloadStore:
    """Objects read ahead, by (detector key, dataset id); each handed out once (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, uuid.UUID], Any] = {}
        self.hits: Counter[str] = Counter()

    def put(self, key: str, dataset_id: uuid.UUID, obj: Any) -> None:
        """Keep ``obj`` for the next read of ``dataset_id`` under ``key``."""
        with self._lock:
            self._objects[(key, dataset_id)] = obj

    def take(self, key: str, dataset_id: uuid.UUID) -> tuple[bool, Any]:
        """``(True, obj)`` and forget it, or ``(False, None)`` when nothing was read ahead."""
        with self._lock:
            if (key, dataset_id) not in self._objects:
                return False, None
            self.hits[key] += 1
            return True, self._objects.pop((key, dataset_id))

    def pop_hits(self, key: str) -> int:
        """How many objects of ``key`` were taken (and forget the count)."""
        with self._lock:
            return self.hits.pop(key, 0)

    def pending(self, key: str) -> int:
        """Objects of ``key`` read ahead and not used yet."""
        with self._lock:
            return sum(k == key for k, _ in self._objects)

    def drop(self, key: str) -> int:
        """Forget the unused objects of ``key``; returns how many there were."""
        with self._lock:
            gone = [k for k in self._objects if k[0] == key]
            for k in gone:
                del self._objects[k]
            return len(gone)


@contextmanager
def preload_scope(key: str) -> Iterator[None]:
    """Reads of `PreloadedRepository` in this thread (and context) use the objects of ``key``."""
    token = _SCOPE.set(key)
    try:
        yield
    finally:
        _SCOPE.reset(token)


class PreloadedRepository(Repository):
    """A `Repository` whose ``get`` serves preloaded objects inside `preload_scope`."""

    def __init__(self, root: str | Path, store: PreloadStore) -> None:
        super().__init__(root)
        self.preloads = store

    def get(self, ref_or_type: DatasetRef | str, data_id: dict[str, Any] | None = None, *,
            collections: Any = None, parameters: dict[str, Any] | None = None, time: Any = None) -> Any:
        """`Repository.get`, served from the store for a preloaded dataset read whole."""
        key = _SCOPE.get()
        if key is not None and isinstance(ref_or_type, DatasetRef) and not parameters:
            found, obj = self.preloads.take(key, ref_or_type.id)
            if found:
                return obj
        return super().get(ref_or_type, data_id, collections=collections, parameters=parameters, time=time)


@dataclass
class PreloadReport:
    """What `preload_detector` read: dataset type → count, and the wall time."""

    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    @property
    def total(self) -> int:
        """Datasets read ahead."""
        return sum(self.counts.values())


def exposure_region(instrument: Any, ra: float, dec: float) -> Any:
    """The sky region the registry gives an exposure at this boresight (see `pachon.repo.ingest`).

    A circle around the boresight that covers the whole focal plane, so every detector's
    region lookups find the same datasets as the quantum-graph builder will.
    """
    import numpy as np

    from pachon.core.sphgeom import Circle

    radius_mm = max(float(np.max(np.hypot(*d.corners_mm()))) for d in instrument.detectors)
    return Circle(ra, dec, radius_mm * instrument.plate_scale / 3600.0)


def find_preload_refs(repo: Any, pipeline: Any, inputs: list[str], data_id: dict[str, Any], time_ns: int,
                      region: Any) -> list[DatasetRef]:
    """The prerequisite datasets the pipeline's quanta for ``data_id`` will read.

    Parameters
    ----------
    repo
        The repository.
    pipeline
        The AP `pachon.pipe.Pipeline`.
    inputs
        Input collections, in search order.
    data_id
        ``instrument``, ``detector``, ``physical_filter`` and ``band`` of the coming exposure.
    time_ns
        Expected mid-time of the exposure (ns TAI) for calibration validity.
    region
        Expected sky region of the exposure (`exposure_region`).
    """
    from pachon.core.errors import DatasetNotFoundError
    from pachon.repo.dimensions import normalize_dimensions

    refs: dict[uuid.UUID, DatasetRef] = {}
    for tdef in pipeline.ordered():
        for pre in tdef.task.prerequisites.values():
            if pre.dataset_type in pipeline.producers:
                continue
            try:
                if pre.lookup == "calibration":
                    dims = normalize_dimensions(tuple(pre.dimensions))
                    sub = {d: data_id[d] for d in dims if d in data_id}
                    t = None if pre.time == "any" else time_ns
                    found: list[DatasetRef] = []
                    for coll in inputs:
                        found = repo.query_datasets(pre.dataset_type, [coll], data_id=sub, time=t)
                        if found:
                            break
                elif pre.lookup == "region":
                    found = repo.query_datasets(pre.dataset_type, inputs, region=region)
                else:
                    continue
            except DatasetNotFoundError:  # the dataset type is not registered: nothing to read
                continue
            refs.update((r.id, r) for r in found)
    return list(refs.values())


def preload_detector(repo: Any, store: PreloadStore, key: str, refs: list[DatasetRef]) -> PreloadReport:
    """Read ``refs`` into ``store`` under ``key``; a read that fails is logged and skipped."""
    t0 = time.perf_counter()
    report = PreloadReport()
    for ref in refs:
        try:
            store.put(key, ref.id, repo.get(ref))
        except Exception as exc:  # noqa: BLE001 - the quantum will read (and report) it itself
            _log.warning("preload %s: %s %s not read ahead: %s", key, ref.dataset_type, ref.data_id, exc)
            report.error = f"{ref.dataset_type}: {type(exc).__name__}: {exc}"
            continue
        report.counts[ref.dataset_type] = report.counts.get(ref.dataset_type, 0) + 1
    report.seconds = time.perf_counter() - t0
    _log.info("preload %s: %d datasets in %.2f s (%s)", key, report.total, report.seconds,
              ", ".join(f"{n} {k}" for k, n in sorted(report.counts.items())) or "none")
    return report

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

The same store passes each step's image outputs to the next step in memory: an `Exposure`
written by a quantum inside the scope (``put_many``: the file is written and registered as
always) keeps its pixel planes in the store under the new dataset's id, and the next ``get`` of
that dataset reads only the file's headers, PSF and calibration and takes the pixels from
memory (`pachon.core.exposure_fits.read_exposure_fits` with ``pixels=``), so it returns exactly
what reading the file returns without decoding 4k x 4k planes again.  Like a preload it is
handed out once; later reads, and reads of a sub-box, go to the file.
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

__all__ = ["PreloadStore", "PreloadedRepository", "WrittenPixels", "PreloadReport", "preload_scope",
           "current_scope", "find_preload_refs", "preload_detector", "exposure_region"]

_log = logging.getLogger(__name__)

_SCOPE: contextvars.ContextVar[str | None] = contextvars.ContextVar("pachon_prompt_preload", default=None)


@dataclass(frozen=True)
class WrittenPixels:
    """The (image, mask, variance) planes of an `Exposure` a quantum just wrote."""

    planes: tuple[Any, Any, Any]


class PreloadStore:
    """Objects read ahead, by (detector key, dataset id); each handed out once (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, uuid.UUID], Any] = {}
        self.hits: Counter[str] = Counter()
        #: Outputs of earlier steps handed to later ones in memory, per key.
        self.passed: Counter[str] = Counter()

    def put(self, key: str, dataset_id: uuid.UUID, obj: Any) -> None:
        """Keep ``obj`` for the next read of ``dataset_id`` under ``key``."""
        with self._lock:
            self._objects[(key, dataset_id)] = obj

    def take(self, key: str, dataset_id: uuid.UUID) -> tuple[bool, Any]:
        """``(True, obj)`` and forget it, or ``(False, None)`` when nothing was read ahead."""
        with self._lock:
            if (key, dataset_id) not in self._objects:
                return False, None
            obj = self._objects.pop((key, dataset_id))
            if isinstance(obj, WrittenPixels):
                self.passed[key] += 1
            else:
                self.hits[key] += 1
            return True, obj

    def pop_hits(self, key: str) -> int:
        """How many preloaded objects of ``key`` were taken (and forget the count)."""
        with self._lock:
            return self.hits.pop(key, 0)

    def pop_passed(self, key: str) -> int:
        """How many outputs of ``key`` were passed in memory to a later step (and forget the count)."""
        with self._lock:
            return self.passed.pop(key, 0)

    def pending(self, key: str) -> int:
        """Objects of ``key`` read ahead and not used yet (outputs kept in memory not counted)."""
        with self._lock:
            return sum(k == key and not isinstance(v, WrittenPixels) for (k, _), v in self._objects.items())

    def drop(self, key: str) -> int:
        """Forget every object of ``key``; returns how many read-ahead objects were unused."""
        with self._lock:
            gone = [k for k in self._objects if k[0] == key]
            unused = sum(not isinstance(self._objects[k], WrittenPixels) for k in gone)
            for k in gone:
                del self._objects[k]
            return unused


def current_scope() -> str | None:
    """The key of the `preload_scope` this code runs in, or None."""
    return _SCOPE.get()


@contextmanager
def preload_scope(key: str) -> Iterator[None]:
    """Reads of `PreloadedRepository` in this thread (and context) use the objects of ``key``."""
    token = _SCOPE.set(key)
    try:
        yield
    finally:
        _SCOPE.reset(token)


class PreloadedRepository(Repository):
    """A `Repository` whose ``get`` serves preloaded objects inside `preload_scope`.

    With ``pass_outputs`` (the default) the exposures written inside the scope are handed to
    their next reader from memory too (see the module docstring).
    """

    def __init__(self, root: str | Path, store: PreloadStore, *, pass_outputs: bool = True) -> None:
        super().__init__(root)
        self.preloads = store
        self.pass_outputs = pass_outputs

    def put_many(self, items: Any, **kwargs: Any) -> list[DatasetRef]:
        """`Repository.put_many`; inside a scope, exposures' pixel planes are kept for the next read."""
        refs = super().put_many(items, **kwargs)
        key = _SCOPE.get()
        if key is not None and self.pass_outputs:
            self._keep_pixels(key, items)
        return refs

    def _keep_pixels(self, key: str, items: Any) -> None:
        import numpy as np

        from pachon.core.exposure import Exposure

        kept: list[Any] = []
        for ref, obj in items:
            if not isinstance(obj, Exposure):
                continue
            planes = (obj.image, obj.mask.array, obj.variance)
            # two outputs sharing memory would be two readers of one buffer: give the later a copy
            planes = tuple(np.array(a) if any(np.may_share_memory(a, b) for b in kept) else a for a in planes)
            kept.extend(planes)
            self.preloads.put(key, ref.id, WrittenPixels(planes))  # type: ignore[arg-type]

    def _read_written(self, ref: DatasetRef, pixels: WrittenPixels) -> Any:
        from pachon.core.exposure_fits import read_exposure_fits

        recs = self.registry.file_records([ref.id])
        if not recs or recs[0].storage_class != "Exposure":
            return super().get(ref)
        local, temporary = self.datastore.local_copy(recs[0].path)
        try:
            return read_exposure_fits(local, pixels=pixels.planes)
        finally:
            if temporary:
                local.unlink(missing_ok=True)

    def get(self, ref_or_type: DatasetRef | str, data_id: dict[str, Any] | None = None, *,
            collections: Any = None, parameters: dict[str, Any] | None = None, time: Any = None) -> Any:
        """`Repository.get`, served from the store for a preloaded dataset read whole."""
        key = _SCOPE.get()
        if key is not None and isinstance(ref_or_type, DatasetRef) and not parameters:
            found, obj = self.preloads.take(key, ref_or_type.id)
            if found:
                return self._read_written(ref_or_type, obj) if isinstance(obj, WrittenPixels) else obj
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

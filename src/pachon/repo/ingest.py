"""Ingest of raw FITS files: translate headers, transfer files, register atomically.

Each file is either fully registered (dimension records, dataset, file record, provenance)
together with its file in the datastore, or not at all.  Files are placed first (temporary
name, fsync, then linked to the final name, never overwriting) and registered afterwards in
one transaction per chunk; a crash between the two leaves an unregistered file that a later
ingest of the same file adopts (same checksum) or ``pachon repo check --fix`` removes.  Raw
dataset ids are UUID5 of (type, data ID, run), so ingesting the same file again is a no-op.

Concurrent ingests of the same files are safe: both processes place the same deterministic
path, the second finds the file there and keeps it; whichever registers first wins and the
other reports the file as already present.  A process only ever deletes a datastore file it
created itself and that is not registered.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pachon.core.errors import ConflictError, PachonError
from pachon.core.progress import progress
from pachon.repo.datastore import TRANSFER_MODES, file_checksum
from pachon.repo.rawfile import check_raw_shape, read_raw_header
from pachon.repo.refs import DatasetRef, data_key, deterministic_id
from pachon.repo.registry import CollectionType, FileRecord, NewDataset

__all__ = ["ingest_raws", "IngestReport", "RAW_DIMENSIONS", "place_file", "discard_unregistered"]

_log = logging.getLogger(__name__)

RAW_DIMENSIONS = ("instrument", "exposure", "detector")

#: Testing hook (crash-safety tests): when set, called as ``fault_hook(stage, count)`` at
#: ``"placed"`` (after each file is placed; count = files placed so far), ``"registering"``
#: (inside the registry transaction, before commit; count = files in it) and ``"committed"``
#: (after the commit, before ``move`` deletes sources).  None in normal use.
fault_hook: Callable[[str, int], None] | None = None


def _fault(stage: str, count: int) -> None:
    if fault_hook is not None:
        fault_hook(stage, count)


@dataclass
class IngestReport:
    """What an ingest did: per file, ingested, skipped (already present) or failed (why)."""

    ingested: list[tuple[str, DatasetRef]] = field(default_factory=list)
    skipped: list[tuple[str, DatasetRef]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def refs(self) -> list[DatasetRef]:
        """Refs of the ingested and already-present files."""
        return [r for _, r in self.ingested] + [r for _, r in self.skipped]

    def summary(self) -> str:
        """One line: counts of ingested, skipped and failed files."""
        return (
            f"{len(self.ingested)} ingested, {len(self.skipped)} already present, {len(self.failed)} failed"
        )


@dataclass
class _Prepared:
    path: str
    instrument: Any
    obs: Any
    data_id: dict[str, Any]
    checksum: str
    ref: DatasetRef | None = None
    key: str = ""


def _region(instrument: Any, obs: Any) -> Any:
    """A circle around the boresight covering the focal plane (None when not computable)."""
    if obs.tracking_ra is None or obs.tracking_dec is None:
        return None
    try:
        import numpy as np

        from pachon.core.sphgeom import Circle

        radius_mm = max(float(np.max(np.hypot(*d.corners_mm()))) for d in instrument.detectors)
        return Circle(obs.tracking_ra, obs.tracking_dec, radius_mm * instrument.plate_scale / 3600.0)
    except (AttributeError, ValueError, TypeError, ImportError) as exc:
        _log.debug("no region for %s: %s", obs.obs_id, exc)
        return None


def _records(p: _Prepared) -> dict[str, list[dict[str, Any]]]:
    obs, region = p.obs, _region(p.instrument, p.obs)
    exposure = {**obs.exposure_record(), "region": region}
    out = {"day_obs": [{"instrument": obs.instrument, "id": obs.day_obs}], "exposure": [exposure]}
    if obs.visit_id is not None:
        keep = (
            "instrument",
            "physical_filter",
            "band",
            "day_obs",
            "exposure_time",
            "datetime_begin",
            "datetime_end",
            "target_name",
            "tracking_ra",
            "tracking_dec",
            "sky_angle",
            "airmass",
            "region",
        )
        out["visit"] = [{**{k: exposure[k] for k in keep}, "id": obs.visit_id, "name": obs.obs_id}]
    return out


def _check_observation(path: str, inst: Any, obs: Any) -> None:
    """Refuse values the registry could not hold consistently (undefined filter, bad times)."""
    from pachon.core.errors import MetadataTranslationError

    filters = dict(getattr(inst, "filters", {}) or {})
    if obs.physical_filter not in filters:
        keys = list(getattr(inst, "filter_keys", None) or [])
        spec = getattr(getattr(getattr(inst, "model", None), "header", None), "filter", None)
        if not keys and getattr(spec, "key", None):
            keys = [spec.key]
        named = f"header key {'/'.join(map(repr, keys))}" if keys else "the header's filter"
        raise MetadataTranslationError(
            f"{path}: {named} gives physical_filter {obs.physical_filter!r}, which is not defined "
            f"by instrument {inst.name}; known filters: {', '.join(map(str, filters)) or 'none'}; "
            f"add it to the instrument definition (filters:) or fix the header"
        )
    if obs.exposure_time is not None and obs.exposure_time < 0:
        raise MetadataTranslationError(
            f"{path}: header key for exposure_time gives a negative value {obs.exposure_time}"
        )
    if obs.datetime_end < obs.datetime_begin:
        raise MetadataTranslationError(
            f"{path}: the observation ends ({obs.datetime_end.tai.isot} TAI) before it begins "
            f"({obs.datetime_begin.tai.isot} TAI); check the header's end time keys"
        )


def _prepare(path: str, instrument: Any) -> _Prepared:
    from pachon.instruments import find_instrument

    header, shapes = read_raw_header(path)
    inst = instrument if instrument is not None else find_instrument(header, filename=path)
    obs = inst.translate_header(header, filename=path)
    _check_observation(path, inst, obs)
    check_raw_shape(path, shapes, inst, obs.detector)
    data_id = {
        "instrument": obs.instrument,
        "exposure": obs.exposure_id,
        "detector": obs.detector,
        "physical_filter": obs.physical_filter,
        "day_obs": obs.day_obs,
    }
    if obs.band is not None:
        data_id["band"] = obs.band
    return _Prepared(path, inst, obs, data_id, file_checksum(path))


def ingest_raws(
    repo: Any,
    paths: Iterable[str | Path],
    *,
    instrument: Any = None,
    transfer: str = "copy",
    run: str | None = None,
    chunk_size: int = 200,
    dataset_type: str = "raw",
) -> IngestReport:
    """Ingest raw FITS files into a repository.

    Parameters
    ----------
    repo
        The `~pachon.repo.Repository`.
    paths
        Raw files.
    instrument
        An ``Instrument``, its name or YAML path; found from each header when None.
    transfer
        ``copy`` (default), ``hardlink``, ``symlink``, ``move`` (source deleted after commit) or
        ``direct`` (registered in place).
    run
        RUN collection; ``<instrument>/raw/all`` by default.
    chunk_size
        Files registered per transaction (a failing chunk is retried file by file).
    dataset_type
        Name of the raw dataset type (dimensions instrument, exposure, detector; ``RawFits``).

    Returns
    -------
    IngestReport
        Bad files (non-FITS, truncated, missing or contradictory header keys, wrong size, a
        different file with the same data ID) are listed in ``failed`` naming the file and the
        reason; the others are ingested.
    """
    from pachon.core.errors import ConfigError

    if transfer not in TRANSFER_MODES:
        raise ConfigError(f"transfer must be one of {', '.join(TRANSFER_MODES)}, got {transfer!r}")
    if isinstance(instrument, str | Path):
        from pachon.instruments import get_instrument

        instrument = get_instrument(instrument)
    report = IngestReport()
    paths = [str(p) for p in paths]
    prepared: list[_Prepared] = []
    for path in progress(paths, desc="reading raw headers", logger=_log):
        try:
            prepared.append(_prepare(path, instrument))
        except (PachonError, OSError) as exc:
            report.failed.append((path, f"{type(exc).__name__}: {exc}"))
    repo.register_dataset_type(dataset_type, RAW_DIMENSIONS, "RawFits")
    registered: set[str] = set()
    for p in prepared:
        if p.instrument.name not in registered:
            repo.register_instrument(p.instrument)
            registered.add(p.instrument.name)
    dt = repo.registry.get_dataset_type(dataset_type)
    for p in prepared:
        p_run = run or f"{p.instrument.name}/raw/all"
        repo.register_collection(p_run, CollectionType.RUN)
        p.key = data_key(dt.dimensions, p.data_id)
        p.ref = DatasetRef(deterministic_id(dataset_type, p.key, p_run), dataset_type, p.data_id, p_run)
    existing = {r.dataset_id: r for r in repo.registry.file_records([p.ref.id for p in prepared])}
    fresh: list[_Prepared] = []
    seen: dict[Any, _Prepared] = {}
    for p in prepared:
        rec = existing.get(p.ref.id)
        other = seen.get(p.ref.id)
        if rec is not None and rec.checksum == p.checksum:
            report.skipped.append((p.path, p.ref))
        elif rec is not None:
            report.failed.append(
                (
                    p.path,
                    f"ConflictError: {p.path} has data ID {p.key} in run {p.ref.run!r}, "
                    f"already ingested from {rec.source or rec.path} with different "
                    f"content; remove that dataset first if this file replaces it",
                )
            )
        elif other is not None and other.checksum == p.checksum:
            report.skipped.append((p.path, p.ref))
        elif other is not None:
            report.failed.append(
                (
                    p.path,
                    f"ConflictError: {p.path} has the same data ID ({p.key}) as "
                    f"{other.path} in this batch but different content",
                )
            )
        else:
            seen[p.ref.id] = p
            fresh.append(p)
    placed: list[tuple[_Prepared, NewDataset, bool]] = []
    count = 0
    for p in progress(fresh, desc=f"ingesting {len(fresh)} raws", logger=_log):
        try:
            placed.append((p, *_place(repo, dt, p, transfer)))
        except (PachonError, OSError) as exc:
            report.failed.append((p.path, f"{type(exc).__name__}: {exc}"))
        count += 1
        _fault("placed", count)
        if len(placed) >= chunk_size:
            _register_chunk(repo, placed, transfer, report)
            placed = []
    if placed:
        _register_chunk(repo, placed, transfer, report)
    _log.info("ingest: %s", report.summary())
    return report


def place_file(repo: Any, source: str, path: str, transfer: str, checksum: str) -> tuple[str, int, bool]:
    """Put ``source`` at datastore ``path`` without overwriting; check its content.

    A file already at ``path`` with the same checksum (left by an interrupted attempt, or
    placed by a concurrent ingest of the same file) is kept and used.

    Returns
    -------
    stored, size, created
        The stored path, its size, and whether this call created the file (only then may the
        caller delete it on failure, with `discard_unregistered`).

    Raises
    ------
    ConflictError
        The source changed while being copied, or a different file is already at ``path``.
    """
    placement = repo.datastore.place(source, path, transfer)
    if placement.checksum != checksum:
        if placement.created:
            repo.datastore.remove(placement.path)
            raise ConflictError(f"{source} changed while being ingested (checksum differs); ingest it again")
        raise ConflictError(
            f"{source}: datastore file {placement.path} already exists with different content "
            f"({placement.checksum}, the source is {checksum}); if it is not registered, remove "
            f"it with `pachon repo check --fix` and ingest again"
        )
    return placement.path, placement.size, placement.created


def discard_unregistered(repo: Any, dataset_id: Any, stored: str, created: bool) -> None:
    """Delete a file this process placed for ``dataset_id`` unless it is registered.

    Files this process did not create, and files a dataset's record points to (a concurrent
    ingest may have registered the same path), are never deleted.
    """
    if not created:
        return
    try:
        records = repo.registry.file_records([dataset_id])
    except Exception:  # noqa: BLE001 - cannot tell: keep the file (check --fix removes orphans)
        _log.warning("kept %s: could not check whether it is registered", stored)
        return
    if any(r.path == stored for r in records):
        return
    repo.datastore.remove(stored)


def _place(repo: Any, dt: Any, p: _Prepared, transfer: str) -> tuple[NewDataset, bool]:
    path = repo.file_path(dt, p.data_id, p.ref.run, p.ref.id)
    stored, size, created = place_file(repo, p.path, path, transfer, p.checksum)
    from pachon.repo.butler import Repository

    prov = Repository._provenance_row({"task": "ingest_raws"})
    new = NewDataset(
        p.ref,
        p.key,
        FileRecord(p.ref.id, stored, size, p.checksum, "RawFits", "fits", os.path.abspath(p.path), transfer),
        prov,
    )
    return new, created


def _register(repo: Any, items: list[tuple[_Prepared, NewDataset, bool]]) -> None:
    with repo.registry.transaction():
        by_element: dict[str, list[dict[str, Any]]] = {}
        for p, _, _ in items:
            for element, recs in _records(p).items():
                by_element.setdefault(element, []).extend(recs)
        for element in ("day_obs", "exposure", "visit"):
            recs = by_element.get(element)
            if recs:
                unique = {(r["instrument"], r["id"]): r for r in recs}
                repo.insert_dimension_records(element, unique.values())
        runs: dict[str, list[NewDataset]] = {}
        for _, new, _ in items:
            runs.setdefault(new.ref.run, []).append(new)
        for run, news in runs.items():
            repo.registry.insert_datasets(run, news)
        _fault("registering", len(items))


def _already_registered(repo: Any, p: _Prepared) -> str | None:
    """'same' when ``p``'s id is registered with its checksum, 'other' when with another."""
    recs = repo.registry.file_records([p.ref.id])
    if not recs:
        return None
    return "same" if recs[0].checksum == p.checksum else "other"


def _register_chunk(
    repo: Any, placed: list[tuple[_Prepared, NewDataset, bool]], transfer: str, report: IngestReport
) -> None:
    import sqlalchemy as sa

    errors = (PachonError, sa.exc.DBAPIError)
    try:
        _register(repo, placed)
        done = placed
    except errors:
        done = []
        for item in placed:  # retry one by one so one bad file does not sink the chunk
            p, new, created = item
            try:
                _register(repo, [item])
                done.append(item)
            except errors as exc:
                state = _already_registered(repo, p)
                if state == "same":  # a concurrent ingest registered it first
                    report.skipped.append((p.path, p.ref))
                    continue
                discard_unregistered(repo, p.ref.id, new.file.path, created)
                reason = f"{type(exc).__name__}: {exc}"
                if state == "other":
                    reason = (
                        f"ConflictError: {p.path} has data ID {p.key} in run {p.ref.run!r}, already "
                        f"ingested (concurrently) with different content"
                    )
                report.failed.append((p.path, reason))
    _fault("committed", len(done))
    for p, new, _ in done:
        report.ingested.append((p.path, new.ref))
        if transfer == "move":
            Path(p.path).unlink(missing_ok=True)

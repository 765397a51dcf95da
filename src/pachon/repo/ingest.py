"""Ingest of raw FITS files: translate headers, transfer files, register atomically.

Each file is either fully registered (dimension records, dataset, file record, provenance)
together with its file in the datastore, or not at all.  Files are placed first (temporary
name, fsync, rename) and registered afterwards in one transaction per chunk; a crash between
the two leaves an unregistered file that ``pachon repo check --fix`` removes.  Raw dataset ids
are UUID5 of (type, data ID, run), so ingesting the same file again is a no-op.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pachon.core.errors import ConflictError, PachonError
from pachon.core.progress import progress
from pachon.repo.datastore import TRANSFER_MODES, file_checksum
from pachon.repo.rawfile import check_raw_shape, read_raw_header
from pachon.repo.refs import DatasetRef, data_key, deterministic_id
from pachon.repo.registry import CollectionType, FileRecord, NewDataset

__all__ = ["ingest_raws", "IngestReport", "RAW_DIMENSIONS"]

_log = logging.getLogger(__name__)

RAW_DIMENSIONS = ("instrument", "exposure", "detector")


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


def _prepare(path: str, instrument: Any) -> _Prepared:
    from pachon.instruments import find_instrument

    header, shapes = read_raw_header(path)
    inst = instrument if instrument is not None else find_instrument(header, filename=path)
    obs = inst.translate_header(header, filename=path)
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
    chunks = [fresh[i : i + chunk_size] for i in range(0, len(fresh), chunk_size)]
    for chunk in progress(chunks, total=len(chunks), desc=f"ingesting {len(fresh)} raws", logger=_log):
        _ingest_chunk(repo, dt, chunk, transfer, report)
    _log.info("ingest: %s", report.summary())
    return report


def _place(repo: Any, dt: Any, p: _Prepared, transfer: str) -> NewDataset:
    path = repo.file_path(dt, p.data_id, p.ref.run, p.ref.id)
    stored, size, checksum = repo.datastore.transfer(p.path, path, transfer)
    if checksum != p.checksum:
        repo.datastore.remove(stored)
        raise ConflictError(f"{p.path} changed while being ingested (checksum differs); ingest it again")
    from pachon.repo.butler import Repository

    prov = Repository._provenance_row({"task": "ingest_raws"})
    return NewDataset(
        p.ref,
        p.key,
        FileRecord(p.ref.id, stored, size, checksum, "RawFits", "fits", os.path.abspath(p.path), transfer),
        prov,
    )


def _register(repo: Any, items: list[tuple[_Prepared, NewDataset]]) -> None:
    with repo.registry.transaction():
        by_element: dict[str, list[dict[str, Any]]] = {}
        for p, _ in items:
            for element, recs in _records(p).items():
                by_element.setdefault(element, []).extend(recs)
        for element in ("day_obs", "exposure", "visit"):
            recs = by_element.get(element)
            if recs:
                unique = {(r["instrument"], r["id"]): r for r in recs}
                repo.insert_dimension_records(element, unique.values())
        runs: dict[str, list[NewDataset]] = {}
        for _, new in items:
            runs.setdefault(new.ref.run, []).append(new)
        for run, news in runs.items():
            repo.registry.insert_datasets(run, news)


def _ingest_chunk(repo: Any, dt: Any, chunk: list[_Prepared], transfer: str, report: IngestReport) -> None:
    placed: list[tuple[_Prepared, NewDataset]] = []
    for p in chunk:
        try:
            placed.append((p, _place(repo, dt, p, transfer)))
        except (PachonError, OSError) as exc:
            report.failed.append((p.path, f"{type(exc).__name__}: {exc}"))
    try:
        _register(repo, placed)
        done = placed
    except PachonError:
        done = []
        for item in placed:  # retry one by one so one bad file does not sink the chunk
            try:
                _register(repo, [item])
                done.append(item)
            except PachonError as exc:
                repo.datastore.remove(item[1].file.path)
                report.failed.append((item[0].path, f"{type(exc).__name__}: {exc}"))
    for p, new in done:
        report.ingested.append((p.path, new.ref))
        if transfer == "move":
            Path(p.path).unlink(missing_ok=True)

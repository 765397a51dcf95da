"""Ingest of existing files (not raws) as datasets with given data IDs.

The same guarantees as raw ingest: each file is placed first (temporary name, fsync, rename)
and registered in one transaction with its file record and provenance; ids are UUID5 of
(type, data ID, run) so ingesting the same file again is a no-op, and a different file with
the same data ID is reported as a conflict.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pachon.core.errors import ConflictError, PachonError
from pachon.core.progress import progress
from pachon.repo.datastore import file_checksum
from pachon.repo.ingest import IngestReport, discard_unregistered, place_file
from pachon.repo.refs import DatasetRef, data_key, deterministic_id
from pachon.repo.registry import CollectionType, FileRecord, NewDataset

__all__ = ["ingest_files"]

_log = logging.getLogger(__name__)


def ingest_files(
    repo: Any,
    dataset_type: str,
    items: Iterable[tuple[str | Path, dict[str, Any]]],
    *,
    run: str,
    transfer: str = "copy",
    task: str = "ingest_files",
) -> IngestReport:
    """Ingest files of a registered dataset type, each with its data ID.

    Parameters
    ----------
    repo
        The `~pachon.repo.Repository`.
    dataset_type
        A registered dataset type; its storage class says how the files are read back.
    items
        ``(path, data_id)`` pairs; the dimension records named by the data IDs must exist.
    run
        RUN collection (created when missing).
    transfer
        ``copy``, ``hardlink``, ``symlink``, ``move`` or ``direct`` (see `Datastore.transfer`).
    task
        Task label recorded in the provenance of each dataset.

    Returns
    -------
    IngestReport
        Files ingested, already present (same checksum), or failed with the reason.
    """
    dt = repo.registry.get_dataset_type(dataset_type)
    repo.register_collection(run, CollectionType.RUN)
    report = IngestReport()
    cache: dict = {}
    for path, data_id in progress(list(items), desc=f"ingesting {dataset_type}", logger=_log):
        path = str(path)
        try:
            expanded = repo.registry.expand_data_id(dt, data_id, cache)
            key = data_key(dt.dimensions, expanded)
            ref = DatasetRef(deterministic_id(dataset_type, key, run), dataset_type, expanded, run)
            checksum = file_checksum(path)
            existing = repo.registry.file_records([ref.id])
            if existing and existing[0].checksum == checksum:
                report.skipped.append((path, ref))
                continue
            if existing:
                raise ConflictError(
                    f"{path} has data ID {key} in run {run!r}, already ingested from "
                    f"{existing[0].source or existing[0].path} with different content; "
                    f"remove that dataset first if this file replaces it"
                )
            stored, size, created = place_file(
                repo, path, repo.file_path(dt, expanded, run, ref.id), transfer, checksum
            )
            sc = dt.storage_class
            record = FileRecord(
                ref.id, stored, size, checksum, sc, _format_of(repo, sc), os.path.abspath(path), transfer
            )
            new = NewDataset(ref, key, record, repo._provenance_row({"task": task}))
            try:
                repo.registry.insert_datasets(run, [new])
            except ConflictError:
                again = repo.registry.file_records([ref.id])
                if again and again[0].checksum == checksum:  # a concurrent ingest won
                    report.skipped.append((path, ref))
                    continue
                discard_unregistered(repo, ref.id, stored, created)
                raise
            except BaseException:
                discard_unregistered(repo, ref.id, stored, created)
                raise
            if transfer == "move":
                Path(path).unlink(missing_ok=True)
            report.ingested.append((path, ref))
        except (PachonError, OSError) as exc:
            report.failed.append((path, f"{type(exc).__name__}: {exc}"))
    _log.info("%s: %s", dataset_type, report.summary())
    return report


def _format_of(repo: Any, storage_class: str) -> str:
    from pachon.repo.formatters import get_storage_class

    return get_storage_class(storage_class).format

"""Writing a quantum's datasets atomically: files first, then every registry row in one transaction.

This composes repository calls (`Repository.file_path`, the datastore's atomic ``write``, the
registry's bulk ``insert_datasets``) because `Repository.put` writes one dataset per
transaction and draws a random id, whereas a quantum needs all of its outputs and its metadata
record registered together, under the ids predicted by the quantum graph.  A process killed
before the transaction commits leaves at most unregistered files, which the next attempt
(same ids, hence same paths) removes.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from pachon.repo.butler import now_ns
from pachon.repo.formatters import get_storage_class
from pachon.repo.refs import DatasetRef, data_key
from pachon.repo.registry import FileRecord, NewDataset

__all__ = ["write_datasets", "provenance_row"]

_log = logging.getLogger(__name__)


def provenance_row(*, task: str, quantum_id: uuid.UUID | str | None,
                   config_hash: str | None) -> dict[str, Any]:
    """The provenance columns of a dataset written by a quantum."""
    from pachon import __version__

    return {"task": task, "quantum_id": None if quantum_id is None else str(quantum_id),
            "config_hash": config_hash, "software_version": __version__, "host": socket.gethostname(),
            "created_ns": now_ns()}


def _full_data_id(repo: Any, ref: DatasetRef, cache: dict) -> tuple[Any, dict[str, Any]]:
    dt = repo.registry.get_dataset_type(ref.dataset_type)
    did = ref.data_id
    if any(k not in did for k in (*dt.dimensions, *dt.implied)):
        did = repo.registry.expand_data_id(dt, {k: v for k, v in did.items() if k in dt.dimensions}, cache)
    return dt, did


def write_datasets(repo: Any, run: str, items: Sequence[tuple[DatasetRef, Any]], *, provenance: dict[str,
                                                                                                     Any],
                   inputs: Sequence[uuid.UUID] = (), before_commit: Callable[[], None] | None = None,
                   expand_cache: dict | None = None) -> list[DatasetRef]:
    """Write objects under the given refs' ids and register them all in one transaction.

    Parameters
    ----------
    repo
        The repository.
    run
        RUN collection (must exist).
    items
        (ref with the id and data ID to use, object) pairs.
    provenance
        Provenance columns (see `provenance_row`).
    inputs
        Ids of the datasets these were made from.
    before_commit
        Called after the files are written and before the registry transaction; raise to abort.
    expand_cache
        Dimension-record cache kept between calls (data IDs lacking implied values are expanded).

    Returns
    -------
    refs
        The registered refs.

    Raises
    ------
    ConflictError
        A dataset with one of those ids or data IDs exists already (nothing is registered).
    """
    cache = {} if expand_cache is None else expand_cache
    registered = {r.dataset_id for r in repo.registry.file_records([ref.id for ref, _ in items])}
    new, written = [], []
    try:
        for ref, obj in items:
            dt, did = _full_data_id(repo, ref, cache)
            sc = get_storage_class(dt.storage_class)
            path = repo.file_path(dt, did, run, ref.id)
            if ref.id not in registered and repo.datastore.exists(path):
                _log.info("removing %s left by an interrupted attempt", path)
                repo.datastore.remove(path)
            size, checksum = repo.datastore.write(obj, sc, path)
            written.append((ref.id, path))
            final = DatasetRef(ref.id, dt.name, did, run)
            new.append(NewDataset(final, data_key(dt.dimensions, did),
                                  FileRecord(ref.id, path, size, checksum, sc.name, sc.format),
                                  provenance, list(inputs)))
        if before_commit is not None:
            before_commit()
        repo.registry.insert_datasets(run, new)
    except BaseException:
        now_registered = {r.dataset_id for r in repo.registry.file_records([i for i, _ in written])}
        for dataset_id, path in written:
            if dataset_id not in now_registered:
                repo.datastore.remove(path)
        raise
    return [n.ref for n in new]

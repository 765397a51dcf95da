"""Writing a quantum's datasets atomically: files first, then every registry row in one transaction.

A quantum needs all of its outputs and its metadata record registered together, under the ids
predicted by the quantum graph: `Repository.put_many` does that.  A process killed before the
transaction commits leaves at most unregistered files, which the next attempt (same ids, hence
same paths) replaces and ``pachon repo check --fix`` removes otherwise.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from pachon.repo.butler import now_ns
from pachon.repo.refs import DatasetRef

__all__ = ["write_datasets", "provenance_row"]

_log = logging.getLogger(__name__)


def provenance_row(*, task: str, quantum_id: uuid.UUID | str | None,
                   config_hash: str | None) -> dict[str, Any]:
    """The provenance columns of a dataset written by a quantum."""
    from pachon import __version__

    return {"task": task, "quantum_id": None if quantum_id is None else str(quantum_id),
            "config_hash": config_hash, "software_version": __version__, "host": socket.gethostname(),
            "created_ns": now_ns()}


def write_datasets(
    repo: Any,
    run: str,
    items: Sequence[tuple[DatasetRef, Any]],
    *,
    provenance: dict[str, Any],
    inputs: Sequence[uuid.UUID] = (),
    before_commit: Callable[[], None] | None = None,
    expand_cache: dict | None = None,
) -> list[DatasetRef]:
    """Write objects under the given refs' ids and register them all in one transaction.

    A thin layer over `Repository.put_many`, which writes the files (replacing any left by an
    interrupted attempt at the same ids) and registers every row together or nothing.

    Raises
    ------
    ConflictError
        A dataset with one of those ids or data IDs exists already (nothing is registered).
    """
    return repo.put_many(
        items,
        run=run,
        provenance=provenance,
        inputs=inputs,
        before_commit=before_commit,
        expand_cache=expand_cache,
    )

"""Output collections and resuming: which RUN to write, what is already done, what to clobber.

A quantum is complete when its ``<label>_metadata`` record is registered: it is written in the
same transaction as the quantum's outputs.  Anything else of a quantum found in the run (a
``<label>_failure`` record, or outputs registered by another tool without a metadata record)
is a leftover of an earlier attempt, removed with ``clobber_failures`` before the quantum is run
again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from pachon.core.errors import CollectionError, ConfigError, ConflictError, DatasetNotFoundError
from pachon.pipe.graph import QuantumGraph
from pachon.repo.registry import CollectionType

__all__ = ["choose_run", "chain_output", "completed_quanta", "new_run_name"]

_log = logging.getLogger(__name__)


def new_run_name(output: str) -> str:
    """``<output>/<UTC timestamp>``, the RUN made for a fresh run into ``output``."""
    t = time.time()
    return f"{output}/{time.strftime('%Y%m%dT%H%M%S', time.gmtime(t))}{int(t * 1000) % 1000:03d}Z"


def _chain(repo: Any, name: str) -> list[str] | None:
    try:
        ctype = repo.collection_type(name)
    except CollectionError:
        return None
    if ctype is not CollectionType.CHAINED:
        raise CollectionError(f"output collection {name!r} exists as a {ctype.value} collection; -o needs a "
                              f"new name or a CHAINED collection made by an earlier run")
    return repo.get_chain(name)


def choose_run(repo: Any, *, output: str | None, output_run: str | None, skip_existing: bool) -> str:
    """The RUN collection to write.

    ``output_run`` when given; else, when resuming (``skip_existing``) into an existing output
    chain, the run at its head; else a new ``<output>/<timestamp>`` run.
    """
    if output_run:
        return output_run
    if not output:
        raise ConfigError("give an output collection (-o OUTPUT) or an output run (--output-run RUN)")
    chain = _chain(repo, output)
    if chain and skip_existing:
        return chain[0]
    return new_run_name(output)


def chain_output(repo: Any, output: str | None, run: str, inputs: Sequence[str]) -> None:
    """Create ``run`` and make ``output`` the chain [run, earlier members or inputs...]."""
    repo.register_collection(run, "RUN")
    if not output:
        return
    old = _chain(repo, output) or []
    members = [run, *(c for c in old if c != run)]
    members += [c for c in inputs if c not in members]
    if members != old:
        repo.set_chain(output, members)


def completed_quanta(repo: Any, graph: QuantumGraph, *, skip_existing: bool,
                     clobber_failures: bool) -> set[uuid.UUID]:
    """Quanta of ``graph`` already complete in its run; clear leftovers of failed attempts.

    Raises
    ------
    ConflictError
        The run holds completed quanta and ``skip_existing`` is off, or leftovers of failed
        quanta and ``clobber_failures`` is off (the message says which flag to pass).
    """
    present: set[uuid.UUID] = set()
    for spec in graph.pipeline.output_types():
        try:
            present.update(r.id for r in repo.query_datasets(spec.name, graph.run, find_first=False))
        except (DatasetNotFoundError, CollectionError):
            continue
    done, leftovers = set(), []
    for q in graph:
        if q.metadata.id in present:
            done.add(q.id)
        else:
            leftovers += [r for r in (*q.outputs.values(), q.failure) if r.id in present]
    if done and not skip_existing:
        raise ConflictError(f"run {graph.run!r} already holds {len(done)} completed quanta of this "
                            f"graph; pass "
                            f"--skip-existing to resume, or write to a new output collection")
    if leftovers:
        if not clobber_failures:
            raise ConflictError(f"run {graph.run!r} holds {len(leftovers)} datasets of quanta that "
                                f"failed or were "
                                f"interrupted; pass --clobber-failures to remove them and retry those quanta")
        _log.info("removing %d datasets left by failed quanta in %s", len(leftovers), graph.run)
        repo.remove(leftovers)
    if done:
        _log.info("%d of %d quanta already complete in %s", len(done), len(graph), graph.run)
    return done

"""The quantum graph: which task runs on which data ID, reading and writing which datasets.

`build_quantum_graph` asks the registry for the data IDs of each task's quanta (``where``
applied where its names exist), matches each quantum's inputs against datasets in the input
collections or outputs predicted for upstream quanta (an input's own ``where`` narrows what
feeds it), and drops quanta lacking an input.  Prerequisites follow their missing policy (see
`pachon.pipe.prerequisites`): a quantum missing a required calibration is kept and carries the
reason in ``Quantum.missing``, so it fails at execution with a record naming its data ID.
Predicted outputs get deterministic ids (UUID5 of run, dataset type and data ID), so the same
command builds the same graph and a resumed run recognises what is already done.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pachon.core.errors import QueryError
from pachon.pipe.pipeline import Pipeline, TaskDef, failure_type, metadata_type
from pachon.pipe.prerequisites import PrerequisiteFinder
from pachon.repo.dimensions import implied_dimensions, normalize_dimensions
from pachon.repo.refs import DatasetRef, data_key

__all__ = ["Quantum", "QuantumGraph", "build_quantum_graph", "predicted_id", "PIPE_NAMESPACE"]

_log = logging.getLogger(__name__)

#: Namespace of the UUID5 ids of quanta and of the datasets they write.
PIPE_NAMESPACE = uuid.UUID("0f6a3c2e-94d1-4b7a-8e25-3c9d51a7e604")


def predicted_id(run: str, name: str, key: str) -> uuid.UUID:
    """Deterministic id of dataset (or quantum, with a task label as ``name``) ``key`` in ``run``."""
    return uuid.uuid5(PIPE_NAMESPACE, f"{run}|{name}|{key}")


@dataclass
class Quantum:
    """One execution of a task on one data ID."""

    id: uuid.UUID
    label: str
    data_id: dict[str, Any]
    inputs: dict[str, list[DatasetRef]]
    outputs: dict[str, DatasetRef]
    metadata: DatasetRef
    failure: DatasetRef
    upstream: frozenset[uuid.UUID] = field(default_factory=frozenset)
    #: Required prerequisites not found (name → reason): executing the quantum fails with these.
    missing: dict[str, str] = field(default_factory=dict)
    #: Optional prerequisites not found: the task receives None for them.
    absent_optional: list[str] = field(default_factory=list)

    def input_ids(self) -> list[uuid.UUID]:
        """Ids of every input dataset (prerequisites included), without repeats."""
        return list(dict.fromkeys(r.id for refs in self.inputs.values() for r in refs))


class QuantumGraph:
    """Quanta in data-flow order, with their upstream/downstream links.

    Parameters
    ----------
    pipeline
        The pipeline the graph was built for.
    run
        RUN collection the outputs go to.
    input_collections
        Where the inputs were found.
    quanta
        The quanta, each after the ones it depends on.
    """

    def __init__(self, pipeline: Pipeline, run: str, input_collections: Sequence[str],
                 quanta: list[Quantum]) -> None:
        self.pipeline = pipeline
        self.run = run
        self.input_collections = list(input_collections)
        self.quanta: dict[uuid.UUID, Quantum] = {q.id: q for q in quanta}
        self.downstream: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        for q in quanta:
            for up in q.upstream:
                self.downstream[up].append(q.id)
        self.dropped: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.quanta)

    def __iter__(self) -> Iterator[Quantum]:
        return iter(self.quanta.values())

    def by_label(self, label: str) -> list[Quantum]:
        """Quanta of task ``label``."""
        return [q for q in self.quanta.values() if q.label == label]

    def descendants(self, qid: uuid.UUID) -> set[uuid.UUID]:
        """Every quantum that depends, directly or not, on ``qid``."""
        out: set[uuid.UUID] = set()
        todo = list(self.downstream.get(qid, ()))
        while todo:
            cur = todo.pop()
            if cur not in out:
                out.add(cur)
                todo += self.downstream.get(cur, ())
        return out

    def counts(self) -> dict[str, int]:
        """Number of quanta per task label, in pipeline order."""
        out = {t.label: 0 for t in self.pipeline.ordered()}
        for q in self.quanta.values():
            out[q.label] += 1
        return out


def _keys_of(dimensions: Sequence[str]) -> tuple[str, ...]:
    dims = normalize_dimensions(tuple(dimensions))
    return (*dims, *implied_dimensions(dims))


class _Builder:
    def __init__(self, repo: Any, pipeline: Pipeline, collections: list[str], run: str,
                 where: str | None, bind: dict[str, Any] | None) -> None:
        self.repo, self.pipeline, self.collections, self.run = repo, pipeline, collections, run
        self.where, self.bind = where, bind
        self.where_ok = False
        self.where_error: QueryError | None = None
        # dataset type -> list of (ref, producing quantum id or None)
        self.available: dict[str, list[tuple[DatasetRef, uuid.UUID | None]]] = {}
        self.indexes: dict[tuple, dict[tuple, list]] = {}
        self.allowed: dict[tuple[tuple[str, ...], str], set[tuple]] = {}

    def query(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call a registry query with ``where``; without it when its names do not apply here."""
        if self.where:
            try:
                out = fn(*args, where=self.where, bind=self.bind, **kwargs)
                self.where_ok = True
                return out
            except QueryError as exc:
                self.where_error = self.where_error or exc
                _log.debug("where %r does not apply to %s %s: %s", self.where, fn.__name__, args, exc)
        return fn(*args, **kwargs)

    def existing(self, dataset_type: str) -> list[tuple[DatasetRef, uuid.UUID | None]]:
        if dataset_type not in self.available:
            refs = self.query(self.repo.query_datasets, dataset_type, self.collections)
            self.available[dataset_type] = [(r, None) for r in refs]
        return self.available[dataset_type]

    def index(self, dataset_type: str, shared: tuple[str, ...]) -> dict[tuple, list]:
        key = (dataset_type, shared)
        if key not in self.indexes:
            idx: dict[tuple, list] = defaultdict(list)
            for ref, qid in self.available.get(dataset_type, []):
                idx[tuple(ref.data_id.get(k) for k in shared)].append((ref, qid))
            self.indexes[key] = idx
        return self.indexes[key]

    def filtered_index(self, dataset_type: str, dims: tuple[str, ...], shared: tuple[str, ...], where: str,
                       what: str) -> dict[tuple, list]:
        """Like `index`, keeping only datasets whose data ID matches an input's own ``where``."""
        key = (dataset_type, shared, where)
        if key in self.indexes:
            return self.indexes[key]
        if (dims, where) not in self.allowed:
            try:
                ids = self.repo.query_data_ids(dims, where=where, bind=self.bind)
            except QueryError as exc:
                raise QueryError(f"{what}: where {where!r} cannot select {dataset_type} "
                                 f"({', '.join(dims)}): {exc}") from exc
            self.allowed[(dims, where)] = {tuple(d.get(k) for k in dims) for d in ids}
        allowed = self.allowed[(dims, where)]
        idx: dict[tuple, list] = defaultdict(list)
        for ref, qid in self.available.get(dataset_type, []):
            if tuple(ref.data_id.get(k) for k in dims) in allowed:
                idx[tuple(ref.data_id.get(k) for k in shared)].append((ref, qid))
        self.indexes[key] = idx
        return idx

    def predicted(self, name: str, dims: Sequence[str], did: dict[str, Any]) -> DatasetRef:
        keys = _keys_of(dims)
        out_did = {k: did[k] for k in keys if k in did}
        return DatasetRef(predicted_id(self.run, name, data_key(normalize_dimensions(tuple(dims)), out_did)),
                          name, out_did, self.run)

    def task_quanta(self, tdef: TaskDef, prereqs: PrerequisiteFinder) -> list[Quantum]:
        qkeys = tdef.quantum_keys
        candidates = self.query(self.repo.query_data_ids, tdef.dimensions)
        plans = []
        for name, inp in tdef.task.inputs.items():
            if inp.dataset_type not in self.pipeline.producers:
                self.existing(inp.dataset_type)
            shared = tuple(k for k in _keys_of(inp.dimensions) if k in qkeys)
            if inp.where:
                dims = normalize_dimensions(tuple(inp.dimensions))
                idx = self.filtered_index(inp.dataset_type, dims, shared, inp.where,
                                          f"task {tdef.label!r} input {name!r}")
            else:
                idx = self.index(inp.dataset_type, shared)
            plans.append((name, inp, shared, idx))
        out, dropped = [], 0
        for did in candidates:
            inputs: dict[str, list[DatasetRef]] = {}
            upstream: set[uuid.UUID] = set()
            for name, inp, shared, idx in plans:
                hits = idx.get(tuple(did.get(k) for k in shared))
                if not hits:
                    break
                if not inp.multiple and len(hits) > 1:
                    raise QueryError(f"task {tdef.label!r} input {name!r}: {len(hits)} "
                                     f"{inp.dataset_type} datasets "
                                     f"match quantum {did}; declare it multiple=True or narrow the "
                                     f"collections")
                inputs[name] = [r for r, _ in hits]
                upstream.update(q for _, q in hits if q is not None)
            else:
                found = prereqs.find(tdef, did, inputs)
                if found is None:
                    dropped += 1
                    continue
                inputs.update(found.refs)
                q = self.make_quantum(tdef, did, inputs, upstream | found.upstream)
                q.missing, q.absent_optional = found.missing, found.absent_optional
                out.append(q)
                continue
            dropped += 1
        if dropped:
            _log.info("task %s: %d data IDs dropped for lack of inputs", tdef.label, dropped)
        prereqs.log_summary(tdef)
        self.dropped = dropped
        return out

    def make_quantum(self, tdef: TaskDef, did: dict[str, Any], inputs: dict[str, list[DatasetRef]],
                     upstream: set[uuid.UUID]) -> Quantum:
        qid = predicted_id(self.run, tdef.label, data_key(tdef.dimensions, did))
        outputs = {}
        for name, o in tdef.task.outputs.items():
            ref = self.predicted(o.dataset_type, o.dimensions, did)
            outputs[name] = ref
            self.available.setdefault(o.dataset_type, []).append((ref, qid))
        return Quantum(qid, tdef.label, dict(did), inputs, outputs,
                       self.predicted(metadata_type(tdef.label), tdef.dimensions, did),
                       self.predicted(failure_type(tdef.label), tdef.dimensions, did), frozenset(upstream))


def build_quantum_graph(repo: Any, pipeline: Pipeline, *, input_collections: Sequence[str], run: str,
                        where: str | None = None, bind: dict[str, Any] | None = None) -> QuantumGraph:
    """Build the quantum graph of ``pipeline`` over the data selected by ``where``.

    Parameters
    ----------
    repo
        A `pachon.repo.Repository`.
    pipeline
        The pipeline (or subset).
    input_collections
        Collections searched, in order, for the inputs and prerequisites.
    run
        RUN collection the outputs will go to (it fixes the predicted dataset ids).
    where
        Expression over dimension values, e.g. ``"instrument='LSSTComCam' AND visit > 100"``;
        applied to every query where its names exist.
    bind
        Values of ``:name`` parameters in ``where``.

    Raises
    ------
    QueryError
        ``where`` is invalid or names dimensions no task's quanta have.
    """
    if where:
        from pachon.repo.expr import parse_where

        parse_where(where)
    b = _Builder(repo, pipeline, list(input_collections), run, where, bind)
    prereqs = PrerequisiteFinder(repo, list(input_collections), b)
    quanta: list[Quantum] = []
    dropped = {}
    for tdef in pipeline.ordered():
        quanta += b.task_quanta(tdef, prereqs)
        dropped[tdef.label] = b.dropped
    if where and not b.where_ok and b.where_error is not None:
        raise QueryError(f"--where {where!r} applies to no task of {pipeline.source}: {b.where_error}")
    graph = QuantumGraph(pipeline, run, input_collections, quanta)
    graph.dropped = dropped
    _log.info("quantum graph: %d quanta (%s)", len(graph),
              ", ".join(f"{k}: {v}" for k, v in graph.counts().items()))
    return graph

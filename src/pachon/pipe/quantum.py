"""Run one quantum: read its inputs, call the task, write outputs and a metadata record.

`execute_quantum` is the function every executor calls (in-process, in a pool worker or on a
Dask worker).  It is idempotent: a quantum whose metadata record exists is reported as
``existing`` and not run again.  Outputs and the metadata record are registered in a single
transaction (`pachon.pipe.store.write_datasets`), so a quantum is either complete or absent.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pachon.core.errors import ConfigError, DatasetNotFoundError, NoWorkFound, PachonError
from pachon.pipe.graph import Quantum
from pachon.pipe.store import provenance_row, write_datasets

__all__ = ["QuantumJob", "QuantumResult", "execute_quantum", "SUCCEEDED", "FAILED", "NO_WORK", "EXISTING",
           "SKIPPED", "process_alive", "use_repository", "repository_for"]

_log = logging.getLogger(__name__)

SUCCEEDED, FAILED, NO_WORK, EXISTING, SKIPPED = "succeeded", "failed", "no_work", "existing", "skipped"

_REPOS: dict[tuple[int, str], Any] = {}
_TASKS: dict[tuple[int, str, str], Any] = {}
#: Dimension-record caches for data-ID expansion, one per registry (a worker process may serve
#: several repositories in turn, e.g. in a test session: records must never leak between them).
_EXPAND: dict[str, dict] = {}


def _expand_cache(repo: Any) -> dict:
    return _EXPAND.setdefault(str(repo.config.registry_url), {})


class ExecutorGoneError(PachonError, RuntimeError):
    """The executor process that submitted this quantum has died: do not commit its outputs."""


@dataclass
class QuantumJob:
    """Everything a worker needs to run one quantum (picklable)."""

    repo_root: str
    run: str
    label: str
    task_class: str
    config: Any
    config_hash: str
    quantum: Quantum
    executor_pid: int | None = None
    #: Input collections, for messages.
    input_collections: str = ""


@dataclass
class QuantumResult:
    """Outcome of one quantum, sent back to the executor."""

    quantum_id: uuid.UUID
    label: str
    data_id: dict[str, Any]
    status: str
    error: str | None = None
    traceback: str | None = None
    wall_s: float = 0.0
    host: str = field(default_factory=socket.gethostname)


def _repo(root: str) -> Any:
    key = (os.getpid(), root)
    if key not in _REPOS:
        from pachon.repo import Repository

        _REPOS[key] = Repository(root)
    return _REPOS[key]


def use_repository(repo: Any) -> None:
    """Make quanta executed in this process for ``repo.root`` use this open repository.

    For a caller that holds a `Repository` subclass with extra behaviour, e.g. the prompt
    service's repository that serves inputs read ahead of a visit's raws.
    """
    _REPOS[(os.getpid(), str(repo.root))] = repo


def repository_for(root: str) -> Any | None:
    """The open repository that quanta executed in this process use for ``root``, if any yet.

    The one installed with `use_repository` or opened by an earlier quantum; None otherwise.
    """
    return _REPOS.get((os.getpid(), str(root)))


def _task(job: QuantumJob) -> Any:
    key = (os.getpid(), job.task_class, job.config_hash)
    if key not in _TASKS:
        from pachon.pipe.task import import_task_class

        _TASKS[key] = import_task_class(job.task_class, source=f"task {job.label!r}")(job.config)
    return _TASKS[key]


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


def _guard(job: QuantumJob) -> None:
    if job.executor_pid is not None and not process_alive(job.executor_pid):
        raise ExecutorGoneError(f"executor process {job.executor_pid} died; quantum {job.label} "
                           f"{job.quantum.data_id} not committed (rerun with --skip-existing)")


def _read_inputs(repo: Any, task: Any, q: Quantum) -> dict[str, Any]:
    conns = {**task.inputs, **task.prerequisites}
    out: dict[str, Any] = {}
    for name, refs in q.inputs.items():
        conn = conns[name]
        multiple = conn.multiple or getattr(conn, "lookup", None) == "region"
        if getattr(conn, "optional", False):
            # An optional prerequisite predicted from an upstream quantum that found no work (or
            # failed) is absent, exactly as if no quantum made it: the task gets None / fewer items.
            objs = _read_available(repo, refs)
            if len(objs) < len(refs):
                _log.info("%s %s: optional input %s (%s) not produced upstream; the task gets %s",
                          q.label, q.data_id, name, conn.dataset_type, "what exists" if multiple else "None")
                if not objs and name not in q.absent_optional:
                    q.absent_optional.append(name)
            out[name] = objs if multiple else (objs[0] if objs else None)
            continue
        try:
            objs = [repo.get(r) for r in refs]
        except DatasetNotFoundError as exc:
            raise NoWorkFound(f"input {name!r} of {q.label} {q.data_id} was not produced upstream: "
                              f"{exc}") from None
        out[name] = objs if multiple else objs[0]
    for name in q.absent_optional:
        pre = task.prerequisites[name]
        _log.info("%s %s: optional prerequisite %s (%s) absent; the task gets None", q.label, q.data_id,
                  name, pre.dataset_type)
        out[name] = [] if pre.multiple or pre.lookup == "region" else None
    return out


def _read_available(repo: Any, refs: list[Any]) -> list[Any]:
    objs = []
    for ref in refs:
        try:
            objs.append(repo.get(ref))
        except DatasetNotFoundError:
            continue
    return objs


def _check_missing(q: Quantum, collections: str) -> None:
    if q.missing:
        reasons = "; ".join(q.missing.values())
        raise DatasetNotFoundError(f"task {q.label!r} quantum {q.data_id}: {reasons}; certify or add the "
                                   f"dataset to {collections or 'the input collections'} and rerun with "
                                   f"--skip-existing --clobber-failures, or declare the prerequisite "
                                   f"optional=True or missing='drop'")


def _outputs(task: Any, q: Quantum, returned: Any) -> list[tuple[Any, Any]]:
    if returned is None:
        returned = {}
    if not hasattr(returned, "items"):
        raise ConfigError(f"task {q.label!r} run() must return a mapping of output name -> object, "
                          f"got {type(returned).__name__}")
    unknown = set(returned) - set(q.outputs)
    if unknown:
        raise ConfigError(f"task {q.label!r} returned unknown output {sorted(unknown)[0]!r}; declared: "
                          f"{', '.join(q.outputs) or '(none)'}")
    return [(q.outputs[name], obj) for name, obj in returned.items() if obj is not None]


def _metadata(job: QuantumJob, status: str, t0: float, c0: float, start_ns: int, outputs: list) -> dict:
    from pachon import __version__
    from pachon.repo.butler import now_ns

    q = job.quantum
    return {
        "quantum_id": str(q.id), "task": job.label, "task_class": job.task_class, "status": status,
        "data_id": q.data_id, "start_ns_tai": start_ns, "end_ns_tai": now_ns(),
        "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
        "peak_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "host": socket.gethostname(), "pid": os.getpid(), "software_version": __version__,
        "config_hash": job.config_hash, "inputs": [str(i) for i in q.input_ids()],
        "outputs": {r.dataset_type: str(r.id) for r, _ in outputs},
        "missing_optional": list(q.absent_optional),
    }


def execute_quantum(job: QuantumJob) -> QuantumResult:
    """Run one quantum and record it in the repository.

    Returns
    -------
    result
        Status ``succeeded``, ``no_work`` (the task raised `NoWorkFound` or an upstream output is
        absent), ``existing`` (already complete) or ``failed`` (with the traceback, also stored
        as a ``<label>_failure`` record).
    """
    from pachon.repo.butler import now_ns

    q = job.quantum
    t0, c0, start_ns = time.perf_counter(), time.process_time(), now_ns()
    repo = _repo(job.repo_root)
    if repo.get_dataset(q.metadata.id) is not None:
        return QuantumResult(q.id, q.label, q.data_id, EXISTING)
    prov = provenance_row(task=job.label, quantum_id=q.id, config_hash=job.config_hash)
    try:
        task = _task(job)
        _check_missing(q, job.input_collections)
        try:
            inputs = _read_inputs(repo, task, q)
            outputs = _outputs(task, q, task.run_quantum(inputs, dict(q.data_id)))
            status = SUCCEEDED
        except NoWorkFound as exc:
            _log.info("%s %s: no work (%s)", q.label, q.data_id, exc)
            outputs, status = [], NO_WORK
        meta = _metadata(job, status, t0, c0, start_ns, outputs)
        write_datasets(repo, job.run, [*outputs, (q.metadata, meta)], provenance=prov, inputs=q.input_ids(),
                       before_commit=lambda: _guard(job), expand_cache=_expand_cache(repo))
        return QuantumResult(q.id, q.label, q.data_id, status, wall_s=time.perf_counter() - t0)
    except ExecutorGoneError:
        raise
    except Exception as exc:  # noqa: BLE001 - every task failure is recorded, not raised
        tb = traceback.format_exc()
        message = f"{type(exc).__name__}: {exc}"
        _log.error("quantum %s %s failed: %s", q.label, q.data_id, message)
        if repo.get_dataset(q.metadata.id) is not None:
            return QuantumResult(q.id, q.label, q.data_id, EXISTING)
        record = {"quantum_id": str(q.id), "task": job.label, "data_id": q.data_id, "error": message,
                  "traceback": tb, "host": socket.gethostname(), "pid": os.getpid(), "time_ns_tai": now_ns()}
        try:
            write_datasets(repo, job.run, [(q.failure, record)], provenance=prov, inputs=q.input_ids(),
                           before_commit=lambda: _guard(job), expand_cache=_expand_cache(repo))
        except Exception as exc2:  # noqa: BLE001 - the failure is reported anyway
            _log.warning("could not record the failure of %s %s: %s", q.label, q.data_id, exc2)
        return QuantumResult(q.id, q.label, q.data_id, FAILED, message, tb, time.perf_counter() - t0)

"""Scheduling shared by every executor: submit ready quanta, collect results, skip downstream of failures."""

from __future__ import annotations

import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from pachon.core.progress import progress
from pachon.pipe.graph import Quantum, QuantumGraph
from pachon.pipe.quantum import EXISTING, FAILED, QuantumJob, QuantumResult
from pachon.pipe.report import RunReport

__all__ = ["Executor", "Session"]

_log = logging.getLogger(__name__)


class Session(ABC):
    """A live execution back end (a process pool, a Dask client...)."""

    #: How many quanta may be in flight at once.
    capacity: int = 1

    @abstractmethod
    def submit(self, job: QuantumJob) -> Any:
        """Start a quantum; return a handle."""

    @abstractmethod
    def wait(self, handles: list[Any]) -> list[tuple[Any, QuantumResult]]:
        """Block until at least one handle finishes; return the finished ones with results."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the back end."""


class Executor(ABC):
    """Runs a quantum graph: the same scheduling everywhere, a different `Session` per back end."""

    name = "executor"
    #: Whether workers run on this host, children of this process (enables the dead-executor guard).
    local_workers = True

    @abstractmethod
    def session(self) -> Session:
        """Open the back end."""

    def execute(self, graph: QuantumGraph, make_job: Callable[[Quantum], QuantumJob], report: RunReport, *,
                done: set[uuid.UUID] | frozenset = frozenset()) -> RunReport:
        """Run every quantum of ``graph`` not in ``done``, in dependency order.

        Parameters
        ----------
        graph
            The quantum graph.
        make_job
            Builds the job sent to a worker for a quantum.
        report
            Filled with one result per quantum.
        done
            Quanta already complete (reported as ``existing``).
        """
        t0 = time.perf_counter()
        for qid in done:
            q = graph.quanta[qid]
            report.add(QuantumResult(q.id, q.label, q.data_id, EXISTING))
        todo = [q for q in graph if q.id not in done]
        if todo:
            session = self.session()
            try:
                for _ in progress(self._events(graph, todo, set(done), make_job, report, session),
                                  total=len(todo), desc=f"quanta ({self.name})", logger=_log):
                    pass
            finally:
                session.close()
        report.wall_s = time.perf_counter() - t0
        return report

    def _events(self, graph: QuantumGraph, todo: list[Quantum], done: set[uuid.UUID],
                make_job: Callable[[Quantum], QuantumJob], report: RunReport,
                session: Session) -> Iterator[QuantumResult]:
        pending = {q.id: set(q.upstream) - done for q in todo}
        blocked: set[uuid.UUID] = set()
        ready = deque(q.id for q in todo if not pending[q.id])
        in_flight: dict[Any, uuid.UUID] = {}
        while ready or in_flight:
            while ready and len(in_flight) < session.capacity:
                qid = ready.popleft()
                in_flight[session.submit(make_job(graph.quanta[qid]))] = qid
            for handle, result in session.wait(list(in_flight)):
                qid = in_flight.pop(handle)
                report.add(result)
                yield result
                if result.status == FAILED:
                    newly = [d for d in graph.descendants(qid) if d not in blocked]
                    blocked.update(newly)
                    report.add_skipped([graph.quanta[d] for d in newly],
                                       f"upstream {result.label} {result.data_id} failed")
                    for _ in newly:
                        yield result
                    continue
                for d in graph.downstream.get(qid, ()):
                    pending[d].discard(qid)
                    if not pending[d] and d not in blocked:
                        ready.append(d)

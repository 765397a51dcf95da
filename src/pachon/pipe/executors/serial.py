"""The in-process serial executor: one quantum after another, easiest to debug."""

from __future__ import annotations

import logging
from typing import Any

from pachon.pipe.executors.base import Executor, Session
from pachon.pipe.quantum import QuantumJob, QuantumResult, execute_quantum

__all__ = ["SerialExecutor"]

_log = logging.getLogger(__name__)


class _SerialSession(Session):
    capacity = 1

    def __init__(self) -> None:
        self._results: dict[int, QuantumResult] = {}
        self._next = 0

    def submit(self, job: QuantumJob) -> Any:
        self._next += 1
        self._results[self._next] = execute_quantum(job)
        return self._next

    def wait(self, handles: list[Any]) -> list[tuple[Any, QuantumResult]]:
        return [(h, self._results.pop(h)) for h in handles]


class SerialExecutor(Executor):
    """Run quanta one by one in this process (exceptions inside tasks are recorded, not raised)."""

    name = "serial"

    def session(self) -> Session:
        """A session running each job as it is submitted."""
        return _SerialSession()

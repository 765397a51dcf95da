"""The local process-pool executor (``-j N``).

Workers are started with the ``forkserver`` method (preloading the framework), so they do not
inherit this process's threads or database connections.  A worker killed mid-quantum breaks
the pool: a new pool is started and the quanta that were in flight are retried once; a quantum
whose retry breaks the pool again is reported failed.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import threading
import time
import traceback
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from pachon.core.errors import ConfigError
from pachon.pipe.executors.base import Executor, Session
from pachon.pipe.quantum import FAILED, QuantumJob, QuantumResult, execute_quantum

__all__ = ["ProcessPoolExecutor"]

_log = logging.getLogger(__name__)
_MAX_ATTEMPTS = 2


def _watch(executor_pid: int) -> None:
    from pachon.pipe.quantum import process_alive

    while process_alive(executor_pid):
        time.sleep(0.5)
    os._exit(3)


def _start_watchdog(executor_pid: int) -> None:
    """Worker initializer: exit when the executor dies (kill -9) instead of lingering forever."""
    threading.Thread(target=_watch, args=(executor_pid,), daemon=True, name="pachon-watchdog").start()


def _failed(job: QuantumJob, message: str, tb: str | None = None) -> QuantumResult:
    q = job.quantum
    return QuantumResult(q.id, q.label, q.data_id, FAILED, message, tb)


class _PoolSession(Session):
    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.capacity = 2 * processes
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["pachon.pipe.quantum"])
        self._ctx = ctx
        self._pool = self._new_pool()
        self._jobs: dict[int, tuple[QuantumJob, int, cf.Future, cf.ProcessPoolExecutor]] = {}
        self._next = 0

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(max_workers=self.processes, mp_context=self._ctx,
                                      initializer=_start_watchdog, initargs=(os.getpid(),))

    def _start(self, handle: int, job: QuantumJob, attempt: int) -> None:
        try:
            fut = self._pool.submit(execute_quantum, job)
        except BrokenProcessPool:
            self._replace_pool()
            fut = self._pool.submit(execute_quantum, job)
        self._jobs[handle] = (job, attempt, fut, self._pool)

    def _replace_pool(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def submit(self, job: QuantumJob) -> Any:
        self._next += 1
        self._start(self._next, job, 1)
        return self._next

    def wait(self, handles: list[Any]) -> list[tuple[Any, QuantumResult]]:
        while True:
            futs = {self._jobs[h][2]: h for h in handles}
            finished, _ = cf.wait(list(futs), return_when=cf.FIRST_COMPLETED)
            out = []
            for fut in finished:
                h = futs[fut]
                job, attempt, _, pool = self._jobs[h]
                try:
                    out.append((h, fut.result()))
                except BrokenProcessPool:
                    if pool is self._pool:
                        _log.warning("a worker process died; starting a new pool")
                        self._replace_pool()
                    if attempt < _MAX_ATTEMPTS:
                        _log.warning("retrying %s %s after a worker died", job.label, job.quantum.data_id)
                        self._start(h, job, attempt + 1)
                    else:
                        out.append((h, _failed(job, "worker process died twice while this quantum was in "
                                                    "flight")))
                except Exception as exc:  # noqa: BLE001 - e.g. unpicklable config: recorded per quantum
                    out.append((h, _failed(job, f"{type(exc).__name__}: {exc}", traceback.format_exc())))
            for h, _ in out:
                del self._jobs[h]
            if out:
                return out

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class ProcessPoolExecutor(Executor):
    """Run quanta in ``processes`` local worker processes.

    Parameters
    ----------
    processes
        Number of worker processes (``-j``).
    """

    name = "pool"

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ConfigError(f"-j/processes must be at least 1, got {processes}")
        self.processes = processes

    def session(self) -> Session:
        """A process pool of ``processes`` workers."""
        return _PoolSession(self.processes)

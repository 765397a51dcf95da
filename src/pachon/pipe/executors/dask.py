"""The Dask distributed executor: an existing cluster (scheduler address) or a LocalCluster.

Needs the optional extra ``pachon[dask]``.  The driver keeps the dependency bookkeeping and
submits a quantum when its inputs are done, so the graph, outputs and failure handling are
those of the other executors.  On a batch system, start the cluster with dask-jobqueue
(``SLURMCluster``, ``PBSCluster``, ``HTCondorCluster``) and pass its scheduler address; see
``docs/pipelines.md``.  Workers must see the repository (shared file system or object store).
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from pachon.core.errors import ConfigError
from pachon.pipe.executors.base import Executor, Session
from pachon.pipe.quantum import FAILED, QuantumJob, QuantumResult, execute_quantum

__all__ = ["DaskExecutor"]

_log = logging.getLogger(__name__)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ConfigError("the Dask executor needs dask.distributed: pip install 'pachon[dask]'") from exc
    return distributed


class _DaskSession(Session):
    def __init__(self, client: Any, cluster: Any, own_client: bool) -> None:
        self.client, self.cluster, self.own_client = client, cluster, own_client
        nthreads = sum(client.nthreads().values()) or 1
        self.capacity = max(4 * nthreads, 8)
        self._futures: dict[int, tuple[QuantumJob, Any]] = {}
        self._next = 0

    def submit(self, job: QuantumJob) -> Any:
        self._next += 1
        key = f"quantum-{job.label}-{job.quantum.id}-{self._next}"
        self._futures[self._next] = (job, self.client.submit(execute_quantum, job, key=key, pure=False))
        return self._next

    def wait(self, handles: list[Any]) -> list[tuple[Any, QuantumResult]]:
        distributed = _import_distributed()
        futs = {self._futures[h][1]: h for h in handles}
        done, _ = distributed.wait(list(futs), return_when="FIRST_COMPLETED")
        out = []
        for fut in done:
            h = futs[fut]
            job, _ = self._futures.pop(h)
            try:
                out.append((h, fut.result()))
            except Exception as exc:  # noqa: BLE001 - KilledWorker, unpicklable job...: recorded per quantum
                q = job.quantum
                out.append((h, QuantumResult(q.id, q.label, q.data_id, FAILED, f"{type(exc).__name__}: {exc}",
                                             "".join(traceback.format_exception(exc)))))
            fut.release()
        return out

    def close(self) -> None:
        if self.own_client:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


class DaskExecutor(Executor):
    """Run quanta on a Dask distributed cluster.

    Parameters
    ----------
    address
        Scheduler address (``tcp://host:8786``); None starts a LocalCluster.
    n_workers
        Worker processes of the LocalCluster (one thread each).
    client
        An existing ``distributed.Client`` to use instead (not closed afterwards).
    """

    name = "dask"

    def __init__(self, address: str | None = None, *, n_workers: int = 2, client: Any = None) -> None:
        _import_distributed()
        self.address, self.n_workers, self.client = address, n_workers, client
        self.local_workers = client is None and address is None

    def session(self) -> Session:
        """Connect to the cluster (or start a LocalCluster)."""
        distributed = _import_distributed()
        if self.client is not None:
            return _DaskSession(self.client, None, own_client=False)
        if self.address is not None:
            return _DaskSession(distributed.Client(self.address), None, own_client=True)
        cluster = distributed.LocalCluster(n_workers=self.n_workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
        return _DaskSession(distributed.Client(cluster), cluster, own_client=True)

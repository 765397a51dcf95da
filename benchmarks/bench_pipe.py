"""Framework overhead per quantum: graph build + execution of no-op tasks, for each executor.

Usage::

    .venv/bin/python benchmarks/bench_pipe.py --quanta 10000 -j 2 [--executors serial,pool,dask]

A repository with one instrument, ``E`` exposures x ``D`` detectors is created in a temporary
folder (SQLite registry, local datastore).  `pachon.pipe.examples.NoOpTask` runs once per
(exposure, detector): each quantum writes one empty Json output and its metadata record, so the
figures are the framework's cost: graph build, scheduling, serialization to workers, two file
writes (atomic, fsynced) and one registry transaction per quantum.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import tempfile
import time
from pathlib import Path

from pachon.pipe import Pipeline, build_quantum_graph
from pachon.pipe.quantum import QuantumJob
from pachon.pipe.report import RunReport
from pachon.pipe.resume import chain_output, completed_quanta
from pachon.pipe.runner import register_output_types
from pachon.repo import Repository


def make_repo(root: Path, n_exposures: int, n_detectors: int) -> Repository:
    """A repository with the dimension records of ``n_exposures`` x ``n_detectors``."""
    repo = Repository.create(root)
    repo.insert_dimension_records("instrument", [{"name": "Cam", "detector_max": n_detectors}])
    repo.insert_dimension_records("physical_filter", [{"instrument": "Cam", "name": "g-1", "band": "g"}])
    repo.insert_dimension_records("detector", [{"instrument": "Cam", "id": i} for i in range(n_detectors)])
    repo.insert_dimension_records("day_obs", [{"instrument": "Cam", "id": 20240101}])
    repo.insert_dimension_records("exposure", [
        {"instrument": "Cam", "id": e, "physical_filter": "g-1", "band": "g", "day_obs": 20240101}
        for e in range(n_exposures)])
    return repo


def bench(repo: Repository, executor, label: str) -> dict[str, float]:  # noqa: ANN001
    """Build the graph and execute it with ``executor``; return timings."""
    pipe = Pipeline.from_dict({"tasks": {"noop": "pachon.pipe.examples.NoOpTask"}}, source="bench")
    run = f"bench/{label}"
    register_output_types(repo, pipe)
    t0 = time.perf_counter()
    graph = build_quantum_graph(repo, pipe, input_collections=[], run=run, where="instrument = 'Cam'")
    t_graph = time.perf_counter() - t0
    chain_output(repo, None, run, [])
    done = completed_quanta(repo, graph, skip_existing=False, clobber_failures=False)
    tdef = pipe.task_defs["noop"]
    pid = os.getpid()

    def make_job(q):  # noqa: ANN001, ANN202
        return QuantumJob(str(repo.root), run, q.label, tdef.class_path, tdef.config, tdef.config_hash,
                          q, pid)

    report = RunReport(run, None, ["noop"])
    t0 = time.perf_counter()
    executor.execute(graph, make_job, report, done=done)
    t_exec = time.perf_counter() - t0
    assert report.ok and report.counts()["noop"]["succeeded"] == len(graph), report.table()
    return {"quanta": len(graph), "graph_s": t_graph, "exec_s": t_exec}


def main() -> None:
    """Run the benchmark and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quanta", type=int, default=10_000)
    ap.add_argument("-j", "--processes", type=int, default=2)
    ap.add_argument("--executors", default="serial,pool,dask")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    n_det = int(math.sqrt(args.quanta))
    n_exp = args.quanta // n_det
    from pachon.pipe.executors import ProcessPoolExecutor, SerialExecutor

    makers = {"serial": SerialExecutor, "pool": lambda: ProcessPoolExecutor(args.processes)}
    try:
        from pachon.pipe.executors import DaskExecutor

        makers["dask"] = lambda: DaskExecutor(n_workers=args.processes)
    except Exception as exc:  # noqa: BLE001 - optional extra
        print(f"dask skipped: {exc}")
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "repo", n_exp, n_det)
        print(f"{n_exp} exposures x {n_det} detectors = {n_exp * n_det} quanta; -j {args.processes}; "
              f"{os.cpu_count()} CPUs")
        print(f"{'executor':<8} {'quanta':>7} {'graph s':>8} {'graph ms/q':>10} {'exec s':>8} "
              f"{'exec ms/q':>10} "
              f"{'quanta/s':>9}")
        for name in args.executors.split(","):
            if name not in makers:
                continue
            r = bench(repo, makers[name](), name)
            n = r["quanta"]
            print(f"{name:<8} {n:>7d} {r['graph_s']:>8.2f} {1e3 * r['graph_s'] / n:>10.3f} "
                  f"{r['exec_s']:>8.1f} "
                  f"{1e3 * r['exec_s'] / n:>10.2f} {n / r['exec_s']:>9.0f}", flush=True)


if __name__ == "__main__":
    main()

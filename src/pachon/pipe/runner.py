"""`run_pipeline`: build the quantum graph, prepare the output collections and execute."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pachon.pipe.executors.base import Executor
from pachon.pipe.graph import Quantum, build_quantum_graph
from pachon.pipe.pipeline import Pipeline
from pachon.pipe.quantum import QuantumJob
from pachon.pipe.report import RunReport
from pachon.pipe.resume import chain_output, choose_run, completed_quanta

__all__ = ["run_pipeline", "register_output_types"]

_log = logging.getLogger(__name__)


def register_output_types(repo: Any, pipeline: Pipeline) -> None:
    """Register every dataset type the pipeline writes (checks agreement with existing ones).

    Types declared ``is_calibration`` (see `DatasetTypeSpec`) are registered as calibration
    dataset types, so their datasets can be certified as written.
    """
    for spec in pipeline.output_types():
        repo.register_dataset_type(spec.name, spec.dimensions, spec.storage_class,
                                   is_calibration=spec.is_calibration)


def run_pipeline(repo: Any, pipeline: Pipeline | str | Path, *, inputs: Sequence[str],
                 output: str | None = None,
                 output_run: str | None = None, where: str | None = None, bind: dict[str, Any] | None = None,
                 executor: Executor | None = None, skip_existing: bool = False,
                 clobber_failures: bool = False) -> RunReport:
    """Run a pipeline on the data selected by ``where``.

    Parameters
    ----------
    repo
        A `pachon.repo.Repository` or its root folder.
    pipeline
        A `Pipeline` or a YAML path (``file.yaml#subset`` for a subset).
    inputs
        Input collections, searched in order.
    output
        CHAINED output collection: [new run, inputs...] (like Rubin's ``-o``).
    output_run
        Write into this RUN instead of a new timestamped one.
    where
        Data selection, e.g. ``"instrument='LSSTComCam' AND visit > 100"``.
    bind
        Values of ``:name`` parameters of ``where``.
    executor
        Serial (default), process pool or Dask.
    skip_existing
        Resume: skip quanta complete in the output run (the head of an existing ``output`` chain).
    clobber_failures
        Remove failure records and leftovers of interrupted quanta, and run those quanta again.

    Returns
    -------
    report
        Per-quantum outcomes; ``report.ok`` is False when any quantum failed or was skipped.
    """
    from pachon.pipe.executors.serial import SerialExecutor
    from pachon.repo import Repository

    if not isinstance(repo, Repository):
        repo = Repository(repo)
    pipe = pipeline if isinstance(pipeline, Pipeline) else Pipeline.from_yaml(pipeline)
    executor = executor or SerialExecutor()
    run = choose_run(repo, output=output, output_run=output_run, skip_existing=skip_existing)
    register_output_types(repo, pipe)
    graph = build_quantum_graph(repo, pipe, input_collections=inputs, run=run, where=where, bind=bind)
    chain_output(repo, output, run, inputs)
    done = completed_quanta(repo, graph, skip_existing=skip_existing, clobber_failures=clobber_failures)
    pid = os.getpid() if executor.local_workers else None
    defs = pipe.task_defs

    def make_job(q: Quantum) -> QuantumJob:
        tdef = defs[q.label]
        return QuantumJob(str(repo.root), run, q.label, tdef.class_path, tdef.config, tdef.config_hash,
                          q, pid, input_collections=str(list(inputs)))

    report = RunReport(run, output, [t.label for t in pipe.ordered()])
    executor.execute(graph, make_job, report, done=done)
    (_log.info if report.ok else _log.error)("%s", report.summary())
    return report

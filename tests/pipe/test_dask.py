"""The Dask executor on a LocalCluster: same graph, same outputs, same failure handling."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipe_helpers import N_DETECTORS, N_EXPOSURES, input_value
from test_execution import expected, outputs_of

from pachon.pipe import Pipeline, run_pipeline
from pachon.repo import Repository

pytest.importorskip("distributed", reason="the Dask executor needs the optional extra pachon[dask]")


@pytest.mark.slow
def test_dask_local_cluster_outputs_and_failures(toy_repo: Repository, pipeline_file: Path) -> None:
    from pachon.pipe.executors import DaskExecutor

    bad = input_value(3, 0)
    pipe = Pipeline.from_dict({"tasks": {
        "scale": {"class": "pachon.pipe.examples.ScaleTask", "config": {"factor": 3.0, "fail_on": [bad]}},
        "total": "pachon.pipe.examples.SumTask"}}, source="inline")
    report = run_pipeline(toy_repo, pipe, inputs=["raw/toy"], output="dask",
                          executor=DaskExecutor(n_workers=2))
    c = report.counts()
    assert c["scale"]["failed"] == 1 and c["scale"]["succeeded"] == N_EXPOSURES * N_DETECTORS - 1
    assert c["total"]["skipped"] == 1 and c["total"]["succeeded"] == N_EXPOSURES - 1
    assert outputs_of(toy_repo, "dask") == expected(skip_values=(bad,))
    # resume on Dask with the fix: only the failed quantum and its downstream run
    fixed = Pipeline.from_yaml(pipeline_file)
    again = run_pipeline(toy_repo, fixed, inputs=["raw/toy"], output="dask", skip_existing=True,
                         clobber_failures=True, executor=DaskExecutor(n_workers=2))
    assert again.ok and again.counts()["scale"]["succeeded"] == 1
    assert outputs_of(toy_repo, "dask") == expected()
    meta = toy_repo.get("total_metadata", {"instrument": "Cam", "exposure": 3}, collections="dask")
    assert meta["status"] == "succeeded" and meta["pid"] > 0

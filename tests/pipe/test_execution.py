"""Graph construction, the serial and process-pool executors, failures, resume and provenance."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipe_helpers import N_DETECTORS, N_EXPOSURES, input_value

from pachon.core.errors import ConflictError, QueryError
from pachon.pipe import Pipeline, build_quantum_graph, run_pipeline
from pachon.pipe.executors import ProcessPoolExecutor, SerialExecutor
from pachon.repo import Repository


def outputs_of(repo: Repository, collection: str) -> dict[tuple, float]:
    """(dataset type, exposure, detector) -> value of every toy output in a collection."""
    out = {}
    registered = {dt.name for dt in repo.registry.list_dataset_types()}
    for name in ("toy_scaled", "toy_total"):
        if name not in registered:
            continue
        for ref in repo.query_datasets(name, collection):
            out[(name, ref.data_id["exposure"], ref.data_id.get("detector"))] = repo.get(ref)["value"]
    return out


def expected(factor: float = 3.0, exposures=range(1, N_EXPOSURES + 1), skip_values=()) -> dict[tuple, float]:
    out = {}
    for e in exposures:
        vals = [factor * input_value(e, d) for d in range(N_DETECTORS)
                if input_value(e, d) not in skip_values]
        for d in range(N_DETECTORS):
            if input_value(e, d) not in skip_values:
                out[("toy_scaled", e, d)] = factor * input_value(e, d)
        if len(vals) == N_DETECTORS:
            out[("toy_total", e, None)] = sum(vals)
    return out


def test_graph_construction(toy_repo: Repository, pipeline_file: Path) -> None:
    pipe = Pipeline.from_yaml(pipeline_file)
    graph = build_quantum_graph(toy_repo, pipe, input_collections=["raw/toy"], run="out/run",
                                where="instrument = 'Cam' AND exposure > 2 AND detector IN (0, 1)")
    assert graph.counts() == {"scale": 4, "total": 2}
    totals = graph.by_label("total")
    assert sorted(q.data_id["exposure"] for q in totals) == [3, 4]
    for q in totals:
        assert len(q.inputs["scaled"]) == 2  # the where on detector reaches the gather through its inputs
        assert len(q.upstream) == 2
        assert {graph.quanta[u].data_id["exposure"] for u in q.upstream} == {q.data_id["exposure"]}
    scale = graph.by_label("scale")[0]
    assert scale.inputs["data"][0].run == "raw/toy"
    again = build_quantum_graph(toy_repo, pipe, input_collections=["raw/toy"], run="out/run",
                                where="exposure > 2 AND detector IN (0, 1)")
    assert list(again.quanta) == list(graph.quanta)  # deterministic ids
    with pytest.raises(QueryError):
        build_quantum_graph(toy_repo, pipe, input_collections=["raw/toy"], run="x", where="visitt > 1")


@pytest.mark.parametrize("executor", [SerialExecutor(), ProcessPoolExecutor(2)], ids=["serial", "pool"])
def test_run_outputs_chain_and_provenance(toy_repo: Repository, pipeline_file: Path, executor) -> None:
    report = run_pipeline(toy_repo, pipeline_file, inputs=["raw/toy"], output="u/me/out", executor=executor)
    assert report.ok
    n = N_EXPOSURES * N_DETECTORS
    zero = {"no_work": 0, "existing": 0, "failed": 0, "skipped": 0}
    assert report.counts() == {"scale": {"succeeded": n, **zero}, "total": {"succeeded": N_EXPOSURES, **zero}}
    chain = toy_repo.registry.get_chain("u/me/out")
    assert chain == [report.run, "raw/toy"] and report.run.startswith("u/me/out/")
    assert outputs_of(toy_repo, "u/me/out") == expected()
    # provenance: every output links to its quantum, task, config and inputs
    total = toy_repo.query_datasets("toy_total", "u/me/out", data_id={"exposure": 2})[0]
    prov = toy_repo.provenance(total)
    assert prov.task == "total" and prov.run == report.run
    assert {r.data_id["detector"] for r in prov.inputs} == set(range(N_DETECTORS))
    meta_ref = toy_repo.query_datasets("total_metadata", report.run, data_id={"exposure": 2})[0]
    assert toy_repo.provenance(meta_ref).quantum_id == prov.quantum_id
    meta = toy_repo.get(meta_ref)
    assert meta["status"] == "succeeded" and meta["config_hash"] == prov.config_hash
    assert sorted(meta["inputs"]) == sorted(str(r.id) for r in prov.inputs)
    assert meta["end_ns_tai"] >= meta["start_ns_tai"] and meta["peak_memory_bytes"] > 0 and meta["cpu_s"] >= 0
    raw = toy_repo.query_datasets("toy_input", "raw/toy", data_id={"exposure": 2, "detector": 1})[0]
    derived = toy_repo.query_derived(raw)
    assert {r.dataset_type for r in derived} == {"toy_scaled", "scale_metadata"}


def test_failure_isolation_and_resume(toy_repo: Repository, pipeline_file: Path) -> None:
    bad = input_value(2, 1)
    pipe = Pipeline.from_dict({"tasks": {
        "scale": {"class": "pachon.pipe.examples.ScaleTask", "config": {"factor": 3.0, "fail_on": [bad]}},
        "total": "pachon.pipe.examples.SumTask"}}, source="inline")
    report = run_pipeline(toy_repo, pipe, inputs=["raw/toy"], output="out", executor=ProcessPoolExecutor(2))
    assert not report.ok
    c = report.counts()
    assert c["scale"]["failed"] == 1 and c["scale"]["succeeded"] == N_EXPOSURES * N_DETECTORS - 1
    assert c["total"]["skipped"] == 1 and c["total"]["succeeded"] == N_EXPOSURES - 1
    (fail,) = report.failures()
    assert fail.data_id["exposure"] == 2 and fail.data_id["detector"] == 1
    assert "ValueError: value 21.0 is configured to fail" in fail.error and "Traceback" in fail.traceback
    assert "FAILED scale" in report.summary() and "--clobber-failures" in report.summary()
    rec = toy_repo.get("scale_failure", {"instrument": "Cam", "exposure": 2, "detector": 1},
                       collections=report.run)
    assert "configured to fail" in rec["traceback"]
    assert outputs_of(toy_repo, "out") == expected(skip_values=(bad,))

    fixed = Pipeline.from_dict({"tasks": {
        "scale": {"class": "pachon.pipe.examples.ScaleTask", "config": {"factor": 3.0}},
        "total": "pachon.pipe.examples.SumTask"}}, source="inline")
    with pytest.raises(ConflictError, match="--skip-existing"):
        run_pipeline(toy_repo, fixed, inputs=["raw/toy"], output_run=report.run)
    with pytest.raises(ConflictError, match="--clobber-failures"):
        run_pipeline(toy_repo, fixed, inputs=["raw/toy"], output="out", skip_existing=True)
    again = run_pipeline(toy_repo, fixed, inputs=["raw/toy"], output="out", skip_existing=True,
                         clobber_failures=True)
    assert again.ok and again.run == report.run
    c = again.counts()
    assert c["scale"]["succeeded"] == 1 and c["scale"]["existing"] == N_EXPOSURES * N_DETECTORS - 1
    assert c["total"]["succeeded"] == 1 and c["total"]["existing"] == N_EXPOSURES - 1
    assert outputs_of(toy_repo, "out") == expected()
    assert not toy_repo.query_datasets("scale_failure", report.run, find_first=False)


def test_subset_and_where(toy_repo: Repository, pipeline_file: Path) -> None:
    report = run_pipeline(toy_repo, f"{pipeline_file}#first", inputs=["raw/toy"], output="sub",
                          where="exposure IN (1, 3)")
    assert report.ok and report.counts()["scale"]["succeeded"] == 2 * N_DETECTORS
    assert outputs_of(toy_repo, "sub") == {k: v for k, v in expected(exposures=(1, 3)).items()
                                           if k[0] == "toy_scaled"}
    # the rest of the pipeline runs later from the first run's outputs
    rest = run_pipeline(toy_repo, pipeline_file, inputs=["sub"], output="sub2", where="exposure IN (1, 3)")
    assert rest.counts()["total"]["succeeded"] == 2 and rest.counts()["scale"]["succeeded"] == 2 * N_DETECTORS

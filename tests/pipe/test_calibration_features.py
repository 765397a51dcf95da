"""Per-input filters, calibration outputs, prerequisites made in the same pipeline, time rules."""

from __future__ import annotations

import pytest
from pipe_helpers import N_DETECTORS, N_EXPOSURES, input_value, observation_type

from pachon.core.errors import ConfigError, QueryError
from pachon.pipe import Input, Output, Pipeline, PrerequisiteInput, Task, run_pipeline
from pachon.repo import Repository

GATHER = "pachon.pipe.examples.GatherTask"
DET = ("instrument", "detector")


def _pipe(tasks: dict) -> Pipeline:
    return Pipeline.from_dict({"tasks": tasks}, source="inline")


def _sum(detector: int, kind: str | None = None, bias: float = 0.0) -> float:
    return sum(input_value(e, detector) - bias for e in range(1, N_EXPOSURES + 1)
               if kind is None or observation_type(e) == kind)


def test_per_input_where_in_one_run(toy_repo: Repository) -> None:
    pipe = _pipe({
        "biases": {"class": GATHER, "config": {"where": "exposure.observation_type = 'bias'",
                                                "output_type": "toy_b"}},
        "flats": {"class": GATHER, "config": {"where": "exposure.observation_type = 'flat'",
                                               "output_type": "toy_f"}},
        "all": {"class": GATHER, "config": {"output_type": "toy_all"}}})
    report = run_pipeline(toy_repo, pipe, inputs=["raw/toy"], output="g")
    assert report.ok, report.summary()
    for d in range(N_DETECTORS):
        did = {"instrument": "Cam", "detector": d}
        assert toy_repo.get("toy_b", did, collections="g") == {"value": _sum(d, "bias"), "n": 2}
        assert toy_repo.get("toy_f", did, collections="g") == {"value": _sum(d, "flat"), "n": 2}
        assert toy_repo.get("toy_all", did, collections="g")["n"] == N_EXPOSURES
    # the run's where still applies on top of the input's own
    run_pipeline(toy_repo, pipe.subset("flats"), inputs=["raw/toy"], output="g2", where="exposure < 3")
    assert toy_repo.get("toy_f", {"instrument": "Cam", "detector": 1}, collections="g2")["n"] == 1


def test_per_input_where_errors_name_the_input(toy_repo: Repository) -> None:
    pipe = _pipe({"g": {"class": GATHER, "config": {"where": "tract = 3"}}})
    with pytest.raises(QueryError, match=r"task 'g' input 'data': where 'tract = 3' cannot select toy_input"):
        run_pipeline(toy_repo, pipe, inputs=["raw/toy"], output="g")

    class Bad(Task):
        dimensions = DET
        prerequisites = {"c": PrerequisiteInput("toy_bias", DET, "Json", lookup="calibration", where="x")}
        outputs = {"o": Output("o", DET, "Json")}

        def run(self, c: object) -> dict:
            return {}

    with pytest.raises(ConfigError, match="prerequisite 'c': where= is supported for Inputs"):
        Bad.check_declarations("bad")


def test_calibration_output_certified_as_written_and_used_in_the_same_run(toy_repo: Repository) -> None:
    make = {"class": GATHER, "config": {"where": "exposure.observation_type = 'bias'",
                                         "output_type": "toy_bias", "is_calibration": True}}
    pipe = _pipe({"make_bias": make, "debias": "pachon.pipe.examples.DebiasTask"})
    assert [t.label for t in pipe.ordered()] == ["make_bias", "debias"]
    assert pipe.upstream_labels("debias") == {"make_bias"}
    assert next(s for s in pipe.output_types() if s.name == "toy_bias").is_calibration
    report = run_pipeline(toy_repo, pipe, inputs=["raw/toy"], output="cp")
    assert report.ok, report.summary()
    assert toy_repo.get_dataset_type("toy_bias").is_calibration
    for ref in toy_repo.query_datasets("toy_debiased", "cp"):
        e, d = ref.data_id["exposure"], ref.data_id["detector"]
        assert toy_repo.get(ref)["value"] == input_value(e, d) - _sum(d, "bias")
        assert {r.dataset_type for r in toy_repo.provenance(ref).inputs} == {"toy_input", "toy_bias"}
    # certified in place, no copy: the same dataset ids are found by validity time
    refs = toy_repo.query_datasets("toy_bias", "cp")
    toy_repo.register_collection("calib", "CALIBRATION")
    toy_repo.certify("calib", refs, None, None)
    found = toy_repo.find_dataset("toy_bias", {"instrument": "Cam", "detector": 1}, collections=["calib"],
                                  time="2024-01-01T05:00:00")
    assert found is not None and found.id in {r.id for r in refs}
    # the debias task alone now finds it as a certified calibration
    report = run_pipeline(toy_repo, pipe.subset("debias"), inputs=["raw/toy", "calib"], output="deb")
    assert report.ok and report.counts()["debias"]["succeeded"] == N_EXPOSURES * N_DETECTORS


def _two_biases(repo: Repository, *, single: bool = False) -> None:
    repo.register_dataset_type("toy_bias", DET, "Json", is_calibration=True)
    repo.register_collection("calib", "CALIBRATION")
    early = [repo.put({"value": 1.0}, "toy_bias", {"instrument": "Cam", "detector": d}, run="calib/a")
             for d in range(N_DETECTORS)]
    late = [repo.put({"value": 2.0}, "toy_bias", {"instrument": "Cam", "detector": d}, run="calib/b")
            for d in range(N_DETECTORS)]
    repo.certify("calib", early, None, "2024-01-01T02:30:00")
    repo.certify("calib", late, "2024-01-01T02:30:00", None)
    if single:  # calib2: the early bias only, valid from the start of that day
        repo.register_collection("calib2", "CALIBRATION")
        repo.certify("calib2", early, "2024-01-01T00:00:00", None)


@pytest.mark.parametrize(("rule", "bias"), [("earliest", 1.0), ("latest", 2.0), ("midpoint", 1.0)])
def test_time_rule_from_gathered_inputs(toy_repo: Repository, rule: str, bias: float) -> None:
    # exposure mid-times are 01:00:05 .. 04:00:05 and the late bias starts at 02:30:00; midpoint
    # gathers exposures 1..3 (midpoint 02:00:05: the early bias)
    _two_biases(toy_repo)
    where = "exposure < 4" if rule == "midpoint" else None
    pipe = _pipe({"g": {"class": GATHER, "config": {"bias_time": rule}}})
    report = run_pipeline(toy_repo, pipe, inputs=["raw/toy", "calib"], output="g", where=where)
    assert report.ok, report.summary()
    n = 3 if where else N_EXPOSURES
    for d in range(N_DETECTORS):
        out = toy_repo.get("toy_gathered", {"instrument": "Cam", "detector": d}, collections="g")
        assert out == {"value": sum(input_value(e, d) - bias for e in range(1, n + 1)), "n": n}


def test_time_rule_any_and_ambiguity(toy_repo: Repository) -> None:
    _two_biases(toy_repo, single=True)
    pipe = _pipe({"g": {"class": GATHER, "config": {"bias_time": "any"}}})
    # calib2 holds one certification per detector: found whatever its validity
    report = run_pipeline(toy_repo, pipe, inputs=["raw/toy", "calib2"], output="a")
    assert report.ok, report.summary()
    assert toy_repo.get("toy_gathered", {"instrument": "Cam", "detector": 0}, collections="a")["value"] \
        == _sum(0, bias=1.0)
    # calib holds two for each detector: ambiguous, the quantum fails and says so
    report = run_pipeline(toy_repo, pipe, inputs=["raw/toy", "calib"], output="b")
    assert report.counts()["g"]["failed"] == N_DETECTORS
    assert "ambiguous: several toy_bias datasets" in report.failures()[0].error
    # the default rule needs an exposure/visit time that a per-detector quantum lacks
    report = run_pipeline(toy_repo, _pipe({"g": {"class": GATHER, "config": {"bias_time": "quantum"}}}),
                          inputs=["raw/toy", "calib"], output="c")
    assert "no exposure/visit time: declare the prerequisite with time='latest'" in report.failures()[0].error


def test_time_rule_needs_calibration_lookup() -> None:
    class Bad(Task):
        dimensions = DET
        inputs = {"i": Input("toy_input", ("instrument", "exposure", "detector"), "Json", multiple=True)}
        prerequisites = {"c": PrerequisiteInput("toy_bias", DET, "Json", time="latest")}
        outputs = {"o": Output("o", DET, "Json")}

        def run(self, i: list, c: object) -> dict:
            return {}

    with pytest.raises(ConfigError, match="time='latest' needs lookup='calibration'"):
        Bad.check_declarations("bad")

"""Prerequisite inputs: calibrations found by validity time in a CALIBRATION collection."""

from __future__ import annotations

from pipe_helpers import N_DETECTORS, N_EXPOSURES, input_value

from pachon.pipe import Pipeline, run_pipeline
from pachon.repo import Repository


def test_calibration_lookup_by_exposure_time(toy_repo: Repository) -> None:
    toy_repo.register_dataset_type("toy_bias", ("instrument", "detector"), "Json", is_calibration=True)
    toy_repo.register_collection("calib", "CALIBRATION")
    early, late = [], []
    for d in range(N_DETECTORS):
        early.append(toy_repo.put({"value": 1.0}, "toy_bias", {"instrument": "Cam", "detector": d},
                                  run="calib/a"))
        late.append(toy_repo.put({"value": 5.0 + d}, "toy_bias", {"instrument": "Cam", "detector": d},
                                 run="calib/b"))
    # exposures start at 01:00, 02:00, 03:00, 04:00 (TAI): 1 and 2 use the early bias
    toy_repo.certify("calib", early, None, "2024-01-01T02:30:00")
    toy_repo.certify("calib", late, "2024-01-01T02:30:00", None)
    pipe = Pipeline.from_dict({"tasks": {"debias": "pachon.pipe.examples.DebiasTask"}}, source="inline")
    report = run_pipeline(toy_repo, pipe, inputs=["raw/toy", "calib"], output="deb")
    assert report.ok and report.counts()["debias"]["succeeded"] == N_EXPOSURES * N_DETECTORS
    for ref in toy_repo.query_datasets("toy_debiased", "deb"):
        e, d = ref.data_id["exposure"], ref.data_id["detector"]
        bias = 1.0 if e <= 2 else 5.0 + d
        assert toy_repo.get(ref)["value"] == input_value(e, d) - bias
        prov = toy_repo.provenance(ref)
        assert {r.run for r in prov.inputs} == {"raw/toy", "calib/a" if e <= 2 else "calib/b"}


def _one_bias(repo: Repository) -> None:
    repo.register_dataset_type("toy_bias", ("instrument", "detector"), "Json", is_calibration=True)
    repo.register_collection("calib", "CALIBRATION")
    ref = repo.put({"value": 1.0}, "toy_bias", {"instrument": "Cam", "detector": 0}, run="calib/a")
    repo.certify("calib", [ref], None, None)


def _debias(**config: object) -> Pipeline:
    entry = {"class": "pachon.pipe.examples.DebiasTask", "config": config}
    return Pipeline.from_dict({"tasks": {"debias": entry}}, source="inline")


def test_missing_calibration_fails_quantum_with_record(toy_repo: Repository) -> None:
    _one_bias(toy_repo)
    report = run_pipeline(toy_repo, _debias(), inputs=["raw/toy", "calib"], output="deb")
    counts = report.counts()["debias"]
    assert counts["succeeded"] == N_EXPOSURES and counts["failed"] == N_EXPOSURES * (N_DETECTORS - 1)
    fail = next(f for f in report.failures() if f.data_id["detector"] == 2 and f.data_id["exposure"] == 3)
    assert "'detector': 2" in fail.error and "'exposure': 3" in fail.error
    assert "required prerequisite 'bias' (toy_bias) not found" in fail.error
    assert "valid at 2024-01-01T03:00:05" in fail.error
    # nothing written for the failed quanta, a failure record naming the data ID instead
    written = toy_repo.query_datasets("toy_debiased", "deb")
    assert {r.data_id["detector"] for r in written} == {0}
    records = [toy_repo.get(r) for r in toy_repo.query_datasets("debias_failure", "deb")]
    assert len(records) == N_EXPOSURES * (N_DETECTORS - 1)
    assert all("toy_bias" in rec["error"] and rec["data_id"]["detector"] in (1, 2) for rec in records)


def test_missing_prerequisite_drop_policy(toy_repo: Repository) -> None:
    _one_bias(toy_repo)
    report = run_pipeline(toy_repo, _debias(missing="drop"), inputs=["raw/toy", "calib"], output="deb")
    assert report.ok and report.counts()["debias"]["succeeded"] == N_EXPOSURES  # detector 0 only


def test_optional_prerequisite_absent_gives_none(toy_repo: Repository) -> None:
    _one_bias(toy_repo)
    report = run_pipeline(toy_repo, _debias(optional=True), inputs=["raw/toy", "calib"], output="deb")
    assert report.ok and report.counts()["debias"]["succeeded"] == N_EXPOSURES * N_DETECTORS
    for ref in toy_repo.query_datasets("toy_debiased", "deb"):
        e, d = ref.data_id["exposure"], ref.data_id["detector"]
        out = toy_repo.get(ref)
        assert out == {"value": input_value(e, d) - (1.0 if d == 0 else 0.0), "bias_applied": d == 0}
        meta = toy_repo.get("debias_metadata", ref.data_id, collections=["deb"])
        assert meta["missing_optional"] == ([] if d == 0 else ["bias"])


def test_optional_input_from_upstream_without_work_gives_none(toy_repo: Repository) -> None:
    """An optional prerequisite made in the same run by a quantum that found no work is None.

    The gather makes a per-detector ``toy_bias`` calibration but finds no work for detector 1;
    debias (optional bias) still runs there, without a bias, and its metadata says so.
    """
    pipe = Pipeline.from_dict({"tasks": {
        "makebias": {"class": "pachon.pipe.examples.GatherTask",
                     "config": {"output_type": "toy_bias", "is_calibration": True,
                                "no_work_detectors": [1]}},
        "debias": {"class": "pachon.pipe.examples.DebiasTask", "config": {"optional": True}}}},
        source="inline")
    report = run_pipeline(toy_repo, pipe, inputs=["raw/toy"], output="deb2")
    counts = report.counts()
    assert report.ok, report.summary()
    assert counts["makebias"]["no_work"] == 1 and counts["makebias"]["succeeded"] == N_DETECTORS - 1
    assert counts["debias"]["succeeded"] == N_EXPOSURES * N_DETECTORS
    for ref in toy_repo.query_datasets("toy_debiased", "deb2"):
        e, d = ref.data_id["exposure"], ref.data_id["detector"]
        out = toy_repo.get(ref)
        assert out["bias_applied"] == (d != 1)
        if d == 1:
            assert out["value"] == input_value(e, d)
        meta = toy_repo.get("debias_metadata", ref.data_id, collections=["deb2"])
        assert meta["missing_optional"] == (["bias"] if d == 1 else [])

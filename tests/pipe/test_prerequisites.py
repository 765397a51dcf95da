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


def test_missing_prerequisite_drops_quanta(toy_repo: Repository) -> None:
    toy_repo.register_dataset_type("toy_bias", ("instrument", "detector"), "Json", is_calibration=True)
    toy_repo.register_collection("calib", "CALIBRATION")
    ref = toy_repo.put({"value": 1.0}, "toy_bias", {"instrument": "Cam", "detector": 0}, run="calib/a")
    toy_repo.certify("calib", [ref], None, None)
    pipe = Pipeline.from_dict({"tasks": {"debias": "pachon.pipe.examples.DebiasTask"}}, source="inline")
    report = run_pipeline(toy_repo, pipe, inputs=["raw/toy", "calib"], output="deb")
    assert report.ok and report.counts()["debias"]["succeeded"] == N_EXPOSURES  # detector 0 only

"""Helpers of the pipeline-framework tests: a small SQLite repository with toy inputs."""

from __future__ import annotations

from pathlib import Path

from pachon.repo import Repository

N_EXPOSURES = 4
N_DETECTORS = 3

PIPELINE_YAML = """\
description: toy pipeline of the tests
tasks:
  scale:
    class: pachon.pipe.examples.ScaleTask
    config:
      factor: 3.0
  total: pachon.pipe.examples.SumTask
subsets:
  first: [scale]
"""


def input_value(exposure: int, detector: int) -> float:
    """The toy_input value of a data ID."""
    return float(10 * exposure + detector)


def observation_type(exposure: int) -> str:
    """Observation type of a toy exposure: odd ones are biases, even ones flats."""
    return "bias" if exposure % 2 else "flat"


def make_toy_repo(root: Path, *, n_exposures: int = N_EXPOSURES,
                  n_detectors: int = N_DETECTORS) -> Repository:
    """Instrument Cam, exposures 1..n with datetimes, detectors 0..n-1, toy_input in run 'raw/toy'."""
    repo = Repository.create(root)
    repo.insert_dimension_records("instrument", [{"name": "Cam", "detector_max": n_detectors}])
    repo.insert_dimension_records("physical_filter", [{"instrument": "Cam", "name": "g-1", "band": "g"}])
    repo.insert_dimension_records("detector", [{"instrument": "Cam", "id": i, "full_name": f"D{i}"}
                                               for i in range(n_detectors)])
    repo.insert_dimension_records("day_obs", [{"instrument": "Cam", "id": 20240101}])
    repo.insert_dimension_records("exposure", [
        {"instrument": "Cam", "id": e, "physical_filter": "g-1", "band": "g", "day_obs": 20240101,
         "exposure_time": 10.0, "observation_type": observation_type(e),
         "datetime_begin": f"2024-01-01T{e % 24:02d}:00:00",
         "datetime_end": f"2024-01-01T{e % 24:02d}:00:10"} for e in range(1, n_exposures + 1)])
    repo.register_dataset_type("toy_input", ("instrument", "exposure", "detector"), "Json")
    for e in range(1, n_exposures + 1):
        for d in range(n_detectors):
            repo.put({"value": input_value(e, d)}, "toy_input",
                     {"instrument": "Cam", "exposure": e, "detector": d}, run="raw/toy")
    return repo

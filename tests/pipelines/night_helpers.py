"""Helpers of the pipeline tests: a tiny simulated PachonTestCam night through the cp pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pachon.pipe import run_pipeline
from pachon.pipelines.cp_certify import certify_calibrations
from pachon.repo import Repository
from pachon.sim import SimConfig, Simulator
from pachon.sim.api import simulate_survey
from pachon.sim.writer import RawMetadata, raw_header, write_raw

SEED = 11
RAW = "PachonTestCam/raw/all"
CALIB = "PachonTestCam/calib"
CP_OUTPUT = "cp/all"
CP_YAML = Path(__file__).parents[2] / "src" / "pachon" / "pipelines" / "cp.yaml"
ISR_YAML = CP_YAML.with_name("isr.yaml")
PTC_DAY = 20240331
PTC_TIMES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)  # flat pairs at 2000 e-/s: 1000 .. 64000 e-


@dataclass
class Night:
    root: Path
    repo: Any
    sim: Any
    config: Any
    reports: dict[str, Any]


def sim_config() -> SimConfig:
    return SimConfig.from_dict({
        "detectors": [0], "survey": {"n_visits": 1, "bands": ["r"]},
        "sky": {"satellite_probability": 0.0},
        "detector": {"cosmic_ray_rate": 0.0, "brighter_fatter": 0.0},
        "calibs": {"n_bias": 3, "n_dark": 3, "n_flat": 4}})


def write_ptc_raws(sim: Any, raw_dir: Path) -> list[Path]:
    """Flat pairs at several exposure times and two biases, the day after the survey night."""
    det = sim.detectors[0]
    illum = sim.signatures(det).illumination.astype(np.float64)
    paths = []
    plan = [("bias", 0.0)] * 2 + [("flat", t) for t in PTC_TIMES for _ in range(2)]
    for k, (kind, t) in enumerate(plan):
        seq = 500 + k
        meta = RawMetadata(kind, PTC_DAY, seq, 60401.2 + k / 1440, t, t, band="r", seed=SEED)
        raws, _ = sim.expose(2000.0 * t * illum, det, dark_time=t, rng=np.random.default_rng([SEED, 5, k]),
                             cosmic_rays=False)
        path = raw_dir / f"PachonTestCam_O_{PTC_DAY}_{seq:06d}_{det.name}.fits"
        write_raw(path, sim.instrument, det, raws, raw_header(sim.instrument, det, meta))
        paths.append(path)
    return paths


def build_night(root: Path) -> Night:
    """Simulate, ingest, run the whole cp pipeline in one call and certify its products into CALIB.

    The per-input filters of cp.yaml give the night's biases and the ptc biases (5) to the bias,
    the darks (3) to the dark, every flat (4 at 10 s and the 14 of the ptc ramp, all at
    2000 e-/s) to the flat and the ptc.
    """
    cfg = sim_config()
    res = simulate_survey(cfg, root / "sim", seed=SEED, refcat=False)
    sim = Simulator(cfg, seed=SEED)
    ptc = write_ptc_raws(sim, root / "sim" / "raw")
    repo = Repository.create(root / "repo")
    report = repo.ingest_raws([*res.all_raw_files, *ptc])
    assert not report.failed
    repo.register_collection(CALIB, "CALIBRATION")
    report = run_pipeline(repo, CP_YAML, inputs=[RAW, CALIB], output=CP_OUTPUT)
    assert report.ok, report.summary()
    certify_calibrations(repo, CP_OUTPUT, CALIB)
    return Night(root, repo, sim, cfg, {"cp": report})

"""Simulated detector frames with known signatures, and calibrations made from simulated
calibration exposures, shared by the ISR and cp tests (cached: built once per session)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from pachon.algorithms.cp import combine_frames
from pachon.algorithms.isr import IsrCalibs, IsrConfig, run_isr
from pachon.sim import SimConfig, Simulator

SEED = 11


def sim_config(**detector: Any) -> SimConfig:
    det = {"cosmic_ray_rate": 0.0, **detector}
    return SimConfig.from_dict({"detectors": [0], "survey": {"n_visits": 1, "bands": ["r"]},
                                "sky": {"satellite_probability": 0.0}, "detector": det})


@dataclass
class SimSetup:
    sim: Any
    detector: Any
    sig: Any
    frame: Any
    visit: Any
    # expected electrons of sky + sources (no brighter-fatter) times the flat normalisation
    truth: np.ndarray
    calibs: IsrCalibs
    flat_norm: float


def expose(sim: Any, det: Any, level: float, dark_time: float, k: int) -> list[np.ndarray]:
    sig = sim.signatures(det)
    expected = level * sig.illumination.astype(np.float64) if level else np.zeros(det.bbox.shape)
    raws, _ = sim.expose(expected, det, dark_time=dark_time, rng=np.random.default_rng([SEED, 99, k]),
                         cosmic_rays=False)
    return raws


def build_calibs(sim: Any, det: Any, *, n_bias: int = 4, n_dark: int = 3, n_flat: int = 4) -> IsrCalibs:
    """Combined bias (e-), dark (e-/s) and flat (mean 1) from simulated calibration exposures."""
    cfg = sim.config.detector
    sig = sim.signatures(det)
    base = IsrCalibs(crosstalk=sig.crosstalk, linearity=np.full((len(det.amplifiers), 1), cfg.nonlinearity))
    only = {k: False for k in ("do_bias", "do_dark", "do_flat", "do_brighter_fatter", "do_defects",
                               "do_interpolate")}
    biases = [run_isr(expose(sim, det, 0, 0, i), det, base, IsrConfig(**only)).image for i in range(n_bias)]
    bias, _, _ = combine_frames(biases)
    base.bias = bias
    only["do_bias"] = True
    darks = [run_isr(expose(sim, det, 0, 30.0, 10 + i), det, base, IsrConfig(**only)).image / 30.0
             for i in range(n_dark)]
    dark, _, _ = combine_frames(darks)
    base.dark = dark
    only["do_dark"] = True
    flats = [run_isr(expose(sim, det, 20000.0, 10.0, 20 + i), det, base, IsrConfig(**only),
                     exposure_time=10.0) for i in range(n_flat)]
    levels = [float(np.median(f.image)) for f in flats]
    flat, _, _ = combine_frames([f.image for f in flats], scales=levels)
    base.flat = flat / np.mean(flat)
    return base


@functools.lru_cache(maxsize=2)
def sim_setup(bf: bool = True) -> SimSetup:
    cfg = sim_config()
    sim = Simulator(cfg, seed=SEED)
    det = sim.detectors[0]
    sig = sim.signatures(det)
    visit = sim.visits[0]
    frame = sim.simulate_detector(visit, det)
    no_bf = Simulator(sim_config(brighter_fatter=0.0), seed=SEED)
    image, _, _ = no_bf.render(visit, det)
    calibs = build_calibs(sim, det)
    calibs.bf_kernel = np.array([[cfg.detector.brighter_fatter]])
    # the flat holds illumination x response; dividing by it leaves the mean of that product
    norm = float(np.mean(sig.flat * sig.illumination))
    calibs.defects = np.zeros((0, 4), dtype=int)
    return SimSetup(sim, det, sig, frame, visit, (image + frame.sky_level) * norm, calibs, norm)

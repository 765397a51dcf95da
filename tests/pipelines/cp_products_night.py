"""Dedicated calibration exposures of the simulated night for the crosstalk and BF products.

Separate from :mod:`night_helpers` (the shared night stays as it is): raws with bright blocks
(``crosstalk``), and, from the night's simulator with brighter-fatter on the collected charge
(``detector.bf_on_charge``, truth kernel :data:`BF_KERNEL`), flat pairs with two biases (for the
ptc covariances and ``bfk``) and star fields (``bfk`` exposures), ingested into their own RUN the
day after the ptc day, so no other test sees them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from night_helpers import SEED

from pachon.sim.charge_bf import area_coefficients, charge_bf_kernel
from pachon.sim.config import DetectorConfig
from pachon.sim.writer import RawMetadata, raw_header, write_raw

EXTRA_RAW = "PachonTestCam/raw/cp_products"
DAY = 20240401
#: the simulator's default brighter-fatter strength (the night itself is simulated without BF)
BF_TRUTH = DetectorConfig().brighter_fatter
BF_SIGMA = 0.6
#: truth kernel (sum BF_TRUTH) and area coefficients of the BF exposures
BF_KERNEL = charge_bf_kernel(BF_TRUTH, BF_SIGMA)
BF_AREA = area_coefficients(BF_KERNEL)
#: flat-pair levels (e-; two pairs each): a_00 mu stays below 0.25, as at 100k e- on LSSTCam
BF_LEVELS = (1000.0, 2000.0, 4000.0, 7000.0, 10000.0, 14000.0, 20000.0)
BF_SKY = 500.0


def crosstalk_scene(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Bright blocks (60000 e-) at random places: sources at different readout pixels per amplifier."""
    expected = np.zeros(shape)
    for x, y in rng.integers(0, shape[1] - 32, (60, 2)):
        expected[y : y + 24, x : x + 24] = 60000.0
    return expected


def star_field(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A grid of Gaussian stars (sigma 1.7 px, 1e4 .. 3e5 e-) on a sky (expected e-, before BF)."""
    yy, xx = np.mgrid[-10:11, -10:11]
    psf = np.exp(-0.5 * (xx**2 + yy**2) / 1.7**2)
    psf /= psf.sum()
    centres = np.arange(14, shape[0] - 14, 22)
    image = np.zeros(shape)
    fluxes = np.exp(rng.uniform(np.log(1e4), np.log(3e5), (centres.size, centres.size)))
    for i, y in enumerate(centres):
        for j, x in enumerate(centres):  # a few hundred stars, built once per test session
            image[y - 10 : y + 11, x - 10 : x + 11] += fluxes[i, j] * psf
    return image + BF_SKY


def bf_simulator(night_config: Any) -> Any:
    """The night's simulator (same signatures) with brighter-fatter on all collected charge."""
    from pachon.sim import SimConfig, Simulator

    cfg = night_config.to_dict()
    cfg["detector"].update(brighter_fatter=BF_TRUTH, bf_on_charge=True, bf_kernel_sigma=BF_SIGMA)
    return Simulator(SimConfig.from_dict(cfg), seed=SEED)


def write_cp_product_raws(sim: Any, raw_dir: Path, *, n_crosstalk: int = 4, n_bfk: int = 3,
                          bf_sim: Any = None) -> list[Path]:
    """Write the dedicated exposures (BF ones with ``bf_sim``); return their paths."""
    det = sim.detectors[0]
    rng = np.random.default_rng([SEED, 21])
    plan: list[tuple[str, Any, np.ndarray, float]] = [
        ("crosstalk", sim, crosstalk_scene(det.bbox.shape, rng), 1.0) for _ in range(n_crosstalk)]
    if bf_sim is not None:
        illum = bf_sim.signatures(det).illumination.astype(np.float64)
        plan += [("bias", bf_sim, np.zeros(det.bbox.shape), 0.0)] * 2
        plan += [("flat", bf_sim, level * illum, level / 2000.0) for level in BF_LEVELS for _ in range(4)]
        plan += [("bfk", bf_sim, star_field(det.bbox.shape, rng), 1.0) for _ in range(n_bfk)]
    paths = []
    for k, (kind, simulator, expected, t) in enumerate(plan):
        seq = 700 + k
        meta = RawMetadata(kind, DAY, seq, 60402.2 + k / 1440, t, t, band="r", seed=SEED)
        raws, _ = simulator.expose(expected, det, dark_time=t, rng=np.random.default_rng([SEED, 6, k]),
                                   cosmic_rays=False)
        path = raw_dir / f"PachonTestCam_O_{DAY}_{seq:06d}_{det.name}.fits"
        write_raw(path, sim.instrument, det, raws, raw_header(sim.instrument, det, meta))
        paths.append(path)
    return paths


GHOST_RAW = "PachonTestCam/raw/ghost"
GHOST_DAY = 20240402
#: the simulator's ghost: ring of outer radius 8 arcsec (0.2 arcsec/px, 0.01 mm/px), inner half of
#: it, centred on 1.03 x the star's focal-plane position, 1e-3 of the star's flux
GHOST_TRUTH = {"scale": 1.03, "radius_mm": 0.4, "inner_fraction": 0.5, "flux_fraction": 1e-3}


def write_ghost_raws(night_config: Any, raw_dir: Path, *, n_visits: int = 4) -> tuple[list[Path], list[Any]]:
    """Bright-star exposures (one star of mag ~13 per pointing, saturated, with its ghost).

    The night's own simulator configuration with four pointings and a bright star in each: the
    detector signatures (flat, bias, gains) are those of the night, so its certified
    calibrations apply.  Returns the paths and, per exposure, the simulator's ghost effects rows.
    """
    from pachon.sim import SimConfig, Simulator

    cfg = night_config.to_dict()
    cfg["survey"].update(n_visits=n_visits, n_fields=n_visits)
    cfg["sky"].update(n_bright_stars=1, bright_star_mag=13.0)
    sim = Simulator(SimConfig.from_dict(cfg), seed=SEED)
    det = sim.detectors[0]
    raw_dir.mkdir(parents=True, exist_ok=True)
    paths, effects = [], []
    for k, visit in enumerate(sim.visits):
        frame = sim.simulate_detector(visit, det)
        seq = 800 + k
        t = visit.exposure_time
        meta = RawMetadata("ghost", GHOST_DAY, seq, 60403.2 + k / 1440, t, t, band=visit.band, seed=SEED)
        path = raw_dir / f"PachonTestCam_O_{GHOST_DAY}_{seq:06d}_{det.name}.fits"
        write_raw(path, sim.instrument, det, frame.raws, raw_header(sim.instrument, det, meta))
        paths.append(path)
        effects.append([e for e in frame.effects if e["kind"] == "ghost"])
    return paths, effects

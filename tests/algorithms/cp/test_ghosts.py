"""The ghost model fitted from simulated bright-star exposures, against the simulator's ghosts."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from isr_sim_helpers import SEED

from pachon.algorithms.cp import fit_ghost_model, measure_ghost
from pachon.algorithms.isr import GhostModel, IsrCalibs, IsrConfig, run_isr
from pachon.algorithms.isr.ghosts import ghost_positions
from pachon.core.errors import ConfigError
from pachon.sim import SimConfig, Simulator

log = logging.getLogger(__name__)

SKY = 1000.0
#: deliberately wrong starting model: the fit must find the simulator's ring by itself
START = GhostModel(scale=1.0, radius_mm=0.3, inner_fraction=0.4, flux_fraction=5e-4)


def _config(ghost_fraction: float) -> SimConfig:
    return SimConfig.from_dict({
        "detectors": [0], "survey": {"n_visits": 2, "bands": ["r"]},
        "sky": {"satellite_probability": 0.0, "n_bright_stars": 1, "bright_star_mag": 11.0},
        "optics": {"ghost_fraction": ghost_fraction}, "detector": {"cosmic_ray_rate": 0.0},
    })


@pytest.fixture(scope="module")
def fitted():
    """Per visit: the rendered image with ghosts, the same without, and the ghost effects rows."""
    sim, no_ghost = Simulator(_config(1e-3), seed=SEED), Simulator(_config(0.0), seed=SEED)
    det = sim.detectors[0]
    rng = np.random.default_rng(4)
    measurements, ghosts, frames = [], [], []
    for visit in sim.visits:
        image, _, effects = sim.render(visit, det)
        stars_only, _, _ = no_ghost.render(visit, det)
        columns = sim.scene(visit).columns
        row = {int(s): k for k, s in enumerate(columns["id"])}
        # an exposure with sky and Poisson noise, the sky and the stars (PSF model) subtracted
        data = rng.poisson(image + SKY) - SKY - stars_only
        for e in (e for e in effects if e["kind"] == "ghost"):
            k = row[e["source_id"]]
            star = (float(columns["fx"][k]), float(columns["fy"][k]), float(columns["flux"][k]))
            m = measure_ghost(data, det, *star, initial=START, variance=image + SKY, bad=stars_only > 5e4)
            assert m is not None
            measurements.append(m)
            ghosts.append((e, star))
        frames.append((image, stars_only))
    assert ghosts, "the simulated bright stars should make ghosts on the detector"
    return sim, det, fit_ghost_model(measurements, det.pixel_size_mm), ghosts, frames


def test_fitted_model_predicts_the_simulated_ghosts(fitted):
    _, det, model, ghosts, _ = fitted
    log.info("fitted %s (simulator: scale 1.03, radius 0.4 mm, inner 0.5, fraction 1e-3)", model)
    assert model.scale == pytest.approx(1.03, abs=0.003)
    assert model.radius_mm == pytest.approx(8.0 / 20.0, rel=0.03)  # 8 arcsec at 20 arcsec/mm
    assert model.inner_fraction == pytest.approx(0.5, abs=0.05)
    assert model.flux_fraction == pytest.approx(1e-3, rel=0.1)
    for e, (fx, fy, flux) in ghosts:
        (gx, gy), = ghost_positions(det, model, np.array([fx]), np.array([fy]))
        assert np.hypot(gx - e["x0"], gy - e["y0"]) < 1.0
        assert model.flux_fraction * flux == pytest.approx(e["value"], rel=0.1)


def test_isr_ghost_mask_covers_the_simulated_ghost_pixels(fitted):
    sim, det, model, ghosts, frames = fitted
    image, stars_only = frames[0]
    raws, _ = sim.expose(image + SKY, det, dark_time=0.0, rng=np.random.default_rng(5), cosmic_rays=False)
    off = {k: False for k in ("do_crosstalk", "do_linearity", "do_bias", "do_dark", "do_flat",
                              "do_brighter_fatter", "do_defects", "do_interpolate")}
    stars = np.array([[fx, fy] for _, (fx, fy, _) in ghosts])
    calibs = IsrCalibs(ghost_model=model, bright_stars=stars)
    exp = run_isr(raws, det, calibs, IsrConfig(do_ghosts=True, **off))
    ghost_light = image - stars_only
    level = max(e["value"] for e, _ in ghosts) / (np.pi * 0.75 * (model.radius_mm / det.pixel_size_mm) ** 2)
    above = ghost_light > 0.1 * level
    masked = exp.mask.get("GHOST")
    coverage = (masked & above).sum() / above.sum()
    log.info("ghost mask: %.3f of %d ghost pixels covered, %d pixels masked", coverage, above.sum(),
             masked.sum())
    assert coverage >= 0.95
    assert masked.sum() < 2.0 * np.pi * (1.2 * model.radius_mm / det.pixel_size_mm) ** 2 * len(stars)


def test_fit_needs_measurements():
    with pytest.raises(ConfigError, match="at least one measured ghost"):
        fit_ghost_model([], 0.01)

"""The optical ghost model made by the cp pipeline from simulated bright-star exposures, certified,
and used by ISR to mask the ghosts of the saturated stars it finds, against the simulator's truth."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from cp_products_night import GHOST_DAY, GHOST_RAW, GHOST_TRUTH, write_ghost_raws
from night_helpers import CALIB

from pachon.pipe import run_pipeline
from pachon.pipelines.cp_certify import certify_calibrations

log = logging.getLogger(__name__)
DET0 = {"instrument": "PachonTestCam", "detector": 0}
GHOST_RUN = "cp/ghost"
#: the ghost products in a CALIBRATION collection of their own (searched before the night's), so
#: that they do not overlap the crosstalk certified by test_cp_products_pipeline.py
GHOST_CALIB = "PachonTestCam/calib/ghost"
#: a deliberately wrong starting model: the fit must find the simulator's ring by itself
CP_GHOST_YAML = """
tasks:
  cpGhostProc: pachon.pipelines.cp_ghost.CpGhostProcTask
  cpGhost:
    class: pachon.pipelines.cp_ghost.CpGhostTask
    config: {initial: {scale: 1.0, radius_mm: 0.3, inner_fraction: 0.4, flux_fraction: 5.0e-4}}
"""
ISR_GHOSTS = """
tasks:
  isr:
    class: pachon.pipelines.isr_task.IsrTask
    config: {use_ptc: true, raw_where: "exposure.observation_type = 'ghost'", isr: {do_ghosts: true}}
"""


@pytest.fixture(scope="module")
def ghost(night, tmp_path_factory):
    """Bright-star raws in their own run; the ghost model made, certified from their day on; ISR on them."""
    tmp = tmp_path_factory.mktemp("ghost")
    repo = night.repo
    paths, effects = write_ghost_raws(night.config, night.root / "sim" / "ghost")
    assert not repo.ingest_raws(paths, run=GHOST_RAW).failed
    # The saturated stars sit where four amplifiers meet: their crosstalk images (2e-4 of 90,000 e-)
    # land beside them.  The crosstalk product is made and tested in test_cp_products_pipeline.py
    # (within 4% of truth); here the simulator's matrix stands in for it, so this module runs alone.
    repo.register_collection(GHOST_CALIB, "CALIBRATION")
    truth_xt = night.sim.signatures(night.sim.detectors[0]).crosstalk
    xt = repo.put(truth_xt, "crosstalk", DET0, run="cp/ghost_xt")
    repo.certify(GHOST_CALIB, [xt], "2024-04-02T00:00:00", None)
    (tmp / "cp_ghost.yaml").write_text(CP_GHOST_YAML)
    report = run_pipeline(repo, tmp / "cp_ghost.yaml", inputs=[GHOST_RAW, GHOST_CALIB, CALIB],
                          output=GHOST_RUN)
    assert report.ok, report.summary()
    certify_calibrations(repo, GHOST_RUN, GHOST_CALIB, begin="2024-04-02T00:00:00")
    (tmp / "isr.yaml").write_text(ISR_GHOSTS)
    report = run_pipeline(repo, tmp / "isr.yaml", inputs=[GHOST_RAW, GHOST_CALIB, CALIB], output="isr/ghost",
                          where=f"exposure.day_obs = {GHOST_DAY}")
    assert report.ok, report.summary()
    return effects


def test_ghost_model_matches_the_simulator(night, ghost):
    model = night.repo.get("ghost", DET0, collections=[GHOST_CALIB], time="2024-04-02T06:00:00")
    errors = {k: model[k] - v for k, v in GHOST_TRUTH.items()}
    log.info("cp ghost from %d stars: %s; errors %s", model["n_stars"], model, errors)
    assert model["n_stars"] >= 4
    assert model["scale"] == pytest.approx(GHOST_TRUTH["scale"], abs=0.003)
    assert model["radius_mm"] == pytest.approx(GHOST_TRUTH["radius_mm"], rel=0.03)
    assert model["inner_fraction"] == pytest.approx(GHOST_TRUTH["inner_fraction"], abs=0.05)
    assert model["flux_fraction"] == pytest.approx(GHOST_TRUTH["flux_fraction"], rel=0.3)


def test_isr_masks_the_ghost_rings_of_the_stars_it_finds(night, ghost):
    refs = sorted(night.repo.query_datasets("post_isr", "isr/ghost"), key=lambda r: r.data_id["exposure"])
    assert len(refs) == len(ghost)
    radius = GHOST_TRUTH["radius_mm"] / night.sim.detectors[0].pixel_size_mm
    covered = total = false = 0
    for ref, rows in zip(refs, ghost, strict=True):
        exp = night.repo.get(ref)
        assert exp.metadata["ISR_GHOST"] is True
        masked = exp.mask.get("GHOST")
        yy, xx = np.indices(masked.shape)
        truth = np.zeros(masked.shape, bool)
        for e in rows:
            r = np.hypot(xx - e["x0"], yy - e["y0"])
            truth |= (r < radius) & (r > GHOST_TRUTH["inner_fraction"] * radius)
        covered += int((masked & truth).sum())
        total += int(truth.sum())
        false += int((masked & ~truth).sum())
    log.info("ISR ghost mask: %.4f of %d truth ghost pixels covered; %d masked pixels outside them "
             "(%.2f per truth pixel)", covered / total, total, false, false / total)
    assert total > 0
    assert covered / total >= 0.98
    assert false < 1.0 * total  # the margin of the ring only

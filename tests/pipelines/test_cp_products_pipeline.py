"""The crosstalk and brighter-fatter products of the cp pipeline on dedicated simulated exposures,
certified and applied by ISR."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from cp_products_night import (
    BF_AREA,
    BF_KERNEL,
    BF_TRUTH,
    DAY,
    EXTRA_RAW,
    bf_simulator,
    write_cp_product_raws,
)
from night_helpers import CALIB, CP_YAML

from pachon.pipe import run_pipeline
from pachon.pipelines.cp_certify import certify_calibrations

log = logging.getLogger(__name__)
DET0 = {"instrument": "PachonTestCam", "detector": 0}
XT_RUN, BFK_RUN, STARS_RUN = "cp/crosstalk", "cp/bfk", "cp/bfk_stars"
ISR_ON_STAR_FIELDS = """
tasks:
  isr:
    class: pachon.pipelines.isr_task.IsrTask
    config: {use_ptc: true, raw_where: "exposure.observation_type = 'bfk'"}
"""


@pytest.fixture(scope="module")
def products(night):
    """Ingest the dedicated raws into their own run; crosstalk certified, then bfk from the flat pairs
    (its ptc and linearity stay uncertified) and the star-size check (with the crosstalk)."""
    repo = night.repo
    paths = write_cp_product_raws(night.sim, night.root / "sim" / "cp_products",
                                  bf_sim=bf_simulator(night.config))
    report = repo.ingest_raws(paths, run=EXTRA_RAW)
    assert not report.failed
    reports = {}
    for name, out in (("crosstalk", XT_RUN), ("bfk", BFK_RUN), ("bfk_stars", STARS_RUN)):
        reports[name] = run_pipeline(repo, f"{CP_YAML}#{name}", inputs=[EXTRA_RAW, CALIB], output=out)
        assert reports[name].ok, reports[name].summary()
        if name == "crosstalk":
            # valid from the day of these exposures on, so the shared night's earlier science visits
            # (used by test_isr_pipeline.py, which expects no crosstalk/bfk) are unaffected
            certify_calibrations(repo, XT_RUN, CALIB, begin="2024-04-01T00:00:00")
    run = repo.get_chain(BFK_RUN)[0] if str(repo.collection_type(BFK_RUN)) == "CHAINED" else BFK_RUN
    repo.certify(CALIB, repo.query_datasets("bfk", run), "2024-04-01T00:00:00", None)
    return reports


def _calib(night, name):
    return night.repo.get(name, DET0, collections=[CALIB], time="2024-04-01T06:00:00")


def test_crosstalk_within_10_percent_of_truth(night, products):
    coeff = _calib(night, "crosstalk")
    truth = night.sim.signatures(night.sim.detectors[0]).crosstalk
    off = ~np.eye(len(truth), dtype=bool)
    rel = np.abs(coeff[off] - truth[off]) / truth[off]
    log.info("cp crosstalk: max relative error %.3f, median %.3f (truth %s)", rel.max(), np.median(rel),
             np.unique(truth[off]))
    assert coeff.shape == truth.shape and np.all(np.diag(coeff) == 0)
    assert rel.max() < 0.10


def test_bf_kernel_from_flat_covariances_matches_truth(night, products):
    from pachon.pipelines.cp_bfk import CpBfkConfig, kernel_from_ptc

    ptc = night.repo.query_datasets("ptc", night.repo.get_chain(BFK_RUN)[0])
    info = kernel_from_ptc(night.repo.get(ptc[0]), CpBfkConfig())[1]
    kernel = _calib(night, "bfk")
    c = BF_AREA.shape[0] // 2
    a, e = info["a"], info["a_err"]
    for i, j in ((0, 1), (1, 0), (1, 1)):
        log.info("cp bfk: a_%d%d %.3g +- %.2g /e- (truth %.3g)", i, j, a[i, j], e[i, j],
                 BF_AREA[c + i, c + j])
        assert abs(a[i, j] - BF_AREA[c + i, c + j]) < 3 * e[i, j]
    log.info("cp bfk: a_00 %.3g +- %.2g (truth %.3g), kernel sum %.3g +- %.2g (truth %.3g), "
             "K_00 %.3g (truth %.3g)",
             a[0, 0], e[0, 0], BF_AREA[c, c], kernel.sum(), info["sum_err"], BF_TRUTH, kernel[3, 3],
             BF_KERNEL.max())
    assert kernel.shape == (7, 7) and info["sum"] == pytest.approx(kernel.sum())
    assert abs(kernel.sum() - BF_TRUTH) < 3 * info["sum_err"] and info["sum_err"] < 0.5 * BF_TRUTH
    # the star-size check from the star fields: the strength of a delta kernel
    stars = night.repo.query_datasets("bfkStars", night.repo.get_chain(STARS_RUN)[0])
    strength = float(night.repo.get(stars[0]).sum())
    log.info("cp bfkStars: strength %.3g (truth %.3g)", strength, BF_TRUTH)
    assert strength == pytest.approx(BF_TRUTH, rel=0.3)
    # the proc frames used the crosstalk certified just before
    proc = night.repo.query_datasets("cpBfkProc", STARS_RUN)[0]
    assert "crosstalk" in {r.dataset_type for r in night.repo.provenance(proc).inputs}


def test_isr_applies_every_certified_product(night, products, tmp_path):
    from pachon.algorithms.cp import star_sizes
    from pachon.algorithms.cp.brighter_fatter import size_flux_slope
    from pachon.pipelines.cp_bfk import CpBfkStarsConfig, star_stamps

    path = tmp_path / "isr_bfk.yaml"
    path.write_text(ISR_ON_STAR_FIELDS)
    report = run_pipeline(night.repo, path, inputs=[EXTRA_RAW, CALIB], output="isr/cp_products",
                          where=f"exposure.day_obs = {DAY}")
    assert report.ok, report.summary()
    refs = night.repo.query_datasets("post_isr", "isr/cp_products")
    assert refs
    exp = night.repo.get(refs[0])
    for name in ("BIAS", "DARK", "FLAT", "CROSSTALK", "LINEARITY", "BFK", "DEFECTS"):
        assert exp.metadata[f"ISR_{name}"] is True, name
    # the brighter-fatter correction removes the growth of star size with flux
    procs = [night.repo.get(r) for r in night.repo.query_datasets("cpBfkProc", STARS_RUN)]
    cfg = CpBfkStarsConfig()
    slopes = {}
    for label, frames in (("before", procs), ("after", [night.repo.get(r) for r in refs])):
        stamps, fluxes = zip(*(star_stamps(e.image, np.zeros(e.image.shape, bool), cfg) for e in frames),
                             strict=True)
        st, fl = np.concatenate(stamps), np.concatenate(fluxes)
        slopes[label] = size_flux_slope(star_sizes(st), fl)
    log.info("size-flux slope before %.3g +- %.2g, after %.3g +- %.2g", *slopes["before"], *slopes["after"])
    assert slopes["before"][0] > 4 * slopes["before"][1]
    assert abs(slopes["after"][0]) < 3 * slopes["after"][1]

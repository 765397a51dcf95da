"""The crosstalk and brighter-fatter products of the cp pipeline on dedicated simulated exposures,
certified and applied by ISR."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from cp_products_night import BF_TRUTH, DAY, EXTRA_RAW, write_cp_product_raws
from night_helpers import CALIB, CP_YAML

from pachon.pipe import run_pipeline
from pachon.pipelines.cp_certify import certify_calibrations

log = logging.getLogger(__name__)
DET0 = {"instrument": "PachonTestCam", "detector": 0}
XT_RUN, BFK_RUN = "cp/crosstalk", "cp/bfk"
ISR_ON_STAR_FIELDS = """
tasks:
  isr:
    class: pachon.pipelines.isr_task.IsrTask
    config: {use_ptc: true, raw_where: "exposure.observation_type = 'bfk'"}
"""


@pytest.fixture(scope="module")
def products(night):
    """Ingest the dedicated raws into their own run; crosstalk then bfk (with the crosstalk) certified."""
    repo = night.repo
    paths = write_cp_product_raws(night.sim, night.root / "sim" / "cp_products")
    report = repo.ingest_raws(paths, run=EXTRA_RAW)
    assert not report.failed
    reports = {}
    for name, out in (("crosstalk", XT_RUN), ("bfk", BFK_RUN)):
        reports[name] = run_pipeline(repo, f"{CP_YAML}#{name}", inputs=[EXTRA_RAW, CALIB], output=out)
        assert reports[name].ok, reports[name].summary()
        # valid from the day of these exposures on, so the shared night's earlier science visits
        # (used by test_isr_pipeline.py, which expects no crosstalk/bfk) are unaffected
        certify_calibrations(repo, out, CALIB, begin="2024-04-01T00:00:00")
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


def test_bf_strength_near_truth(night, products):
    kernel = _calib(night, "bfk")
    strength = float(kernel.sum())
    log.info("cp bfk: strength %.3g (truth %.3g), kernel %s", strength, BF_TRUTH, kernel.shape)
    assert strength == pytest.approx(BF_TRUTH, rel=0.25)
    # the proc frames used the crosstalk certified just before
    proc = night.repo.query_datasets("cpBfkProc", BFK_RUN)[0]
    assert "crosstalk" in {r.dataset_type for r in night.repo.provenance(proc).inputs}


def test_isr_applies_every_certified_product(night, products, tmp_path):
    from pachon.algorithms.cp import star_sizes
    from pachon.algorithms.cp.brighter_fatter import size_flux_slope
    from pachon.pipelines.cp_bfk import CpBfkConfig, star_stamps

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
    procs = [night.repo.get(r) for r in night.repo.query_datasets("cpBfkProc", BFK_RUN)]
    cfg = CpBfkConfig()
    slopes = {}
    for label, frames in (("before", procs), ("after", [night.repo.get(r) for r in refs])):
        stamps, fluxes = zip(*(star_stamps(e.image, np.zeros(e.image.shape, bool), cfg) for e in frames),
                             strict=True)
        st, fl = np.concatenate(stamps), np.concatenate(fluxes)
        slopes[label] = size_flux_slope(star_sizes(st), fl)
    log.info("size-flux slope before %.3g +- %.2g, after %.3g +- %.2g", *slopes["before"], *slopes["after"])
    assert slopes["before"][0] > 4 * slopes["before"][1]
    assert abs(slopes["after"][0]) < 3 * slopes["after"][1]

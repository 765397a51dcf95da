"""The cp pipeline on a simulated night, in one run: combined bias/dark/flat, PTC gains and read noise,
defects, certification in place; subsets with certified calibrations."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from night_helpers import CALIB, CP_OUTPUT, CP_YAML, RAW

from pachon.core.errors import DatasetNotFoundError
from pachon.pipe import run_pipeline
from pachon.pipelines.cp_certify import certify_calibrations

log = logging.getLogger(__name__)
DET0 = {"instrument": "PachonTestCam", "detector": 0}


def _calib(night, name, **extra):
    return night.repo.get(name, {**DET0, **extra}, collections=[CALIB], time="2024-03-31T00:00:00")


def test_one_run_per_input_filters_and_certified_in_place(night):
    report = night.reports["cp"]
    log.info("cp run: %s", report.summary())
    counts = {lb: c["succeeded"] for lb, c in report.counts().items()}
    # per-input filters: 5 biases (3 of the night, 2 of the ptc day), 3 darks, 18 flats (4 + 14)
    assert counts == {"cpBiasProc": 5, "cpPtc": 1, "cpBias": 1, "cpDarkProc": 3, "cpDark": 1,
                      "cpFlatProc": 18, "cpFlat": 1, "cpDefects": 1,
                      # the night has no crosstalk, star-field (bfk) or bright-star (ghost) exposures,
                      # and its flats no brighter-fatter: no kernel (cpBfk ends with no work)
                      "cpCrosstalk": 0, "cpBfkProc": 0, "cpBfk": 0, "cpBfkStars": 0, "cpGhostProc": 0,
                      "cpGhost": 0}
    assert report.counts()["cpBfk"]["no_work"] == 1
    for name in ("bias", "dark", "flat", "ptc", "linearity", "defects"):
        assert night.repo.get_dataset_type(name).is_calibration
        made = night.repo.query_datasets(name, night.repo.get_chain(CP_OUTPUT)[0])
        assert [r.id for r in made] == [r.id for r in night.repo.query_datasets(name, CALIB)], name
    # the dark and flat ISR used the bias made in the same run
    proc = night.repo.query_datasets("cpFlatProc", CP_OUTPUT)[0]
    used = {r.dataset_type: r.id for r in night.repo.provenance(proc).inputs}
    assert used["bias"] == night.repo.query_datasets("bias", CALIB)[0].id and "dark" in used


def test_products_match_truth(night):
    bias, dark = _calib(night, "bias"), _calib(night, "dark")
    flat = _calib(night, "flat", physical_filter="r_sim")
    assert (bias.metadata["NCOMBINE"], dark.metadata["NCOMBINE"], flat.metadata["NCOMBINE"]) == (5, 3, 18)
    assert bias.metadata["OBSTYPE"] == "bias" and flat.metadata["FILTER"] == "r_sim"
    assert np.mean(flat.image) == pytest.approx(1.0, abs=1e-4)
    truth = night.sim.signatures(night.sim.detectors[0])
    # the combined flat follows illumination x pixel response
    model = truth.flat * truth.illumination
    assert np.corrcoef(flat.image.ravel(), (model / model.mean()).ravel())[0, 1] > 0.95
    # dark current: median equals the configured rate (e-/s), hot pixels stand out
    assert np.median(dark.image) == pytest.approx(night.config.detector.dark_current, abs=0.01)
    assert np.sum(dark.image > 20) >= 1


def test_ptc_gain_and_read_noise_within_2_percent(night):
    ptc = _calib(night, "ptc")
    amps = pq.read_table(night.root / "sim" / "truth" / "amplifiers.parquet").to_pydict()
    for i, name in enumerate(ptc["amplifiers"]):
        k = amps["amplifier"].index(name)
        log.info("cp ptc %s: gain %.4f (truth %.4f), read noise %.3f e- (truth %.3f)", name, ptc["gain"][i],
                 amps["gain"][k], ptc["read_noise"][i], amps["read_noise"][k])
        assert ptc["gain"][i] == pytest.approx(amps["gain"][k], rel=0.02)
        assert ptc["read_noise"][i] == pytest.approx(amps["read_noise"][k], rel=0.02)


def test_linearity_from_ptc_ramp(night):
    lin, ptc = _calib(night, "linearity"), _calib(night, "ptc")
    truth = night.config.detector.nonlinearity
    err = np.asarray(ptc["linearity_error"])[:, 0]
    log.info("cp linearity c2: %s +- %s (truth %g)", lin.ravel(), err, truth)
    assert lin.shape == (4, 1)
    np.testing.assert_allclose(lin[:, 0], truth, rtol=0.05)
    assert np.all(np.abs(lin[:, 0] - truth) < np.maximum(3 * err, 0.01 * abs(truth)))


def test_linearity_from_a_32k_ramp_within_noise(night):
    """The realistic ramp (flat pairs to 32,000 e-, not 64,000): the ptc subset on those raws."""
    report = run_pipeline(night.repo, f"{CP_YAML}#ptc", inputs=[RAW], output="cp/ptc32k",
                          where="exposure.day_obs = 20240331 AND exposure.exposure_time <= 16")
    assert report.ok, report.summary()
    ref = night.repo.query_datasets("ptc", night.repo.get_chain("cp/ptc32k")[0])[0]
    ptc = night.repo.get(ref)
    assert max(ptc["exposure_times"]) == 16.0
    lin = night.repo.get(night.repo.query_datasets("linearity", ref.run)[0])[:, 0]
    err = np.asarray(ptc["linearity_error"])[:, 0]
    truth = night.config.detector.nonlinearity
    log.info("cp linearity (32k ramp) c2: %s +- %s (truth %g), offsets %s e-", lin, err, truth,
             np.round(ptc["linearity_offset"], 2))
    np.testing.assert_allclose(lin, truth, rtol=0.05)
    assert np.all(np.abs(lin - truth) < np.maximum(3 * err, 0.01 * abs(truth)))


def test_defects_cover_hot_pixels_and_dead_columns(night):
    from pachon.algorithms.isr.defects import defects_to_mask

    boxes = _calib(night, "defects")
    truth = night.sim.signatures(night.sim.detectors[0])
    mask = defects_to_mask(boxes, truth.flat.shape)
    hot, dead = truth.dark > 20 * night.config.detector.dark_current, truth.flat < 0.5
    log.info("cp defects: %d boxes, %d pixels; truth: %d hot, %d dead", len(boxes), mask.sum(), hot.sum(),
             dead.sum())
    assert hot.any() and dead.any()
    assert mask[hot].all() and mask[dead].mean() > 0.95
    assert mask.mean() < 0.02


def test_certify_is_idempotent_and_cli(night):
    from pachon.cli.main import cli

    again = certify_calibrations(night.repo, CP_OUTPUT, CALIB)
    assert sorted(r.id for r in again) == sorted(r.id for name in {r.dataset_type for r in again}
                                                 for r in night.repo.query_datasets(name, CALIB))
    assert len(again) == 6
    result = CliRunner().invoke(cli, ["cp", "certify", str(night.repo.root), CP_OUTPUT, CALIB])
    assert result.exit_code == 0, result.output
    assert "certified 6 calibrations" in result.output
    with pytest.raises(DatasetNotFoundError, match="no calibration products .* 'PachonTestCam/raw/all'"):
        certify_calibrations(night.repo, RAW, CALIB)


def test_subsets_use_certified_calibrations(night):
    repo = night.repo
    report = run_pipeline(repo, f"{CP_YAML}#dark", inputs=[RAW, CALIB], output="cp/dark",
                          where="exposure.day_obs = 20240330")
    assert report.ok, report.summary()
    proc = repo.query_datasets("cpDarkProc", "cp/dark")[0]
    assert {r.id for r in repo.provenance(proc).inputs if r.dataset_type == "bias"} == \
        {repo.query_datasets("bias", CALIB)[0].id}
    assert repo.get(repo.query_datasets("dark", "cp/dark")[0]).metadata["NCOMBINE"] == 3
    # a per-detector task finds its calibrations with time="any": the same defects as in the one run
    report = run_pipeline(repo, f"{CP_YAML}#defects", inputs=[CALIB], output="cp/defects")
    assert report.ok, report.summary()
    np.testing.assert_array_equal(repo.get(repo.query_datasets("defects", "cp/defects")[0]),
                                  _calib(night, "defects"))


MIXED_YAML = """
tasks:
  cpBiasProc:
    class: pachon.pipelines.cp_tasks.CpBiasProcTask
    config: {raw_where: "exposure.observation_type IN ('bias', 'flat')"}
  cpBias: pachon.pipelines.cp_tasks.CpBiasTask
"""


def test_bias_refuses_mixed_frames(night, tmp_path):
    path = tmp_path / "mixed.yaml"
    path.write_text(MIXED_YAML)
    report = run_pipeline(night.repo, path, inputs=[RAW], output="cp/mixed",
                          where="exposure.day_obs = 20240330")
    assert not report.ok
    assert any("not 'bias'" in (f.error or "") for f in report.failures())
    assert not night.repo.query_datasets("bias", "cp/mixed")

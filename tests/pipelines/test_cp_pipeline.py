"""The cp pipeline on a simulated night: combined bias/dark/flat, PTC gains and read noise, certification."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from night_helpers import CALIB

from pachon.core.errors import DatasetNotFoundError
from pachon.pipelines.cp_certify import certify_calibrations

log = logging.getLogger(__name__)
DET0 = {"instrument": "PachonTestCam", "detector": 0}


def _calib(night, name, **extra):
    return night.repo.get(name, {**DET0, **extra}, collections=[CALIB], time="2024-03-31T00:00:00")


def test_products_certified_with_the_right_inputs(night):
    counts = {s: r.summary() for s, r in night.reports.items()}
    log.info("cp runs: %s", counts)
    bias, dark = _calib(night, "bias"), _calib(night, "dark")
    flat = _calib(night, "flat", physical_filter="r_sim")
    # where selected exactly the frames of each type (3 biases, 3 darks, 4 flats of the night)
    assert (bias.metadata["NCOMBINE"], dark.metadata["NCOMBINE"], flat.metadata["NCOMBINE"]) == (3, 3, 4)
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
    lin = _calib(night, "linearity")
    log.info("cp linearity c2: %s (truth %g)", lin.ravel(), night.config.detector.nonlinearity)
    assert lin.shape == (4, 1)
    np.testing.assert_allclose(lin[:, 0], night.config.detector.nonlinearity, rtol=0.25)


def test_certify_is_idempotent_and_cli(night):
    from pachon.cli.main import cli

    again = certify_calibrations(night.repo, "cp/bias", CALIB)
    assert [r.id for r in again] == [r.id for r in night.repo.query_datasets("bias", CALIB)]
    result = CliRunner().invoke(cli, ["cp", "certify", str(night.repo.root), "cp/dark", CALIB])
    assert result.exit_code == 0, result.output
    assert "certified 1 calibrations" in result.output
    with pytest.raises(DatasetNotFoundError, match="no calibration products .* 'PachonTestCam/raw/all'"):
        certify_calibrations(night.repo, "PachonTestCam/raw/all", CALIB)


def test_bias_run_refuses_mixed_frames(night):
    from pachon.pipe import run_pipeline

    report = run_pipeline(night.repo, "src/pachon/pipelines/cp.yaml#bias", inputs=["PachonTestCam/raw/all"],
                          output="cp/mixed", where="exposure.day_obs = 20240330 AND "
                                                   "exposure.observation_type IN ('bias', 'flat')")
    assert not report.ok
    assert any("not 'bias'" in (f.error or "") for f in report.failures())
    assert not night.repo.query_datasets("cpBias", "cp/mixed")

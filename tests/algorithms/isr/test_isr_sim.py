"""ISR on simulated raws with known signatures: the result equals the truth sky within noise."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from isr_sim_helpers import sim_setup
from scipy.ndimage import binary_dilation

from pachon.algorithms.isr import IsrConfig, run_isr
from pachon.core.errors import ConfigError, FormatError


@pytest.fixture(scope="module")
def setup():
    return sim_setup()


@pytest.fixture(scope="module")
def result(setup):
    steps: dict = {}
    exp = run_isr(setup.frame.raws, setup.detector, setup.calibs, IsrConfig(),
                  exposure_time=setup.visit.exposure_time, steps=steps, data_id={"exposure": 1})
    good = ~binary_dilation(exp.mask.any("SAT", "BAD", "SUSPECT"), iterations=3)
    return exp, steps, good


def test_residual_per_step(setup, result):
    exp, steps, good = result
    stats = {k: ((v - setup.truth)[good].mean(), (v - setup.truth)[good].std()) for k, v in steps.items()}
    # after overscan the image is in ADU and not flat-fielded: far from the truth
    assert stats["overscan"][0] < -100
    # in electrons, bias and dark removed: mean within 2 e-, but not flat-fielded yet
    assert abs(stats["dark"][0]) < 2.0 and stats["dark"][1] > 29.0
    # flat-fielded: mean residual ~0, RMS equal to the expected photon + read noise
    expected = np.sqrt(np.median(setup.truth) + np.mean([a.read_noise**2 for a in setup.detector.amplifiers]))
    mean, rms = stats["interpolate"]
    assert abs(mean) < 0.5
    assert rms == pytest.approx(expected, rel=0.05)
    chi = ((exp.image - setup.truth) / np.sqrt(exp.variance))[good]
    assert abs(chi.mean()) < 0.03
    assert 0.97 < chi.std() < 1.06


def test_saturation_flagged(setup, result):
    exp, _, _ = result
    bleed = [e for e in setup.frame.effects if e["kind"] == "bleed"]
    assert bleed, "the simulated bright star should saturate"
    sat = exp.mask.get("SAT")
    for e in bleed:
        assert sat[(e["y0"] + e["y1"]) // 2, e["x0"]]
    assert exp.mask.get("INTRP")[sat].all()


def test_missing_amplifier_names_data_id(setup):
    from astropy.io import fits

    hdul = fits.HDUList([fits.PrimaryHDU()] + [fits.ImageHDU(r) for r in setup.frame.raws[:3]])
    with pytest.raises(FormatError, match=r"raw \{'exposure': 7\}.*amplifier C11"):
        run_isr(hdul, setup.detector, setup.calibs, IsrConfig(), data_id={"exposure": 7})


def test_wrong_detector_or_shape_calibration(setup):
    from pachon.core.exposure import Exposure

    bias = Exposure(np.zeros(setup.detector.bbox.shape, np.float32))
    bias.metadata["DETECTOR"] = 3
    calibs = dataclasses.replace(setup.calibs, bias=bias)
    with pytest.raises(ConfigError, match=r"raw \{'exposure': 7\}: the bias calibration is for detector 3"):
        run_isr(setup.frame.raws, setup.detector, calibs, IsrConfig(), data_id={"exposure": 7})
    calibs = dataclasses.replace(setup.calibs, flat=np.ones((100, 100)))
    with pytest.raises(ConfigError, match=r"flat calibration has shape \(100, 100\)"):
        run_isr(setup.frame.raws, setup.detector, calibs, IsrConfig(), data_id={"exposure": 7})


def test_nan_raw_and_nan_calibration(setup):
    raws = [r.astype(float) for r in setup.frame.raws]
    raws[2][10, 10] = np.nan
    with pytest.raises(FormatError, match=r"raw \{'exposure': 7\}: amplifier C10 holds 1 NaN"):
        run_isr(raws, setup.detector, setup.calibs, IsrConfig(), data_id={"exposure": 7})
    dark = setup.calibs.dark.copy()
    dark[5, 5] = np.nan
    with pytest.raises(ConfigError, match="dark calibration holds 1 NaN"):
        run_isr(setup.frame.raws, setup.detector, dataclasses.replace(setup.calibs, dark=dark), IsrConfig())


def test_missing_calibration_is_an_error_unless_skipped(setup):
    calibs = dataclasses.replace(setup.calibs, flat=None)
    with pytest.raises(ConfigError, match="do_flat is on but no flat"):
        run_isr(setup.frame.raws, setup.detector, calibs, IsrConfig())
    exp = run_isr(setup.frame.raws, setup.detector, calibs, IsrConfig(skip_missing_calibs=True))
    assert exp.image.shape == setup.detector.bbox.shape

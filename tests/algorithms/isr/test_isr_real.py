"""ISR on real frames: SAAO 1.0 m overscan/trim from header keywords; Calar Alto CAFOS
bias + dome flat + science (flatness of the background before and after)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from pachon.algorithms.cp import combine_frames
from pachon.algorithms.isr import IsrCalibs, IsrConfig, run_isr
from pachon.algorithms.isr.assemble import amplifier_from_header
from pachon.algorithms.isr.quality import background_flatness
from pachon.instruments import get_instrument

log = logging.getLogger(__name__)
_BASIC = {k: False for k in ("do_crosstalk", "do_linearity", "do_dark", "do_brighter_fatter", "do_defects")}


def test_saao_overscan_and_trim_from_keywords(shared_data):
    import dataclasses

    from astropy.io import fits

    path = shared_data / "isr" / "saao-overscan" / "a8280271.fits"
    with fits.open(path) as hdul:
        header, raw = hdul[0].header, hdul[0].data.astype(np.float64)
    det = get_instrument("SAAO-1m").detectors[0]
    amp = amplifier_from_header(header, det.amplifiers[0], filename=path.name)
    assert amp.raw_data_bbox.to_fits_section() == "[17:528,1:520]"
    assert amp.raw_serial_overscan_bbox.to_fits_section() == "[4:13,1:520]"
    det = dataclasses.replace(det, amplifiers=(amp,), bbox=amp.bbox)
    cfg = IsrConfig(do_bias=False, do_flat=False, do_gain=False, do_interpolate=False, **_BASIC)
    exp = run_isr(raw, det, IsrCalibs(), cfg, data_id={"file": path.name})
    assert exp.image.shape == (520, 512)
    from pachon.algorithms.isr.overscan import subtract_overscan

    corrected, stats = subtract_overscan(raw, amp, cfg.overscan)
    overscan_after = corrected[:, 3:13]
    log.info("SAAO: overscan level %.1f ADU, after subtraction median %.3f, noise %.2f ADU",
             stats["overscan_level"], np.median(overscan_after), stats["overscan_noise"])
    assert stats["overscan_level"] == pytest.approx(np.median(raw[:, 3:13]), abs=2)
    assert abs(np.median(overscan_after)) < 0.5
    assert np.median(exp.image) == pytest.approx(np.median(raw[:, 16:528]) - stats["overscan_level"], abs=2)


def _caha(shared_data, pattern):
    from astropy.io import fits

    out = []
    for p in sorted((shared_data / "isr" / "caha-cafos-ngc2420").glob(pattern)):
        with fits.open(p) as hdul:
            out.append(hdul[0].data.astype(np.float64))
    return out


@pytest.mark.parametrize("band", ["B", "V"])
def test_caha_science_is_flat_after_isr(shared_data, band):
    det = get_instrument("CAHA-CAFOS").detectors[0]
    only_bias = IsrConfig(do_overscan=False, do_bias=False, do_flat=False, **_BASIC)
    biases = [run_isr(b, det, IsrCalibs(), only_bias).image for b in _caha(shared_data, "calib_bias_*")]
    bias, _, _ = combine_frames(biases)
    calibs = IsrCalibs(bias=bias)
    flats = [run_isr(f, det, calibs, IsrConfig(do_overscan=False, do_flat=False, **_BASIC)).image
             for f in _caha(shared_data, f"calib_flat_{band}_*")]
    flat, _, _ = combine_frames(flats, scales=[np.median(f) for f in flats], variances=[
        np.maximum(f, 0) + 7.4**2 for f in flats])
    calibs.flat = flat / np.median(flat)
    science = _caha(shared_data, f"science_NGC2420_{band}_*")[-1]
    exp = run_isr(science, det, calibs, IsrConfig(do_overscan=False, **_BASIC))
    before = background_flatness(science - np.median(bias) / det.amplifiers[0].gain)
    after = background_flatness(exp.image, mask=exp.mask.any("BAD", "SAT"))
    log.info("CAHA %s: background flatness %.4f before, %.4f after ISR", band, before, after)
    # dome flats remove the vignetting and pixel response (4-5% -> 1.3-1.9%); what remains is
    # sky structure a dome flat cannot model (scattered light, the cluster's halo)
    assert after < 0.6 * before
    assert after < 0.025

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from astropy.io import fits

from pachon.core.errors import ConfigError
from pachon.core.photocalib import PhotoCalib


def test_to_njy_propagates_errors_analytically():
    calib = PhotoCalib(2.0, 0.1)
    flux, err = calib.to_njy(100.0, 5.0)
    assert isinstance(flux, float) and flux == 200.0
    # sqrt((5 * 2)^2 + (100 * 0.1)^2) = sqrt(200)
    assert err == pytest.approx(math.sqrt(200.0), rel=1e-15)
    flux, err = calib.to_njy(np.array([10.0, -4.0]))
    np.testing.assert_allclose(flux, [20.0, -8.0])
    np.testing.assert_allclose(err, [1.0, 0.4])
    assert calib.to_counts(200.0) == 100.0


def test_ab_magnitudes():
    c = 0.0631
    calib = PhotoCalib(c)
    assert calib.zero_point == pytest.approx(31.4 - 2.5 * math.log10(c), abs=1e-12)
    mag, mag_err = calib.to_ab_mag(1.0)
    assert mag == pytest.approx(calib.zero_point, abs=1e-12) and mag_err == 0.0
    # 3631 Jy is AB magnitude 0 (to the rounding of the 48.60 definition), 1 nJy is 31.4
    assert PhotoCalib(3631e9).to_ab_mag(1.0)[0] == pytest.approx(0.0, abs=1e-3)
    assert PhotoCalib(1.0).to_ab_mag(1.0)[0] == 31.4
    # a 10% flux error and 1% calibration error
    calib = PhotoCalib(1.0, 0.01)
    mag, mag_err = calib.to_ab_mag(1000.0, 100.0)
    assert mag == pytest.approx(31.4 - 7.5, abs=1e-12)
    assert mag_err == pytest.approx(2.5 / math.log(10) * math.hypot(0.1, 0.01), rel=1e-12)
    mags, errs = calib.to_ab_mag(np.array([1.0, 0.0, -5.0]))
    assert mags[0] == pytest.approx(31.4) and np.isnan(mags[1:]).all() and np.isnan(errs[1:]).all()


def test_from_zero_point_inverts_zero_point():
    calib = PhotoCalib.from_zero_point(27.0, 0.02)
    assert calib.zero_point == pytest.approx(27.0, abs=1e-12)
    assert calib.to_ab_mag(1.0)[1] == pytest.approx(0.02, rel=1e-12)


def test_invalid_calibrations():
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match="calibration_mean"):
            PhotoCalib(bad)
    with pytest.raises(ConfigError, match="calibration_err"):
        PhotoCalib(1.0, -0.1)


def test_fits_round_trip_is_exact():
    calib = PhotoCalib(0.1 + 0.2, 1.0 / 3.0)
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), calib.to_hdu()]).writeto(buf)
    buf.seek(0)
    with fits.open(buf) as hdul:
        assert PhotoCalib.from_hdu(hdul["PHOTOCALIB"]) == calib

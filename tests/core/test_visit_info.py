from __future__ import annotations

import io

import pytest
from astropy.io import fits

from pachon.core.errors import ConfigError, FormatError
from pachon.core.visit_info import VISIT_INFO_KEYS, VisitInfo

FULL = VisitInfo(
    exposure_time=30.0,
    dark_time=31.25,
    mjd_tai_mid=60512.123456789012,
    physical_filter="r_57",
    band="r",
    airmass=1.2345678901234,
    boresight_ra=150.1234567890123,
    boresight_dec=-30.987654321,
    rotation_angle=271.5,
    instrument="LSSTCam",
    exposure_id=2024071500123,
    visit_id=2024071500123,
    detector=94,
    observatory=(-70.749417, -30.244639, 2663.0),
)


def test_header_round_trip_through_a_file():
    header = FULL.to_header()
    assert set(header) <= VISIT_INFO_KEYS
    buf = io.BytesIO()
    fits.PrimaryHDU(header=header).writeto(buf)
    buf.seek(0)
    with fits.open(buf) as hdul:
        assert VisitInfo.from_header(hdul[0].header) == FULL


def test_unknown_fields_stay_none():
    info = VisitInfo(exposure_time=15.0, band="g")
    header = info.to_header()
    assert set(header) == {"VIEXPT", "VIBAND"}
    back = VisitInfo.from_header(header)
    assert back == info and back.airmass is None and back.observatory is None
    assert VisitInfo.from_header({}) == VisitInfo()


def test_validation_and_replace():
    with pytest.raises(ConfigError, match="exposure_time"):
        VisitInfo(exposure_time=-1.0)
    with pytest.raises(ConfigError, match="boresight_dec"):
        VisitInfo(boresight_dec=91.0)
    with pytest.raises(ConfigError, match="airmass"):
        VisitInfo(airmass=0.5)
    with pytest.raises(ConfigError, match="detector must be an integer"):
        VisitInfo(detector=1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="observatory"):
        VisitInfo(observatory=(1.0, 2.0))  # type: ignore[arg-type]
    assert VisitInfo(detector="12").detector == 12  # type: ignore[arg-type]
    moved = FULL.replace(airmass=1.5)
    assert moved.airmass == 1.5 and moved.band == "r" and FULL.airmass != 1.5


def test_bad_header_names_the_source():
    with pytest.raises(FormatError, match="raw.fits: invalid visit info"):
        VisitInfo.from_header({"VIEXPT": -3.0}, name="raw.fits")
    with pytest.raises(FormatError, match="raw.fits: observatory keys"):
        VisitInfo.from_header({"VIOBSLON": 1.0}, name="raw.fits")

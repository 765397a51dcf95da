from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits

from pachon.core.errors import ConfigError, FormatError
from pachon.core.exposure import Exposure
from pachon.core.exposure_fits import read_exposure_bbox
from pachon.core.geom import Box
from pachon.core.mask import Mask
from pachon.core.photocalib import PhotoCalib
from pachon.core.psf import GaussianPsf, ImagePsf
from pachon.core.visit_info import VisitInfo
from pachon.core.wcs import make_tan_wcs, shift_wcs, wcs_from_header, wcs_to_header

SIP = {
    "a": np.array([[0, 0, 2e-6, 1e-9], [0, -3e-6, 4e-10, 0], [1.5e-6, 2e-10, 0, 0], [-7e-10, 0, 0, 0]]),
    "b": np.array([[0, 0, -1e-6, 3e-10], [0, 2.5e-6, 0, 0], [-2e-6, 5e-10, 0, 0], [1e-9, 0, 0, 0]]),
}


def _sip_wcs():
    return make_tan_wcs(53.123456789, -27.987654321, 0.2, 17.0, (1000.5, 980.25), sip=SIP)


def _points(box: Box, n: int = 500, seed: int = 3):
    rng = np.random.default_rng(seed)
    return rng.uniform(box.x0 - 0.5, box.x1 - 0.5, n), rng.uniform(box.y0 - 0.5, box.y1 - 0.5, n)


@pytest.fixture
def full_exposure() -> Exposure:
    rng = np.random.default_rng(42)
    shape = (96, 128)
    image = rng.normal(1000.0, 30.0, shape).astype(np.float32)
    image[3, 4] = np.nan
    mask = Mask(rng.integers(0, 2**32, shape, dtype=np.uint64).astype(np.uint32))
    mask.add_plane("FAKE_SOURCE")
    variance = rng.uniform(800.0, 1200.0, shape).astype(np.float32)
    metadata = fits.Header()
    metadata["OBSERVER"] = ("Somebody", "who observed")
    metadata["GAIN"] = 1.7
    metadata["EXPTIME"] = 30.0  # an instrument card with the same meaning as a visit info field
    metadata["LONGVAL"] = "a long string " * 12
    metadata["HISTORY"] = "step one"
    metadata["HISTORY"] = "step two"
    metadata["HIERARCH ESO DET CHIP NAME"] = "CCD-7"
    return Exposure(
        image,
        mask,
        variance,
        wcs=_sip_wcs(),
        psf=GaussianPsf(1.8),
        photo_calib=PhotoCalib(0.0573, 0.0011),
        visit_info=VisitInfo(exposure_time=30.0, mjd_tai_mid=60500.25, band="i", airmass=1.1, detector=12),
        metadata=metadata,
        xy0=(1000, 2000),
    )


def test_defaults_and_conversion():
    exp = Exposure(np.arange(12, dtype=np.float64).reshape(3, 4))
    assert exp.image.dtype == np.float32 and exp.variance.dtype == np.float32
    assert not exp.variance.any() and not exp.mask.array.any()
    assert exp.mask.planes["DETECTED"] == 5
    assert exp.bbox == Box(0, 0, 4, 3) and (exp.width, exp.height) == (4, 3)
    image = np.zeros((3, 4), np.float32)
    assert Exposure(image).image is image  # no copy


def test_mismatched_shapes_raise():
    with pytest.raises(ConfigError, match="variance shape"):
        Exposure(np.zeros((3, 4)), variance=np.zeros((4, 3)))
    with pytest.raises(ConfigError, match="mask shape"):
        Exposure(np.zeros((3, 4)), mask=Mask(shape=(3, 5)))
    with pytest.raises(ConfigError, match="2-D"):
        Exposure(np.zeros(5))


def test_subimage_shares_memory_and_tracks_xy0(full_exposure):
    exp = full_exposure
    box = Box(1010, 2005, 20, 30)
    sub = exp[box]
    assert sub.bbox == box and sub.xy0 == (1010, 2005)
    sub.image[0, 0] = -1.0
    sub.variance[1, 2] = -2.0
    sub.mask.clear("BAD")
    sub.mask.set("BAD", np.eye(30, 20, dtype=bool))
    assert exp.image[5, 10] == -1.0 and exp.variance[6, 12] == -2.0
    assert exp.mask.get("BAD")[5:35, 10:30].tolist() == np.eye(30, 20, dtype=bool).tolist()
    nested = sub.subimage(Box(1015, 2010, 5, 5))
    np.testing.assert_array_equal(nested.image, exp.image[10:15, 15:20])
    x, y = _points(box)
    np.testing.assert_array_equal(nested.pixel_to_sky(x, y), exp.pixel_to_sky(x, y))
    for outside in (Box(999, 2000, 5, 5), Box(1100, 2090, 40, 10), Box(1010, 2005, 0, 0)):
        with pytest.raises(ConfigError, match="not inside"):
            exp.subimage(outside)


def test_copy_is_deep(full_exposure):
    copy = full_exposure.copy()
    copy.image[:] = 0
    copy.mask.add_plane("ONLY_COPY")
    copy.metadata["NEW"] = 1
    copy.wcs.wcs.crval = [0.0, 0.0]
    assert full_exposure.image.any() and "ONLY_COPY" not in full_exposure.mask.planes
    assert "NEW" not in full_exposure.metadata and full_exposure.wcs.wcs.crval[0] != 0.0


def test_make_tan_wcs_orientation_and_scale():
    wcs = make_tan_wcs(150.0, 0.0, 0.36, 0.0, (10.0, 20.0))
    exp = Exposure(np.zeros((5, 5)), wcs=wcs)
    ra, dec = exp.pixel_to_sky(np.array([10.0, 10.0, 11.0]), np.array([20.0, 21.0, 20.0]))
    assert ra[0] == pytest.approx(150.0, abs=1e-12) and dec[0] == pytest.approx(0.0, abs=1e-12)
    assert dec[1] - dec[0] == pytest.approx(1e-4, rel=1e-6)  # +y is North
    assert ra[2] - ra[0] == pytest.approx(-1e-4, rel=1e-6)  # +x is West
    rotated = Exposure(np.zeros((5, 5)), wcs=make_tan_wcs(150.0, 0.0, 0.36, 90.0, (10.0, 20.0)))
    ra, dec = rotated.pixel_to_sky(np.array([10.0, 10.0]), np.array([20.0, 21.0]))
    assert ra[1] - ra[0] == pytest.approx(1e-4, rel=1e-6)  # PA 90: +y points East
    with pytest.raises(ConfigError, match="pixel_scale"):
        make_tan_wcs(0.0, 0.0, -1.0)
    with pytest.raises(ConfigError, match="'a' and 'b'"):
        make_tan_wcs(0.0, 0.0, 1.0, sip={"a": np.zeros((3, 3))})


def test_sky_to_pixel_inverts_sip():
    exp = Exposure(np.zeros((5, 5)), wcs=_sip_wcs())
    x, y = _points(Box(0, 0, 2000, 2000))
    ra, dec = exp.pixel_to_sky(x, y)
    x2, y2 = exp.sky_to_pixel(ra, dec)
    assert np.abs(x2 - x).max() < 1e-7 and np.abs(y2 - y).max() < 1e-7
    # the distortion is real: a plain TAN WCS puts the corners elsewhere
    tan = make_tan_wcs(53.123456789, -27.987654321, 0.2, 17.0, (1000.5, 980.25))
    ra_tan, _ = tan.all_pix2world(x, y, 0)
    assert np.abs(ra_tan - ra).max() * 3600 > 1.0
    with pytest.raises(ConfigError, match="no WCS"):
        Exposure(np.zeros((2, 2))).pixel_to_sky(0, 0)


def test_shift_wcs_and_header_round_trip():
    wcs = _sip_wcs()
    shifted = shift_wcs(wcs, 123.0, -45.0)
    x, y = _points(Box(0, 0, 1500, 1500))
    np.testing.assert_allclose(
        shifted.all_pix2world(x, y, 0), wcs.all_pix2world(x + 123.0, y - 45.0, 0), rtol=0, atol=1e-12
    )
    back = wcs_from_header(wcs_to_header(wcs))
    assert np.abs(np.subtract(back.all_pix2world(x, y, 0), wcs.all_pix2world(x, y, 0))).max() < 1e-9
    with pytest.raises(FormatError, match="my.fits.*CTYPE1"):
        wcs_from_header(fits.Header(), name="my.fits")


def _assert_same(a: Exposure, b: Exposure) -> None:
    assert a.xy0 == b.xy0 and a.bbox == b.bbox
    assert a.image.tobytes() == b.image.tobytes() and a.variance.tobytes() == b.variance.tobytes()
    assert a.mask == b.mask and a.mask.array.dtype == np.uint32
    x, y = _points(a.bbox)
    ra_a, dec_a = a.pixel_to_sky(x, y)
    ra_b, dec_b = b.pixel_to_sky(x, y)
    assert np.abs(ra_a - ra_b).max() < 1e-9 and np.abs(dec_a - dec_b).max() < 1e-9
    assert a.psf == b.psf and a.photo_calib == b.photo_calib and a.visit_info == b.visit_info


def test_fits_round_trip_is_lossless(full_exposure, tmp_path):
    path = tmp_path / "calexp.fits"
    full_exposure.write_fits(path)
    back = Exposure.read_fits(path)
    _assert_same(back, full_exposure)
    assert back.mask.planes["FAKE_SOURCE"] == 17 and back.mask.array.max() >= 2**31
    assert back.wcs.sip is not None
    assert back.image.flags.writeable and back.mask.array.flags.writeable and back.variance.flags.writeable
    for key in ("OBSERVER", "GAIN", "EXPTIME", "LONGVAL", "ESO DET CHIP NAME"):
        assert back.metadata[key] == full_exposure.metadata[key]
    assert back.metadata.comments["OBSERVER"] == "who observed"
    assert list(back.metadata["HISTORY"]) == ["step one", "step two"]
    assert "VIEXPT" not in back.metadata and "NAXIS" not in back.metadata
    with fits.open(path) as hdul:  # standard tools see a valid, self-describing file
        assert [h.name for h in hdul] == ["PRIMARY", "IMAGE", "MASK", "VARIANCE", "PSF", "PHOTOCALIB"]
        assert hdul["MASK"].header["MP_DETECTED_NEGATIVE"] == 6
        assert hdul["IMAGE"].header["LTV1"] == -1000 and hdul["PSF"].header["PSFTYPE"] == "GAUSSIAN"


def test_round_trip_image_psf_and_minimal_exposure(tmp_path):
    kernel = np.random.default_rng(5).uniform(0.0, 1.0, (15, 15))
    exp = Exposure(np.ones((4, 6), np.float32), psf=ImagePsf(kernel), xy0=(-3, 7))
    exp.write_fits(tmp_path / "a.fits")
    back = Exposure.read_fits(tmp_path / "a.fits")
    np.testing.assert_array_equal(back.psf.kernel_image(0, 0), exp.psf.kernel_image(0, 0))
    assert back.xy0 == (-3, 7) and back.wcs is None and back.photo_calib is None and back.visit_info is None
    assert read_exposure_bbox(tmp_path / "a.fits") == Box(-3, 7, 6, 4)


def test_round_trip_through_a_file_object(full_exposure):
    buf = io.BytesIO()
    full_exposure.write_fits(buf)
    buf.seek(0)
    _assert_same(Exposure.read_fits(buf), full_exposure)


def test_write_subimage_view(full_exposure, tmp_path):
    sub = full_exposure[Box(1050, 2040, 33, 21)]
    sub.write_fits(tmp_path / "sub.fits")
    _assert_same(Exposure.read_fits(tmp_path / "sub.fits"), sub)


def test_read_bbox_reads_only_the_section(full_exposure, tmp_path, monkeypatch):
    path = tmp_path / "calexp.fits"
    full_exposure.write_fits(path)
    full = Exposure.read_fits(path)
    box = Box(1017, 2031, 45, 22)

    def no_full_load(self):
        raise AssertionError("the whole HDU was loaded")

    monkeypatch.setattr(fits.ImageHDU, "data", property(no_full_load))
    part = Exposure.read_fits(path, bbox=box)
    monkeypatch.undo()
    _assert_same(part, full[box])
    assert part.mask.planes == full.mask.planes
    with pytest.raises(ConfigError, match="calexp.fits.*not inside"):
        Exposure.read_fits(path, bbox=Box(1100, 2000, 50, 10))


def test_unreadable_files_raise_format_error_naming_them(full_exposure, tmp_path):
    junk = tmp_path / "junk.fits"
    junk.write_text("this is not FITS at all" * 200)
    with pytest.raises(FormatError, match="junk.fits"):
        Exposure.read_fits(junk)
    good = tmp_path / "good.fits"
    full_exposure.write_fits(good)
    truncated = tmp_path / "truncated.fits"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(FormatError, match="truncated.fits"):
        Exposure.read_fits(truncated)
    plain = tmp_path / "plain.fits"
    fits.PrimaryHDU(np.zeros((3, 3))).writeto(plain)
    with pytest.raises(FormatError, match="plain.fits: no IMAGE extension"):
        Exposure.read_fits(plain)
    with pytest.raises(FileNotFoundError):
        Exposure.read_fits(tmp_path / "missing.fits")

"""The direct FITS cutout writer against astropy's writer (the former implementation)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits

from pachon.alerts.cutouts import CutoutWriter, fits_card
from pachon.alerts.packet import cutout_to_fits_bytes, fits_bytes_to_cutout
from pachon.core.exposure import Exposure
from pachon.core.geom import Box
from pachon.core.psf import GaussianPsf
from pachon.core.wcs import make_tan_wcs, shift_wcs, wcs_to_header
from pachon.pipelines.alert_task import _cutout


def _astropy_cutout(exposure: Exposure) -> bytes:
    """The cutout as astropy writes it (the implementation before the direct writer)."""
    header = fits.Header()
    x0, y0 = exposure.xy0
    header["CUTMINX"] = (x0, "parent x of the first pixel")
    header["CUTMINY"] = (y0, "parent y of the first pixel")
    header.update(wcs_to_header(shift_wcs(exposure.wcs, x0, y0)))
    hdus = [fits.PrimaryHDU(np.asarray(exposure.image, np.float32), header=header),
            fits.ImageHDU(np.asarray(exposure.variance, np.float32), name="UNCERT")]
    hdus[1].header["UTYPE"] = "VarianceUncertainty"
    if exposure.psf is not None:
        h, w = exposure.image.shape
        kernel = exposure.psf.kernel_image(x0 + (w - 1) / 2.0, y0 + (h - 1) / 2.0)
        hdus.append(fits.ImageHDU(np.asarray(kernel, np.float64), name="PSFIMAGE"))
    buffer = io.BytesIO()
    fits.HDUList(hdus).writeto(buffer)
    return buffer.getvalue()


def _parent(sip: bool, psf: bool, crpix=(100.0, 120.0)) -> Exposure:
    rng = np.random.default_rng(4)
    coeffs = {"a": np.zeros((3, 3)), "b": np.zeros((3, 3))}
    coeffs["a"][2, 0], coeffs["b"][0, 2] = 2.5e-6, -1.5e-6
    wcs = make_tan_wcs(150.0, -30.0, 0.2, rotation_deg=33.0, crpix=crpix,
                       sip=coeffs if sip else None)
    image = rng.normal(0, 10, (200, 300)).astype(np.float32)
    image[5, 7] = np.nan
    return Exposure(image, variance=rng.uniform(1, 2, (200, 300)).astype(np.float32), wcs=wcs,
                    psf=GaussianPsf(1.7) if psf else None, xy0=(1000, 2000))


def test_byte_identical_to_astropy_for_integer_reference_pixel() -> None:
    parent = _parent(sip=False, psf=True)
    box = Box.from_corners(1040, 2050, 1070, 2080)
    sub = parent.subimage(box)
    expected = _astropy_cutout(sub)
    assert cutout_to_fits_bytes(sub) == expected
    assert CutoutWriter(parent).box(1040, 2050, 1070, 2080) == expected


@pytest.mark.parametrize("psf", [False, True])
def test_sip_and_fractional_reference_pixel_read_back_as_astropy_wrote(psf: bool) -> None:
    parent = _parent(sip=True, psf=psf, crpix=(150.37, 99.61))
    sub = parent.subimage(Box.from_corners(1290, 2170, 1300, 2200))  # at the corner
    ours, theirs = (fits.open(io.BytesIO(b)) for b in (cutout_to_fits_bytes(sub),
                                                       _astropy_cutout(sub)))
    ours.verify("exception")
    assert [h.name for h in ours] == [h.name for h in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert list(a.header) == list(b.header)
        for key in b.header:
            if isinstance(b.header[key], float):  # wcslib prints 14 digits, we print all
                assert a.header[key] == pytest.approx(b.header[key], rel=1e-13, abs=1e-13)
            else:
                assert a.header[key] == b.header[key]
        np.testing.assert_array_equal(a.data, b.data)
    back = fits_bytes_to_cutout(cutout_to_fits_bytes(sub))
    x, y = np.array([1290.0, 1299.5, 1295.0]), np.array([2170.0, 2199.0, 2185.2])
    np.testing.assert_allclose(back.pixel_to_sky(x, y), parent.pixel_to_sky(x, y), atol=1e-11)
    assert back.xy0 == (1290, 2170)


def test_around_clips_like_the_alert_task_and_skips_bad_positions() -> None:
    parent = _parent(sip=False, psf=True)
    x = np.array([1100.2, 1001.0, np.nan, 1299.4, 5000.0, 1150.5])
    y = np.array([2100.7, 2003.0, 2100.0, 2199.9, 2100.0, 2100.5])
    got = CutoutWriter(parent).around(x, y, 30)
    expected = [_cutout(parent, float(a), float(b), 30) for a, b in zip(x, y, strict=True)]
    assert got == expected
    assert got[2] is None and got[4] is None
    assert fits_bytes_to_cutout(got[1]).image.shape == (18, 16)  # clipped at the corner


@pytest.mark.parametrize("value", [True, False, 0, -32, 2**40, 16.0, -5.5555555555556e-05,
                                   1e-300, 123456.789, 0.1 + 0.2, "IMAGE", "", "it's",
                                   "VarianceUncertainty"])
def test_cards_as_astropy_formats_them(value) -> None:
    assert fits_card("KEY", value, "a comment") == fits.Card("KEY", value, "a comment").image
    assert fits_card("KEY", value) == fits.Card("KEY", value).image

"""PixelBasisPsf: a known spatially varying Gaussian PSF recovered; FITS round trip by PSFTYPE."""

from __future__ import annotations

import numpy as np
import pytest

from pachon.algorithms.psf.fit import PsfFitError, fit_pixel_psf
from pachon.algorithms.psf.pixel_psf import PixelBasisPsf

N = 400


def _truth(x, y):
    """Size grows and ellipticity e1 turns on across the field."""
    sigma = 1.6 + 0.4 * x / N
    e1 = 0.08 * (y / N - 0.5)
    return sigma, e1


def _gauss_stamp(dx, dy, sigma, e1, half):
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(float)
    sxx, syy = sigma**2 * (1 + e1), sigma**2 * (1 - e1)
    # pixel-integrated by 5x5 sub-sampling
    sub = (np.arange(5) - 2) / 5.0
    out = np.zeros_like(xx)
    for a in sub:
        for b in sub:
            out += np.exp(-0.5 * ((xx + a - dx) ** 2 / sxx + (yy + b - dy) ** 2 / syy))
    return out / out.sum()


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(2)
    n = 150
    xs, ys = rng.uniform(15, N - 15, n), rng.uniform(15, N - 15, n)
    image = np.zeros((N, N))
    for x, y in zip(xs, ys, strict=False):  # test scene: 150 stars
        ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
        s, e1 = _truth(x, y)
        image[iy - 12 : iy + 13, ix - 12 : ix + 13] += 2e5 * _gauss_stamp(x - ix, y - iy, s, e1, 12)
    var = image + 100.0
    image = image + rng.normal(0, np.sqrt(var))
    return fit_pixel_psf(image, var, xs, ys, size=21, order=2), xs, ys


def _moments(k):
    h = k.shape[0] // 2
    yy, xx = np.mgrid[-h : h + 1, -h : h + 1].astype(float)
    ixx, iyy = (k * xx**2).sum(), (k * yy**2).sum()
    return np.sqrt(0.5 * (ixx + iyy)), (ixx - iyy) / (ixx + iyy)


def test_spatial_variation_recovered(fitted):
    fit, xs, ys = fitted
    assert fit.psf.order >= 1
    for x, y in [(40, 40), (360, 40), (40, 360), (360, 360), (200, 200)]:
        size, e1 = _moments(fit.psf.kernel_image(x, y))
        ts, te1 = _truth(x, y)
        # unweighted moments of a truncated 21-px kernel: size within 3%, e1 within 0.01
        assert abs(size / ts - 1) < 0.03, (x, y, size, ts)
        assert abs(e1 - te1) < 0.01, (x, y, e1, te1)


def test_constant_psf_keeps_order_zero():
    rng = np.random.default_rng(3)
    xs, ys = rng.uniform(15, 185, 40), rng.uniform(15, 185, 40)
    image = np.zeros((200, 200))
    for x, y in zip(xs, ys, strict=False):
        ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
        image[iy - 10 : iy + 11, ix - 10 : ix + 11] += 2e4 * _gauss_stamp(x - ix, y - iy, 1.8, 0.0, 10)
    var = image + 400.0
    fit = fit_pixel_psf(image + rng.normal(0, np.sqrt(var)), var, xs, ys, size=17, order=2)
    assert fit.psf.order == 0  # noise must not be fitted as spatial variation


def test_fits_round_trip_through_registry(fitted, tmp_path):
    from astropy.io import fits

    from pachon.core.psf import Psf

    psf = fitted[0].psf
    hdus = psf.to_hdus()
    assert hdus[0].header["PSFTYPE"] == "PIXELBASIS"
    path = tmp_path / "psf.fits"
    fits.HDUList([fits.PrimaryHDU(), *hdus]).writeto(path)
    with fits.open(path) as hl:
        back = Psf.from_hdus(hl[1:])
    assert isinstance(back, PixelBasisPsf)
    assert np.allclose(back.kernel_image(100.0, 300.0), psf.kernel_image(100.0, 300.0))


def test_too_few_stars_raise():
    with pytest.raises(PsfFitError, match="star"):
        fit_pixel_psf(np.zeros((50, 50)), np.ones((50, 50)), [25.0], [25.0], size=11)

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits

from pachon.core.errors import ConfigError, FormatError
from pachon.core.geom import Box
from pachon.core.psf import GaussianPsf, ImagePsf, Psf, register_psf_type, shift_kernel


def _moments(img: np.ndarray, box: Box | None = None) -> tuple[float, float, float, float]:
    ny, nx = img.shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    if box is not None:
        xx += box.x0
        yy += box.y0
    s = img.sum()
    cx, cy = (img * xx).sum() / s, (img * yy).sum() / s
    return cx, cy, (img * (xx - cx) ** 2).sum() / s, (img * (yy - cy) ** 2).sum() / s


def _elliptical_kernel(size: int = 31) -> np.ndarray:
    r = np.arange(size) - size // 2
    x, y = np.meshgrid(r, r)
    return np.exp(-0.5 * (x**2 / 2.2**2 + y**2 / 1.7**2 + 0.3 * x * y / 4))


@pytest.mark.parametrize("sigma", [1.0, 1.7, 3.2])
def test_gaussian_kernel_normalized_with_right_moments(sigma):
    psf = GaussianPsf(sigma)
    k = psf.kernel_image(100.3, 200.7)
    assert k.dtype == np.float64 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert abs(k.sum() - 1.0) < 1e-12
    cx, cy, ixx, iyy = _moments(k)
    assert (cx, cy) == pytest.approx((k.shape[0] // 2, k.shape[0] // 2), abs=1e-12)
    assert ixx == pytest.approx(sigma**2, rel=0.01) and iyy == pytest.approx(sigma**2, rel=0.01)
    assert psf.sigma(5, 5) == sigma


@pytest.mark.parametrize("x, y", [(10.0, 20.0), (10.3, 20.45), (-3.49, 7.8), (100.5, 50.25)])
@pytest.mark.parametrize("psf", [GaussianPsf(1.5), ImagePsf(_elliptical_kernel())], ids=["gauss", "image"])
def test_image_realises_subpixel_position(psf, x, y):
    img, box = psf.image(x, y)
    assert img.shape == box.shape
    assert abs(img.sum() - 1.0) < 1e-12
    # the box is centred on the pixel nearest (x, y)
    assert box.center == (np.floor(x + 0.5), np.floor(y + 0.5))
    cx, cy, _, _ = _moments(img, box)
    assert abs(cx - x) < 0.01 and abs(cy - y) < 0.01


def test_gaussian_image_matches_analytic_profile():
    psf = GaussianPsf(2.0, size=15)
    img, box = psf.image(5.25, 6.0)
    assert box == Box(-2, -1, 15, 15)
    yy, xx = np.mgrid[box.y0 : box.y1, box.x0 : box.x1]
    truth = np.exp(-((xx - 5.25) ** 2 + (yy - 6.0) ** 2) / 8.0)
    np.testing.assert_allclose(img, truth / truth.sum(), rtol=1e-12)


def test_image_psf_sigma_and_normalization():
    kernel = 7.0 * GaussianPsf(2.5, size=41).kernel_image(0, 0)
    psf = ImagePsf(kernel)
    k = psf.kernel_image(0, 0)
    assert abs(k.sum() - 1.0) < 1e-12
    np.testing.assert_allclose(k, kernel / 7.0, rtol=1e-13)
    assert psf.sigma(0, 0) == pytest.approx(2.5, rel=1e-3)
    k[0, 0] = 99.0  # callers get a copy
    assert psf.kernel_image(0, 0)[0, 0] != 99.0


def test_shift_kernel_zero_shift_is_identity():
    k = _elliptical_kernel(21)
    np.testing.assert_allclose(shift_kernel(k, 0.0, 0.0), k / k.sum(), atol=1e-15)


def test_invalid_psfs():
    with pytest.raises(ConfigError, match="sigma"):
        GaussianPsf(0.0)
    with pytest.raises(ConfigError, match="odd"):
        GaussianPsf(1.0, size=10)
    with pytest.raises(ConfigError, match="odd square"):
        ImagePsf(np.ones((4, 4)))
    with pytest.raises(ConfigError, match="positive sum"):
        ImagePsf(np.zeros((3, 3)))


def _through_fits(hdus: list) -> list:
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), *hdus]).writeto(buf)
    buf.seek(0)
    with fits.open(buf) as hdul:
        return [fits.ImageHDU(h.data, h.header) if h.is_image else h.copy() for h in hdul[1:]]


@pytest.mark.parametrize("psf", [GaussianPsf(1.234567, size=13), ImagePsf(_elliptical_kernel(25))])
def test_fits_round_trip(psf):
    hdus = psf.to_hdus()
    assert hdus[0].header["PSFTYPE"] == psf.psf_type
    back = Psf.from_hdus(_through_fits(hdus))
    assert type(back) is type(psf) and back == psf
    np.testing.assert_array_equal(back.kernel_image(3.0, 4.0), psf.kernel_image(3.0, 4.0))


@register_psf_type("TEST_DOUBLE_GAUSSIAN")
class _DoubleGaussianPsf(Psf):
    """A plug-in model defined outside pachon.core.psf, stored in a binary table."""

    def __init__(self, sigma1: float, sigma2: float, ratio: float) -> None:
        self.params = (sigma1, sigma2, ratio)

    def kernel_image(self, x: float, y: float) -> np.ndarray:
        s1, s2, ratio = self.params
        k = GaussianPsf(s1, 31).kernel_image(x, y) + ratio * GaussianPsf(s2, 31).kernel_image(x, y)
        return k / k.sum()

    def _to_hdus(self) -> list:
        names = ("s1", "s2", "r")
        cols = [fits.Column(name=n, format="D", array=[v]) for n, v in zip(names, self.params, strict=True)]
        return [fits.BinTableHDU.from_columns(cols)]

    @classmethod
    def _from_hdus(cls, hdus):
        row = hdus[0].data[0]
        return cls(row["s1"], row["s2"], row["r"])


def test_registry_dispatches_to_plugin_and_rejects_unknown():
    psf = _DoubleGaussianPsf(1.0, 3.0, 0.1)
    back = Psf.from_hdus(_through_fits(psf.to_hdus()))
    assert isinstance(back, _DoubleGaussianPsf) and back.params == (1.0, 3.0, 0.1)
    # generic image() and sigma() from the base class work for the plug-in
    img, box = back.image(2.3, 4.6)
    cx, cy, _, _ = _moments(img, box)
    assert abs(cx - 2.3) < 0.01 and abs(cy - 4.6) < 0.01
    expected = np.sqrt((1.0 + 0.1 * 9.0) / 1.1)
    assert back.sigma(0, 0) == pytest.approx(expected, rel=0.01)
    hdu = fits.ImageHDU()
    hdu.header["PSFTYPE"] = "NO_SUCH_MODEL"
    with pytest.raises(FormatError, match="unknown PSFTYPE 'NO_SUCH_MODEL'.*GAUSSIAN"):
        Psf.from_hdus([hdu])
    with pytest.raises(ConfigError, match="already registered"):
        register_psf_type("GAUSSIAN")(_DoubleGaussianPsf)

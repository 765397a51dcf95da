"""A PSFEx-like PSF model: a pixel basis whose every pixel varies as a polynomial in position.

``kernel(x, y) = sum_k c_k(pixels) * u^i v^j`` with ``u, v`` the position scaled to
``[-1, 1]`` over the fitted box and ``(i, j)`` running over monomials of total degree up to
``order``.  The model persists to FITS (``PSFTYPE = 'PIXELBASIS'``) through the registry of
:mod:`pachon.core.psf`.  :meth:`PixelBasisPsf.images` realises it at many sub-pixel positions
at once (one batched FFT), which is what measurement uses.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pachon.core.errors import ConfigError, FormatError
from pachon.core.psf import Psf, register_psf_type

if TYPE_CHECKING:
    from astropy.io import fits

__all__ = ["PixelBasisPsf", "fourier_shift", "monomials", "poly_design", "shift_matrices"]

_log = logging.getLogger(__name__)


def monomials(order: int) -> list[tuple[int, int]]:
    """Exponents ``(i, j)`` of ``u^i v^j`` with ``i + j <= order``, by increasing degree."""
    return [(d - j, j) for d in range(order + 1) for j in range(d + 1)]


def poly_design(u: np.ndarray, v: np.ndarray, order: int) -> np.ndarray:
    """Design matrix ``(n, n_terms)`` of the monomials of :func:`monomials`."""
    u, v = np.asarray(u, float).ravel(), np.asarray(v, float).ravel()
    return np.stack([u**i * v**j for i, j in monomials(order)], axis=1)


def shift_matrices(size: int, shift: np.ndarray) -> np.ndarray:
    """``(n, size, size)`` matrices ``M`` with ``M @ v`` = ``v`` shifted by ``shift`` (FFT, zero-padded).

    The band-limited shift of a zero-padded ``size``-vector over ``2 size`` points is a
    circular convolution with the inverse transform of the phase ramp, ``h(t)``; row ``i``,
    column ``j`` of ``M`` is ``h(i - j)``.  One short inverse FFT per shift builds the matrix.
    """
    p = 2 * size
    f = np.fft.rfftfreq(p)
    h = np.fft.irfft(np.exp(-2j * np.pi * np.asarray(shift, float)[:, None] * f[None, :]), n=p)
    lag = (np.arange(size)[:, None] - np.arange(size)[None, :]) % p
    return h[:, lag]


def fourier_shift(cube: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Shift each ``(s, s)`` image of ``cube`` by ``(dx, dy)`` pixels (zero-padded FFT phase ramp).

    The 2-D shift is separable: ``My @ image @ Mx.T`` with the matrices of
    :func:`shift_matrices` (two batched small matrix products instead of 2-D FFTs).
    """
    n, s, _ = cube.shape
    mx = shift_matrices(s, np.broadcast_to(np.asarray(dx, float), (n,)))
    my = shift_matrices(s, np.broadcast_to(np.asarray(dy, float), (n,)))
    return my @ np.asarray(cube, float) @ mx.transpose(0, 2, 1)


@register_psf_type("PIXELBASIS")
class PixelBasisPsf(Psf):
    """Spatially varying pixel PSF.

    Parameters
    ----------
    coefficients
        ``(n_terms, size, size)`` pixel images of the polynomial terms (``size`` odd).
    order
        Polynomial order (``n_terms = (order + 1)(order + 2) / 2``).
    centre
        Parent pixel position ``(x, y)`` mapped to ``u = v = 0``.
    scale
        Half-widths ``(sx, sy)`` (pixels) mapped to ``u, v = ±1``.
    """

    def __init__(
        self, coefficients: np.ndarray, order: int, centre: tuple[float, float], scale: tuple[float, float]
    ) -> None:
        coefficients = np.asarray(coefficients, float)
        n_terms = len(monomials(order))
        if coefficients.ndim != 3 or coefficients.shape[0] != n_terms:
            raise ConfigError(
                f"PixelBasisPsf: coefficients must be ({n_terms}, size, size) for order {order}, "
                f"got {coefficients.shape}"
            )
        if coefficients.shape[1] != coefficients.shape[2] or coefficients.shape[1] % 2 == 0:
            raise ConfigError(f"PixelBasisPsf: kernel must be odd square, got {coefficients.shape[1:]}")
        self.coefficients = coefficients
        self.order = int(order)
        self.centre = (float(centre[0]), float(centre[1]))
        self.scale = (max(float(scale[0]), 1.0), max(float(scale[1]), 1.0))

    @property
    def size(self) -> int:
        """Kernel width (pixels)."""
        return int(self.coefficients.shape[1])

    def kernels(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Normalized kernels ``(n, size, size)`` at parent positions ``(x, y)``."""
        u = (np.asarray(x, float) - self.centre[0]) / self.scale[0]
        v = (np.asarray(y, float) - self.centre[1]) / self.scale[1]
        k = np.einsum("nt,tij->nij", poly_design(u, v, self.order), self.coefficients)
        return k / k.sum(axis=(1, 2), keepdims=True)

    def kernel_image(self, x: float, y: float) -> np.ndarray:  # noqa: D102
        return self.kernels(np.array([x]), np.array([y]))[0]

    def images(self, x: np.ndarray, y: np.ndarray, half: int) -> np.ndarray:
        """PSF realised at ``(x, y)`` on ``(2 half + 1)`` stamps centred on the nearest pixels."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        ix, iy = np.floor(x + 0.5), np.floor(y + 0.5)
        k = fourier_shift(self.kernels(x, y), x - ix, y - iy)
        k /= k.sum(axis=(1, 2), keepdims=True)
        h = self.size // 2
        size = 2 * half + 1
        if h >= half:
            return k[:, h - half : h + half + 1, h - half : h + half + 1]
        out = np.zeros((len(x), size, size))
        out[:, half - h : half + h + 1, half - h : half + h + 1] = k
        return out

    def _to_hdus(self) -> list[fits.ImageHDU | fits.BinTableHDU]:
        from astropy.io import fits

        hdu = fits.ImageHDU(self.coefficients)
        h = hdu.header
        h["PSFORDER"] = (self.order, "polynomial order of the spatial variation")
        h["PSFXCEN"], h["PSFYCEN"] = self.centre
        h["PSFXSCL"], h["PSFYSCL"] = self.scale
        return [hdu]

    @classmethod
    def _from_hdus(cls, hdus: Sequence[Any]) -> PixelBasisPsf:
        h = hdus[0].header
        if hdus[0].data is None:
            raise FormatError("PIXELBASIS PSF HDU holds no coefficient cube")
        try:
            return cls(
                np.array(hdus[0].data, float),
                int(h["PSFORDER"]),
                (float(h["PSFXCEN"]), float(h["PSFYCEN"])),
                (float(h["PSFXSCL"]), float(h["PSFYSCL"])),
            )
        except KeyError as exc:
            raise FormatError(f"PIXELBASIS PSF HDU lacks header key {exc.args[0]!r}") from None

    def __repr__(self) -> str:
        return f"PixelBasisPsf(size={self.size}, order={self.order}, centre={self.centre})"

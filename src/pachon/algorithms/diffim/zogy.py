"""ZOGY (Zackay, Ofek & Gal-Yam 2016): the proper difference image and its score.

With science ``N`` (PSF ``P_n``, noise ``s2``) and template ``R`` (PSF ``P_r``, noise ``t2``)
on the same grid and flux scale ``F_r / F_n`` of the template relative to the science image,
the proper difference is

``D(k) = (P_r N - (F_r/F_n)^-1 ... )``, in the normalized form used here:
``D = phi (P_r * N - f P_n * R)``, ``phi = sqrt(N(0) / (s2 |P_r|^2 + t2 f^2 |P_n|^2))``,

with ``f`` the template-to-science flux scale.  It is the decorrelated cross-convolution
difference of :mod:`pachon.algorithms.diffim.decorrelation` with ``A = P_r`` and ``B = f P_n``:
white noise, science flux units, PSF ``phi P_r P_n``; its matched filter is the ZOGY score
``S``.  No kernel is fitted, so ZOGY needs accurate PSF models of both images.  Use it through
``subtract_images(science, template, DiffimConfig(algorithm="zogy"))``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from pachon.algorithms.diffim.cells import kernels_to_fourier

__all__ = ["zogy_filters"]

_log = logging.getLogger(__name__)


def zogy_filters(
    psf_science: np.ndarray, psf_template: np.ndarray, size: int, flux_scale: float = 1.0
) -> tuple[Callable[[slice], np.ndarray], Callable[[slice], np.ndarray], float]:
    """Fourier filters ``A = P_r`` (applied to the science image) and ``B = f P_n`` (template).

    Parameters
    ----------
    psf_science, psf_template
        PSF kernels (odd squares summing to 1).
    size
        FFT size of a cell.
    flux_scale
        Science counts per template count (``calib_template / calib_science``).

    Returns
    -------
    a_hat, b_hat, b0
        Filter callables (same for every cell) and the template flux scale ``B(0)``.
    """
    pr = kernels_to_fourier(np.asarray(psf_template, float), size)
    pn = kernels_to_fourier(np.asarray(psf_science, float), size) * flux_scale

    def a_hat(rows: slice) -> np.ndarray:
        return pr

    def b_hat(rows: slice) -> np.ndarray:
        return pn

    return a_hat, b_hat, float(flux_scale)

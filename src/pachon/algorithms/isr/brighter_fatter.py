"""Brighter-fatter correction with a kernel (the Coulton et al. 2018 formulation).

Collected charge deflects the field lines of neighbouring pixels: the observed image is
``I_obs = I + div(I grad(K * I))`` where ``K`` is the brighter-fatter kernel (pixels² per
electron; ``*`` is a convolution).  A delta kernel ``K = s delta`` gives the local diffusion
``div(s I grad I)``.  :func:`correct_brighter_fatter` inverts the model by fixed-point
iteration ``I_{n+1} = I_obs - div(I_n grad(K * I_n))`` on whole arrays (FFT convolution).

The divergence is taken in flux form across the four pixel boundaries: the charge moving from
pixel ``x + e`` into ``x`` is ``(I_x + I_{x+e}) / 2 * (phi_{x+e} - phi_x)`` with ``phi = K * I``,
so charge is conserved exactly and, on a flat of mean ``mu``, the operator is
``mu * L * K`` with ``L`` the five-point Laplacian: the shot noise of a flat acquires the pixel
covariances ``C_ij / mu = delta_ij + 2 mu (L * K)_ij`` that
:mod:`pachon.algorithms.cp.bf_kernel` measures (central differences of central differences
would skip the nearest neighbours and could not reproduce them).
"""

from __future__ import annotations

import logging

import numpy as np

from pachon.core.errors import ConfigError

__all__ = ["bf_term", "apply_brighter_fatter", "correct_brighter_fatter", "delta_kernel"]

log = logging.getLogger(__name__)


def delta_kernel(strength: float, size: int = 1) -> np.ndarray:
    """A kernel of ``size`` x ``size`` pixels (odd) with ``strength`` in the centre."""
    if size % 2 != 1:
        raise ConfigError(f"brighter-fatter kernel size must be odd, got {size}")
    k = np.zeros((size, size))
    k[size // 2, size // 2] = strength
    return k


def _convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    k = np.asarray(kernel, dtype=np.float64)
    if k.shape == (1, 1):
        return image * float(k[0, 0])
    if k.size <= 25:
        from scipy.ndimage import convolve

        return convolve(image, k, mode="nearest")
    from scipy.signal import fftconvolve

    return fftconvolve(image, k, mode="same")


def _boundary_flux_divergence(image: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Net charge flowing into each pixel across its four boundaries (zero flux off the edge)."""
    term = np.zeros_like(image)
    for axis in (0, 1):
        lo = [slice(None)] * 2
        hi = [slice(None)] * 2
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        lo_t, hi_t = tuple(lo), tuple(hi)
        flux = 0.5 * (image[lo_t] + image[hi_t]) * (phi[hi_t] - phi[lo_t])  # into the lower pixel
        term[lo_t] += flux
        term[hi_t] -= flux
    return term


def bf_term(image: np.ndarray, kernel: np.ndarray, *, max_potential: float | None = None) -> np.ndarray:
    """``div(I grad(K * I))`` in flux form across pixel boundaries (electrons).

    Where the potential ``K * I`` exceeds ``max_potential`` (saturated cores, where the linear
    model no longer holds and the iteration would diverge) the term is set to zero, with a
    two-pixel margin.
    """
    phi = _convolve(image, kernel)
    term = _boundary_flux_divergence(image, phi)
    if max_potential is not None:
        over = np.abs(phi) > max_potential
        if over.any():
            from scipy.ndimage import binary_dilation

            term[binary_dilation(over, iterations=2)] = 0.0
    return term


def apply_brighter_fatter(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The forward model: the image the sensor records for a true image (electrons)."""
    img = np.asarray(image, dtype=np.float64)
    return img + bf_term(img, kernel)


def correct_brighter_fatter(
    image: np.ndarray,
    kernel: np.ndarray,
    *,
    n_iter: int = 8,
    tolerance: float = 1e-3,
    max_potential: float | None = 0.2,
) -> tuple[np.ndarray, int, np.ndarray]:
    """Remove the brighter-fatter effect from an image in electrons.

    Parameters
    ----------
    image
        Observed image (electrons, bias and dark removed, before flat-fielding).
    kernel
        The brighter-fatter kernel (odd square array).
    n_iter
        Maximum number of fixed-point iterations.
    tolerance
        Stop when the largest change of the correction is below this (electrons).
    max_potential
        No correction where ``K * I`` exceeds this (see :func:`bf_term`); None: everywhere.

    Returns
    -------
    corrected, n_iterations, uncorrected
        The corrected image, the iterations used, and where no correction was made (potential
        above ``max_potential``; ISR flags those pixels SUSPECT).
    """
    obs = np.asarray(image, dtype=np.float64)
    safe = np.where(np.isfinite(obs), obs, 0.0)
    current = safe.copy()
    prev = np.zeros_like(safe)
    it = 0
    while it < n_iter:
        it += 1
        term = bf_term(current, kernel, max_potential=max_potential)
        current = safe - term
        change = float(np.max(np.abs(term - prev))) if term.size else 0.0
        prev = term
        if change < tolerance:
            break
    skipped = np.zeros(obs.shape, dtype=bool)
    if max_potential is not None:
        from scipy.ndimage import binary_dilation

        over = np.abs(_convolve(current, kernel)) > max_potential
        if over.any():
            skipped = binary_dilation(over, iterations=2)
    return np.where(np.isfinite(obs), current, obs), it, skipped

"""Brighter-fatter kernel from the area coefficients of flat-pair covariances.

The ISR model (:mod:`pachon.algorithms.isr.brighter_fatter`) moves charge across pixel
boundaries by ``(I_x + I_{x+e}) / 2 * (phi_{x+e} - phi_x)`` with ``phi = K * I``; on a flat of mean
``mu`` this is ``mu L * K`` (``L``: five-point Laplacian), so the flat covariances grow as
``C_ij / mu = delta_ij + a_ij mu`` with ``a = 2 L * K`` (Coulton et al. 2018 write the same
relation with a factor 1/2 in the model instead).  The kernel is the solution of the Poisson
equation ``L * K = a / 2`` on the ``(2n + 1)^2`` grid of measured lags with ``K = 0`` one pixel
beyond it, solved exactly by a type-I discrete sine transform (which diagonalises the Dirichlet
Laplacian).  Charge conservation: the boundary fluxes conserve charge for any ``K``; the
measured ``a_ij`` should sum to zero (a pixel's area gain is its neighbours' loss), which
:func:`kernel_from_area_coefficients` can impose on ``a_00`` (``force_zero_sum``).
"""

from __future__ import annotations

import logging

import numpy as np

from pachon.core.errors import ConfigError

__all__ = ["full_grid", "kernel_from_area_coefficients", "kernel_sum_weights", "laplacian"]

log = logging.getLogger(__name__)


def full_grid(quadrant: np.ndarray) -> np.ndarray:
    """Mirror ``q[i, j]`` (``i, j >= 0``) into the symmetric ``(2n + 1)^2`` grid of lags."""
    q = np.asarray(quadrant, float)
    if q.ndim != 2 or q.shape[0] != q.shape[1]:
        raise ConfigError(f"area coefficients must be a square (n + 1, n + 1) quadrant, got shape {q.shape}")
    right = np.concatenate([q[:, :0:-1], q], axis=1)
    return np.concatenate([right[:0:-1], right], axis=0)


def laplacian(grid: np.ndarray) -> np.ndarray:
    """Five-point Laplacian with zeros beyond the edge (same shape)."""
    g = np.asarray(grid, float)
    p = np.pad(g, 1)
    return p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4.0 * g


def _poisson(rhs: np.ndarray) -> np.ndarray:
    from scipy.fft import dstn, idstn

    n0, n1 = rhs.shape
    lam0 = 2.0 * np.cos(np.pi * np.arange(1, n0 + 1) / (n0 + 1)) - 2.0
    lam1 = 2.0 * np.cos(np.pi * np.arange(1, n1 + 1) / (n1 + 1)) - 2.0
    return idstn(dstn(rhs, type=1) / (lam0[:, None] + lam1[None, :]), type=1)


def kernel_from_area_coefficients(a: np.ndarray, *, force_zero_sum: bool = False) -> np.ndarray:
    """The ``(2n + 1)^2`` kernel ``K`` (pixels² per electron) with ``L * K = a / 2`` inside the grid.

    Parameters
    ----------
    a
        Area coefficients ``a[i, j]`` for lags ``0 <= i, j <= n`` (per electron).
    force_zero_sum
        Set ``a_00`` to minus the sum of all other lags (over the full grid) first: charge
        conservation, when the variance (lag 0) is less trusted than the covariances.
    """
    grid = full_grid(a)
    if not np.all(np.isfinite(grid)):
        raise ConfigError("area coefficients hold NaN or inf; check the flat-pair covariance fit")
    if force_zero_sum:
        c = grid.shape[0] // 2
        grid[c, c] -= grid.sum()
    return _poisson(grid / 2.0)


def kernel_sum_weights(n: int) -> np.ndarray:
    """``w[i, j]`` with ``sum(K) = sum w * a`` over the quadrant (lag multiplicities folded in)."""
    g = _poisson(np.ones((2 * n + 1, 2 * n + 1))) / 2.0  # the Green's operator is symmetric
    q = g[n:, n:].copy()
    q[1:, :] *= 2.0
    q[:, 1:] *= 2.0
    return q

"""Pixel covariances of flat-pair differences and their fit against signal (Astier et al. 2019).

The difference of two flats at one level removes the fixed pattern and keeps twice the temporal
noise; its spatial auto-covariance at lag ``(i, j)`` (rows, columns), halved, is the covariance
``C_ij`` of one flat.  Brighter-fatter makes ``C_ij / mu = delta_ij + a_ij mu + O(mu^2)``
(electrons): :func:`pair_covariances` measures ``C_ij`` for ``0 <= i, j <= max_lag`` (the four
quadrants averaged) by FFT over the whole amplifier, :func:`fit_area_coefficients` fits the
``a_ij`` of every lag over several levels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pachon.core.errors import ConfigError

__all__ = ["PairCovariance", "AreaFit", "pair_covariances", "linearize_covariances", "fit_area_coefficients"]

log = logging.getLogger(__name__)


@dataclass
class PairCovariance:
    """Covariances of one flat pair (one amplifier): ``cov[i, j]`` at row lag i, column lag j."""

    mean: float
    cov: np.ndarray
    n_pixels: int


@dataclass
class AreaFit:
    """Area coefficients ``a[i, j]`` (per electron) with standard errors, and the fit quality."""

    a: np.ndarray
    a_err: np.ndarray
    chi2_dof: float
    n_points: int


def _lagged_sums(x: np.ndarray, w: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """``sum w_p w_q x_p x_q`` and ``sum w_p w_q`` over pixel pairs ``q = p + (i, j)``, |i|,|j| <= n."""
    from scipy.fft import irfft2, next_fast_len, rfft2

    ny, nx = x.shape
    shape = (next_fast_len(ny + max_lag), next_fast_len(nx + max_lag))
    fx, fw = rfft2(x * w, shape), rfft2(w, shape)
    prod = irfft2(fx * np.conj(fx), shape)
    count = irfft2(fw * np.conj(fw), shape)
    rows = np.r_[0 : max_lag + 1]
    cols = np.r_[-max_lag : max_lag + 1] % shape[1]
    return prod[np.ix_(rows, cols)], np.rint(count[np.ix_(rows, cols)])


def pair_covariances(flat1: np.ndarray, flat2: np.ndarray, max_lag: int, *,
                     clip: float = 5.0) -> PairCovariance:
    """Mean (ADU) and covariances ``C_ij`` (ADU², lags 0..max_lag) of one amplifier from a flat pair.

    The second flat is scaled to the mean of the first (exposure-level differences), pixels of
    the difference beyond ``clip`` robust sigmas (cosmic rays, defects) are left out, and
    ``C(i, j)`` and ``C(i, -j)`` are averaged.
    """
    a, b = np.asarray(flat1, float), np.asarray(flat2, float)
    if a.shape != b.shape or a.ndim != 2:
        raise ConfigError(f"flat pair of different or non-2-D shapes {a.shape} and {b.shape}")
    if max_lag < 0 or max_lag >= min(a.shape):
        raise ConfigError(f"covariance max_lag must be in [0, {min(a.shape) - 1}], got {max_lag}")
    diff = a - (np.mean(a) / np.mean(b)) * b
    med = np.median(diff)
    mad = 1.4826 * np.median(np.abs(diff - med))
    w = (np.abs(diff - med) <= clip * max(mad, 1e-12)).astype(float)
    x = (diff - np.sum(diff * w) / np.sum(w)) * w
    sums, counts = _lagged_sums(x, w, max_lag)
    cov = sums / np.maximum(counts, 1.0) / 2.0  # a difference holds twice the variance
    n = max_lag
    folded = 0.5 * (cov[:, n:] + cov[:, n::-1])
    return PairCovariance(float(0.5 * (np.mean(a) + np.mean(b))), folded, int(w.sum()))


def linearize_covariances(means: np.ndarray, covs: np.ndarray, c2: float) -> tuple[np.ndarray, np.ndarray]:
    """Undo a quadratic non-linearity ``m = mu + c2 mu^2`` (electrons) of means and covariances.

    A fluctuation is scaled by the local slope ``1 + 2 c2 mu``, its covariances by the square.
    """
    m = np.asarray(means, float)
    if c2 == 0:
        return m, np.asarray(covs, float)
    mu = (-1.0 + np.sqrt(np.maximum(1.0 + 4.0 * c2 * m, 0.0))) / (2.0 * c2)
    slope = 1.0 + 2.0 * c2 * mu
    shape = (-1,) + (1,) * (np.ndim(covs) - 1)
    return mu, np.asarray(covs, float) / (slope**2).reshape(shape)


def fit_area_coefficients(means: Sequence[float], covs: Sequence[np.ndarray], n_pixels: Sequence[int], *,
                          cubic: bool = True) -> AreaFit:
    """Fit ``C_ij(mu)`` (electrons) of several flat pairs, per lag, and return ``a_ij`` (per e-).

    Per lag the model is ``C_ij = c0 + c1 mu + a_ij mu^2 (+ b_ij mu^3)``: ``c0`` takes read
    noise and row-correlated overscan noise, ``c1`` (lag 0 only) the Poisson term ``mu`` with
    any gain error, ``b_ij`` (``cubic``) the second-order terms of the full model.  Points are
    weighted by the expected scatter of a covariance estimate, ``C_00 / sqrt(N)`` (twice the
    variance at lag 0).  Means and covariances may come from several amplifiers.
    """
    m = np.asarray(means, float)
    c = np.asarray(covs, float)
    npix = np.asarray(n_pixels, float)
    if c.ndim != 3 or c.shape[0] != m.size or npix.size != m.size:
        raise ConfigError(f"fit_area_coefficients: {m.size} means, covariances of shape {c.shape}, "
                          f"{npix.size} pixel counts; expected (n_pairs, lag + 1, lag + 1)")
    n_par = 4 if cubic else 3
    if m.size < n_par + 1:
        raise ConfigError(f"covariance fit needs {n_par + 1} or more flat pairs, got {m.size}; take flat "
                          f"pairs "
                          f"at more levels or set cubic=False")
    sigma = np.maximum(c[:, 0, 0], 1.0) / np.sqrt(npix)
    powers = [np.ones_like(m), m, m * m] + ([m**3] if cubic else [])
    design = np.stack(powers, axis=1) / sigma[:, None]
    a = np.zeros(c.shape[1:])
    err = np.zeros(c.shape[1:])
    chi2, dof = 0.0, 0
    for (i, j), _ in np.ndenumerate(a):  # a few dozen lags, each a small least-squares fit
        cols = [0, 1, 2, 3][:n_par] if (i, j) == (0, 0) else [0, 2, 3][: n_par - 1]
        x = design[:, cols]
        scale = np.sqrt(2.0) if (i, j) == (0, 0) else 1.0
        y = c[:, i, j] / sigma / scale
        coef, *_ = np.linalg.lstsq(x / scale, y, rcond=None)
        cov = np.linalg.inv((x / scale).T @ (x / scale))
        k = cols.index(2)
        a[i, j], err[i, j] = coef[k], np.sqrt(cov[k, k])
        resid = y - (x / scale) @ coef
        chi2 += float(resid @ resid)
        dof += m.size - len(cols)
    return AreaFit(a, err, chi2 / max(dof, 1), int(m.size))

"""Photon transfer curve: gain and read noise per amplifier from flat and bias pairs.

For a pair of flats at the same level, ``var(f1 - f2) / 2`` removes the fixed pattern (PRNU)
and leaves the temporal noise ``var = mean / g + rn_adu**2`` (ADU, overscan subtracted).  The
fit over several levels is a polynomial ``var = rn_adu^2 + mean / g + c mean^2`` (the quadratic
term absorbs non-linearity and pixel correlations), weighted by the expected scatter of each
variance.  The read noise comes from a bias pair (``std(b1 - b2) / sqrt(2)``), which is more
precise than the intercept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pachon.core.errors import ConfigError

__all__ = ["PtcResult", "pair_statistics", "fit_ptc", "read_noise_from_bias_pair"]

log = logging.getLogger(__name__)


@dataclass
class PtcResult:
    """Photon transfer fit of one amplifier (gain e-/ADU, read noise e-)."""

    gain: float
    read_noise: float
    quadratic: float
    means: np.ndarray
    variances: np.ndarray


def _clipped(values: np.ndarray, sigma: float = 5.0) -> np.ndarray:
    med = np.median(values)
    mad = 1.4826 * np.median(np.abs(values - med))
    return values[np.abs(values - med) <= sigma * max(mad, 1e-12)]


def pair_statistics(flat1: np.ndarray, flat2: np.ndarray) -> tuple[float, float]:
    """Mean signal and temporal variance (ADU) of one amplifier from a pair of flats."""
    a, b = np.asarray(flat1, float).ravel(), np.asarray(flat2, float).ravel()
    if a.shape != b.shape:
        raise ConfigError(f"flat pair of different shapes {a.shape} and {b.shape}")
    ratio = np.mean(a) / np.mean(b)  # equalise small level differences between the exposures
    diff = _clipped(a - ratio * b)
    mean = 0.5 * (np.mean(a) + np.mean(b))
    return float(mean), float(np.var(diff) / 2.0)


def read_noise_from_bias_pair(bias1: np.ndarray, bias2: np.ndarray) -> float:
    """Read noise (ADU) from two bias frames of one amplifier (2-D data sections).

    The median of each row of the difference is removed first, so row-correlated bias
    offsets (and the noise of a per-row overscan estimate) do not count as read noise.
    """
    d = np.asarray(bias1, float) - np.asarray(bias2, float)
    if d.ndim == 2:
        d = d - np.median(d, axis=1, keepdims=True)
    diff = _clipped(d.ravel())
    return float(np.std(diff) / np.sqrt(2.0))


def fit_ptc(means: Sequence[float], variances: Sequence[float], *, read_noise_adu: float | None = None,
            max_mean: float | None = None) -> PtcResult:
    """Fit ``var = rn^2 + mean / g + c mean^2`` (ADU) and return gain and read noise (e-).

    ``read_noise_adu`` (from a bias pair) fixes the intercept when given.
    """
    m, v = np.asarray(means, float), np.asarray(variances, float)
    ok = np.isfinite(m) & np.isfinite(v) & (m > 0)
    if max_mean is not None:
        ok &= m <= max_mean
    m, v = m[ok], v[ok]
    if m.size < 3:
        raise ConfigError(f"photon transfer curve needs flat pairs at three or more levels, got {m.size}")
    w = 1.0 / np.maximum(v, 1e-6)  # the scatter of a variance estimate grows with the variance
    if read_noise_adu is not None:
        a = np.stack([m, m * m], axis=1)
        coef, *_ = np.linalg.lstsq(a * w[:, None], (v - read_noise_adu**2) * w, rcond=None)
        slope, quad, rn2 = coef[0], coef[1], read_noise_adu**2
    else:
        a = np.stack([np.ones_like(m), m, m * m], axis=1)
        coef, *_ = np.linalg.lstsq(a * w[:, None], v * w, rcond=None)
        rn2, slope, quad = coef
    if slope <= 0:
        raise ConfigError(f"photon transfer curve has a non-positive slope {slope:.3g}; check the flats")
    gain = 1.0 / slope
    return PtcResult(float(gain), float(np.sqrt(max(rn2, 0.0)) * gain), float(quad), m, v)

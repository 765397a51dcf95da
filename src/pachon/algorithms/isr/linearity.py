"""Linearity correction: a polynomial response per amplifier, inverted exactly.

Model (electrons): ``measured = true + c2 * true**2 + c3 * true**3 + ...`` with coefficients
``coeffs[amp] = (c2, c3, ...)``.  :func:`linearize` inverts it with Newton steps on whole
arrays (converged to machine precision in three to four steps for realistic
non-linearities).
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["apply_nonlinearity", "linearize"]

log = logging.getLogger(__name__)


def _poly(x: np.ndarray, coeffs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``f(x) = x + sum c_k x^k`` (k from 2) and its derivative."""
    f = x.copy()
    df = np.ones_like(x)
    p = x.copy()
    for k, c in enumerate(coeffs, start=2):
        df += k * c * p
        p = p * x
        f += c * p
    return f, df


def apply_nonlinearity(true: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """The forward model: measured signal for a true signal (electrons)."""
    return _poly(np.asarray(true, dtype=np.float64), np.atleast_1d(np.asarray(coeffs, float)))[0]


def linearize(measured: np.ndarray, coeffs: np.ndarray, *, n_iter: int = 6) -> np.ndarray:
    """Invert the polynomial response: the true signal whose measured value is ``measured``."""
    y = np.asarray(measured, dtype=np.float64)
    c = np.atleast_1d(np.asarray(coeffs, dtype=np.float64))
    if not np.any(c):
        return y.copy()
    x = y.copy()
    for _ in range(n_iter):
        f, df = _poly(x, c)
        x -= (f - y) / np.where(np.abs(df) > 1e-6, df, 1e-6)
    return x

"""Linearity from flats at several exposure times under a constant lamp.

The true signal is proportional to the exposure time, ``true = k t``; the measured mean is
``m = k t + c2 (k t)^2 + c3 (k t)^3``.  A polynomial fit ``m = a1 t + a2 t^2 + a3 t^3`` gives
``k = a1``, ``c2 = a2 / a1^2``, ``c3 = a3 / a1^3`` (the coefficients :mod:`pachon.algorithms.isr.linearity`
inverts).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from pachon.core.errors import ConfigError

__all__ = ["fit_linearity"]

log = logging.getLogger(__name__)


def fit_linearity(exposure_times: Sequence[float], means: Sequence[float], *, order: int = 2) -> np.ndarray:
    """Polynomial non-linearity coefficients ``(c2, ..., c_order)`` of one amplifier (electrons)."""
    t, m = np.asarray(exposure_times, float), np.asarray(means, float)
    if t.size < order + 1:
        raise ConfigError(f"linearity of order {order} needs {order + 1} or more flat levels, got {t.size}")
    a = np.stack([t**k for k in range(1, order + 1)], axis=1)
    coef, *_ = np.linalg.lstsq(a / m[:, None], np.ones_like(m), rcond=None)  # relative residuals
    k = coef[0]
    return np.array([coef[j] / k ** (j + 1) for j in range(1, order)])

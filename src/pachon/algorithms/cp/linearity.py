"""Linearity from flats at several exposure times under a constant lamp.

The true signal is proportional to the exposure time, ``true = k t``; the measured mean is
``m = b + k t + c2 (k t)^2 + c3 (k t)^3``.  The fit ``m = a0 + a1 t + a2 t^2 + a3 t^3`` gives
``k = a1``, ``c2 = a2 / a1^2``, ``c3 = a3 / a1^3`` (the coefficients
:mod:`pachon.algorithms.isr.linearity` inverts).

The constant ``a0`` matters: a flat measured with only the overscan subtracted keeps whatever
the bias frame holds beyond the overscan level (a column gradient, an offset of a few
electrons), and a shutter that opens late or early adds ``k dt``.  Without ``a0`` such an
offset, a relative error of ``b / (k t)``, is largest at the low end of the ramp where the
non-linearity is smallest, and the fit folds it into ``c2``: two electrons of bias residual made
``c2`` 25% too large on a ramp to 32,000 e- (measured on the simulator, whose bias has a
3 ADU column gradient).  Residuals are relative (lamp drifts scale with the signal); the errors
of the coefficients come from the scatter about the fit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pachon.core.errors import ConfigError

__all__ = ["LinearityFit", "fit_linearity", "fit_linearity_curve"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinearityFit:
    """Polynomial non-linearity of one amplifier.

    Attributes
    ----------
    coefficients, errors
        ``(c2, ..., c_order)`` (electrons to the power ``1 - j``) and their 1-sigma errors.
    rate
        Signal per unit exposure time ``k`` (electrons per second).
    offset
        The constant ``b`` (electrons): bias residual plus ``k`` times the shutter offset.
    """

    coefficients: np.ndarray
    errors: np.ndarray
    rate: float
    offset: float


def fit_linearity_curve(exposure_times: Sequence[float], means: Sequence[float], *, order: int = 2,
                        fit_offset: bool = True) -> LinearityFit:
    """Fit the response of one amplifier (means in electrons) against exposure time.

    Parameters
    ----------
    exposure_times
        Seconds, one per flat level.
    means
        Mean signal of the amplifier at each level (electrons, overscan or bias subtracted).
    order
        Highest power of the polynomial (2: quadratic non-linearity).
    fit_offset
        Fit the constant term (see the module docstring); False forces the curve through 0.

    Raises
    ------
    ConfigError
        Fewer levels than free parameters plus one, or a non-positive mean.
    """
    t, m = np.asarray(exposure_times, float), np.asarray(means, float)
    n_par = order + int(fit_offset)
    if order < 2:
        raise ConfigError(f"linearity order must be 2 or more, got {order}")
    if t.size < n_par + 1:
        raise ConfigError(f"linearity of order {order} needs {n_par + 1} or more flat levels, got {t.size}")
    if np.any(m <= 0) or not np.all(np.isfinite(m)):
        raise ConfigError(f"linearity: flat means must be finite and positive, got {m.tolist()}")
    powers = range(0 if fit_offset else 1, order + 1)
    a = np.stack([t**p for p in powers], axis=1) / m[:, None]  # relative residuals
    coef, *_ = np.linalg.lstsq(a, np.ones_like(m), rcond=None)
    resid = np.ones_like(m) - a @ coef
    dof = t.size - n_par
    cov = np.sum(resid**2) / max(dof, 1) * np.linalg.pinv(a.T @ a)
    j0 = int(fit_offset)
    k = coef[j0]
    poly = coef[j0 + 1 :]
    p = np.arange(2, order + 1)
    c = poly / k**p
    # error propagation of c_p = a_p / a1^p (covariance of a1 and a_p included)
    errs = []
    for i, pw in enumerate(p):
        grad = np.zeros(coef.size)
        grad[j0] = -pw * poly[i] / k ** (pw + 1)
        grad[j0 + 1 + i] = 1.0 / k**pw
        errs.append(np.sqrt(max(float(grad @ cov @ grad), 0.0)))
    return LinearityFit(c, np.asarray(errs), float(k), float(coef[0]) if fit_offset else 0.0)


def fit_linearity(exposure_times: Sequence[float], means: Sequence[float], *, order: int = 2,
                  fit_offset: bool = True) -> np.ndarray:
    """Polynomial non-linearity coefficients ``(c2, ..., c_order)`` of one amplifier (electrons).

    See :func:`fit_linearity_curve` (which also gives the errors, the rate and the offset).
    """
    return fit_linearity_curve(exposure_times, means, order=order, fit_offset=fit_offset).coefficients

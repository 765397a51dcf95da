"""Trailed-source fit: the PSF convolved with a line segment (a moving object during the exposure).

The model is computed in Fourier space: ``F P(k) sinc(L k.u) exp(-2 pi i k.c)`` where ``P``
is the PSF's transform, ``u = (cos theta, sin theta)`` the trail direction, ``L`` its length
and ``c`` its centre; this is exact for any pixelized PSF (no Gaussian approximation).  The
centre, length and angle are fitted by ``scipy.optimize.least_squares`` with the flux solved
linearly at each step; errors come from the Jacobian at the solution.  Angles are in degrees
counter-clockwise from +x, in ``[0, 180)`` (a trail has no direction).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["TrailFit", "fit_trail", "trail_model"]

_log = logging.getLogger(__name__)


@dataclass
class TrailFit:
    """Result of :func:`fit_trail` (centre in parent pixels)."""

    x: float
    y: float
    length: float
    angle: float
    flux: float
    x_err: float
    y_err: float
    length_err: float
    angle_err: float
    flux_err: float
    chi2: float
    n_data: int
    success: bool


def _psf_hat(psf: np.ndarray, size: int) -> np.ndarray:
    k = psf.shape[0]
    if k > size:  # kernel wider than the padded stamp: keep its centre (odd size)
        c, h = k // 2, (size - 1) // 2
        psf = psf[c - h : c + h + 1, c - h : c + h + 1]
        k = psf.shape[0]
    pad = np.zeros((size, size))
    pad[:k, :k] = psf
    return np.fft.rfft2(np.roll(pad, (-(k // 2), -(k // 2)), axis=(0, 1)))


def trail_model(
    psf_hat: np.ndarray, size: int, half: int, dx: float, dy: float, length: float, angle_deg: float
) -> np.ndarray:
    """Unit-flux trail centred at offset ``(dx, dy)`` from the centre of a ``2 half + 1`` stamp."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    a = math.radians(angle_deg)
    proj = fx * math.cos(a) + fy * math.sin(a)
    spec = psf_hat * np.sinc(length * proj) * np.exp(-2j * np.pi * (fx * dx + fy * dy))
    img = np.fft.irfft2(spec, s=(size, size))
    return np.roll(img, (half, half), axis=(0, 1))[: 2 * half + 1, : 2 * half + 1]


def fit_trail(
    stamp: np.ndarray,
    var: np.ndarray,
    psf: np.ndarray,
    origin: tuple[int, int],
    length0: float,
    angle0: float,
) -> TrailFit:
    """Fit a trailed PSF on ``stamp`` (central pixel at parent ``origin``).

    Parameters
    ----------
    stamp, var
        Difference pixels and variance (NaN: ignored).
    psf
        PSF kernel of the difference.
    origin
        Parent pixel of the stamp's central pixel.
    length0, angle0
        Starting length (pixels) and angle (degrees), e.g. from the second moments.
    """
    from scipy.optimize import least_squares

    half = stamp.shape[0] // 2
    size = 2 * (2 * half + 1)
    ph = _psf_hat(psf, size)
    good = np.isfinite(stamp) & np.isfinite(var) & (var > 0)
    d = np.where(good, stamp, 0.0)
    sw = np.where(good, 1.0 / np.sqrt(np.where(good, var, 1.0)), 0.0)

    def flux_and_model(p: np.ndarray) -> tuple[float, np.ndarray]:
        m = trail_model(ph, size, half, p[0], p[1], abs(p[2]), p[3])
        mw = m * sw
        den = float((mw**2).sum())
        return (float((mw * d * sw).sum()) / den if den > 0 else 0.0), m

    def resid(p: np.ndarray) -> np.ndarray:
        f, m = flux_and_model(p)
        return ((d - f * m) * sw).ravel()

    p0 = np.array([0.0, 0.0, max(length0, 1.0), angle0])
    sol = least_squares(resid, p0, x_scale=np.array([0.5, 0.5, 1.0, 5.0]), max_nfev=300)
    flux, m = flux_and_model(sol.x)
    # errors: Jacobian of the residuals in the 4 non-linear parameters plus the flux
    jac = np.column_stack([sol.jac, -(m * sw).ravel()])
    try:
        cov = np.linalg.inv(jac.T @ jac)
        errs = np.sqrt(np.clip(np.diag(cov), 0, None))
    except np.linalg.LinAlgError:
        errs = np.full(5, np.nan)
    angle = float(sol.x[3]) % 180.0
    return TrailFit(
        origin[0] + float(sol.x[0]),
        origin[1] + float(sol.x[1]),
        abs(float(sol.x[2])),
        angle,
        flux,
        float(errs[0]),
        float(errs[1]),
        float(errs[2]),
        float(errs[3]),
        float(errs[4]),
        float(2 * sol.cost),
        int(good.sum()),
        bool(sol.success),
    )

"""The optical ghost model from bright-star exposures.

The model (:class:`~pachon.algorithms.isr.config.GhostModel`, used by ISR's ghost masking):
a star at focal-plane position ``f`` (mm) makes a uniform ring centred on ``scale * f``, of
outer radius ``radius_mm`` and inner radius ``inner_fraction * radius_mm``, holding
``flux_fraction`` of the star's flux.

Measurement, star by star (:func:`measure_ghost`), on an image in electrons from which the sky
and the stars themselves have been subtracted (with the PSF model: the ghost is what is left):

1. coarse: the ring templates of a few trial radii are cross-correlated (FFT) with the window
   where the ghost can lie (centres ``s * f`` for ``s`` in ``scale_range``); the best
   normalised peak gives a starting centre and radius;
2. fine: a least-squares fit of a soft-edged ring (centre, radius, inner fraction; flux and a
   constant background solved linearly at every step) to the cutout around it.

:func:`fit_ghost_model` combines the measurements: ``scale`` from the least-squares fit of
ghost positions (mm) against star positions through the origin, radius and inner fraction as
medians, and ``flux_fraction`` as the flux-weighted ratio of ghost to star fluxes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pachon.algorithms.isr.config import GhostModel
from pachon.core.errors import ConfigError

__all__ = ["GhostMeasurement", "measure_ghost", "fit_ghost_model"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GhostMeasurement:
    """One ghost: its star (focal plane, mm; flux, electrons) and the fitted ring (pixels)."""

    star_fx: float
    star_fy: float
    star_flux: float
    x: float
    y: float
    radius_px: float
    inner_fraction: float
    flux: float
    ghost_fx: float
    ghost_fy: float


def _ring(shape: tuple[int, int], cx: float, cy: float, radius: float, inner: float,
          soft: float = 0.35) -> np.ndarray:
    from scipy.special import expit

    yy, xx = np.indices(shape)
    r = np.hypot(xx - cx, yy - cy)
    return expit((radius - r) / soft) - expit((inner * radius - r) / soft)


def _coarse(window: np.ndarray, weight: np.ndarray, radii: np.ndarray,
            inner: float) -> tuple[float, float, float, float]:
    """Centre and radius of the best inverse-variance weighted matched-filter S/N."""
    from scipy.signal import fftconvolve

    best = (-np.inf, 0.0, 0.0, float(radii[0]))
    wd = window * weight
    for radius in radii:  # a handful of trial radii
        half = int(np.ceil(radius)) + 1
        t = _ring((2 * half + 1, 2 * half + 1), half, half, radius, inner)[::-1, ::-1]
        norm = fftconvolve(weight, t * t, mode="same")
        corr = fftconvolve(wd, t, mode="same") / np.sqrt(np.maximum(norm, 1e-30))
        k = int(np.argmax(corr))
        if corr.flat[k] > best[0]:
            y, x = divmod(k, window.shape[1])
            best = (float(corr.flat[k]), float(x), float(y), float(radius))
    return best


def measure_ghost(
    image: np.ndarray,
    detector: Any,
    star_fx: float,
    star_fy: float,
    star_flux: float,
    *,
    initial: GhostModel | None = None,
    scale_range: tuple[float, float] = (0.9, 1.1),
    variance: np.ndarray | None = None,
    bad: np.ndarray | None = None,
) -> GhostMeasurement | None:
    """Fit the ghost ring of one star; None when its window misses the detector.

    Parameters
    ----------
    image
        The detector image (electrons), sky and stars subtracted.
    detector
        The detector (for the focal plane ↔ pixel transforms and the pixel size).
    star_fx, star_fy, star_flux
        The star's focal-plane position (mm) and flux (electrons).
    initial
        Starting guess of the model (radius and inner fraction; the trial radii span 0.6 to
        1.5 times its radius).
    scale_range
        Where along ``s * f`` the ghost may be.
    variance
        Per-pixel variance (electrons²): pixels are weighted by its inverse, so the noise of
        the subtracted stars does not swamp the faint ring; uniform weights when None.
    bad
        Pixels to ignore (saturated cores, bleed trails).
    """
    from scipy.optimize import least_squares

    model = initial or GhostModel()
    img = np.asarray(image, float)
    weight = np.ones(img.shape) if variance is None else 1.0 / np.maximum(np.asarray(variance, float), 1e-12)
    if bad is not None:
        weight = np.where(bad, 0.0, weight)
    img = np.where(weight > 0, img, 0.0)
    pix = float(detector.pixel_size_mm)
    r0 = model.radius_mm / pix
    ends = np.array([[star_fx * s, star_fy * s] for s in scale_range])
    ex, ey = detector.focal_plane_to_pixel(ends[:, 0], ends[:, 1])
    pad = int(np.ceil(1.6 * r0)) + 4
    ny, nx = img.shape
    x0, x1 = max(int(np.floor(np.min(ex))) - pad, 0), min(int(np.ceil(np.max(ex))) + pad + 1, nx)
    y0, y1 = max(int(np.floor(np.min(ey))) - pad, 0), min(int(np.ceil(np.max(ey))) + pad + 1, ny)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    window = img[y0:y1, x0:x1]
    _, cx, cy, radius = _coarse(window - np.median(window), weight[y0:y1, x0:x1],
                                r0 * np.linspace(0.6, 1.5, 10), model.inner_fraction)
    half = int(np.ceil(1.3 * radius)) + 3
    cx0, cy0 = int(round(cx)) + x0, int(round(cy)) + y0
    sx0, sy0 = max(cx0 - half, 0), max(cy0 - half, 0)
    cut = img[sy0 : cy0 + half + 1, sx0 : cx0 + half + 1]
    sw = np.sqrt(weight[sy0 : cy0 + half + 1, sx0 : cx0 + half + 1])
    ok = sw > 0
    data, sw = cut[ok] * sw[ok], sw[ok]

    def solve(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ring = _ring(cut.shape, p[0], p[1], p[2], p[3])[ok]
        a = np.stack([ring * sw, sw], axis=1)
        coef, *_ = np.linalg.lstsq(a, data, rcond=None)
        return data - a @ coef, coef

    start = np.array([cx0 - sx0, cy0 - sy0, radius, model.inner_fraction], float)
    fit = least_squares(lambda p: solve(p)[0], start, x_scale=[1.0, 1.0, 1.0, 0.05],
                        bounds=([-np.inf, -np.inf, 2.0, 0.05], [np.inf, np.inf, 3 * r0, 0.95]))
    gx, gy, rad, inner = fit.x
    _, (amp, _) = solve(fit.x)
    flux = float(amp * _ring(cut.shape, gx, gy, rad, inner).sum())
    gx, gy = gx + sx0, gy + sy0
    fx, fy = detector.pixel_to_focal_plane(np.array(gx), np.array(gy))
    return GhostMeasurement(float(star_fx), float(star_fy), float(star_flux), float(gx), float(gy),
                            float(rad), float(inner), flux, float(fx), float(fy))


def fit_ghost_model(measurements: Sequence[GhostMeasurement], pixel_size_mm: float) -> GhostModel:
    """The ghost model that explains the measured ghosts (see the module docstring).

    Raises
    ------
    ConfigError
        No measurement, or all stars on the optical axis (the scale is then undetermined).
    """
    if not measurements:
        raise ConfigError("fit_ghost_model needs at least one measured ghost; observe bright stars")
    f = np.array([[m.star_fx, m.star_fy] for m in measurements])
    g = np.array([[m.ghost_fx, m.ghost_fy] for m in measurements])
    ff = float(np.sum(f * f))
    if ff <= 0:
        raise ConfigError("fit_ghost_model: every star is on the optical axis; the scale is undetermined")
    scale = float(np.sum(f * g) / ff)
    star = np.array([m.star_flux for m in measurements])
    ghost = np.array([m.flux for m in measurements])
    model = GhostModel(
        scale=scale,
        radius_mm=float(np.median([m.radius_px for m in measurements]) * pixel_size_mm),
        inner_fraction=float(np.median([m.inner_fraction for m in measurements])),
        flux_fraction=float(ghost.sum() / star.sum()),
    )
    log.info("ghost model from %d ghosts: %s", len(measurements), model)
    return model

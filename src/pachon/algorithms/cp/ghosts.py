"""The optical ghost model from bright-star exposures.

The model (:class:`~pachon.algorithms.isr.config.GhostModel`, used by ISR's ghost masking):
a star at focal-plane position ``f`` (mm) makes a uniform ring centred on ``scale * f``, of
outer radius ``radius_mm`` and inner radius ``inner_fraction * radius_mm``, holding
``flux_fraction`` of the star's flux.

Measurement, star by star (:func:`measure_ghost`), on an image in electrons from which the sky
has been subtracted.  The star's own wings are far brighter than its ghost where the ring lies
(on the test camera the ring's centre is ~10 px from the star and the wings are 10-40 times the
ring's surface brightness there), so they are subtracted first: either beforehand (a PSF model,
when one is known) or, given the star's position (``star_xy``), with a bright-star profile
model fitted together with the ring: a sum of power laws ``r^-p`` of the distance to the star
(``wing_powers``, 2 to 4 by default), smooth where the ring has sharp edges, so the two separate:

1. coarse: the ring templates of a few trial radii are cross-correlated (FFT) with the window
   where the ghost can lie (centres ``s * f`` for ``s`` in ``scale_range``); the best
   normalised peak gives a starting centre and radius;
2. fine: a least-squares fit of a soft-edged ring (centre, radius, inner fraction; flux, a
   constant background and the wing amplitudes solved linearly at every step) to the cutout
   around it.

The star's flux, needed for ``flux_fraction``, comes from the image (:func:`star_flux`): the
sum over a wide aperture and over the bleed trail of the saturated core (charge spilled along
the column is conserved), minus the sky.

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

__all__ = ["GhostMeasurement", "measure_ghost", "fit_ghost_model", "star_flux", "wing_basis"]

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


def wing_basis(shape: tuple[int, int], x: float, y: float, powers: Sequence[float], r_ref: float,
               *, r_min: float = 2.0) -> np.ndarray:
    """``(len(powers), *shape)`` profiles ``(r / r_ref)^-p`` about ``(x, y)`` (r clipped at ``r_min``)."""
    yy, xx = np.indices(shape)
    r = np.maximum(np.hypot(xx - x, yy - y), r_min) / r_ref
    return np.stack([r ** -float(p) for p in powers]) if len(powers) else np.zeros((0, *shape))


def _fit_linear(data: np.ndarray, columns: list[np.ndarray], sw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted linear least squares of ``data`` (already times ``sw``) on ``columns``: residual, coef."""
    a = np.stack([c * sw for c in columns], axis=1)
    coef, *_ = np.linalg.lstsq(a, data, rcond=None)
    return data - a @ coef, coef


def _sources(resid: np.ndarray, weight: np.ndarray, nsigma: float) -> np.ndarray:
    """Pixels of other sources: the residual smoothed (Gaussian, 1 px) above ``nsigma``, grown 2 px."""
    from scipy.ndimage import binary_dilation, gaussian_filter

    good = weight > 0
    sigma = np.sqrt(1.0 / np.where(good, weight, np.inf))
    smooth = gaussian_filter(np.where(good, resid, 0.0), 1.0)
    # a 1-pixel Gaussian averages ~4*pi pixels: the noise drops by sqrt(4 pi)
    hot = good & (smooth > nsigma * sigma / np.sqrt(4 * np.pi))
    return binary_dilation(hot, iterations=2)


def _coarse(window: np.ndarray, weight: np.ndarray, radii: np.ndarray, inner: float,
            allowed: np.ndarray | None = None) -> tuple[float, float, float, float]:
    """Centre and radius of the best inverse-variance weighted matched-filter S/N (centres in
    ``allowed`` only, when given)."""
    from scipy.signal import fftconvolve

    best = (-np.inf, 0.0, 0.0, float(radii[0]))
    wd = window * weight
    for radius in radii:  # a handful of trial radii
        half = int(np.ceil(radius)) + 1
        t = _ring((2 * half + 1, 2 * half + 1), half, half, radius, inner)[::-1, ::-1]
        norm = fftconvolve(weight, t * t, mode="same")
        corr = fftconvolve(wd, t, mode="same") / np.sqrt(np.maximum(norm, 1e-30))
        if allowed is not None:
            corr = np.where(allowed, corr, -np.inf)
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
    star_xy: tuple[float, float] | None = None,
    wing_powers: Sequence[float] = (2.0, 3.0, 4.0),
    source_sigma: float | None = None,
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
    star_xy
        The star's pixel position: its wings are fitted with the ring (see the module
        docstring); None when the image has no star left in it.
    wing_powers
        Powers of the wing profile model.
    source_sigma
        Leave out the other sources of the window: pixels whose smoothed residual (after the
        wings) is above this many sigma, grown by two pixels; None keeps every pixel.
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
    wwin = weight[y0:y1, x0:x1]
    powers = list(wing_powers) if star_xy is not None else []
    if powers:
        # a first wing model (without the ring) so that the matched filter sees the ring
        wings = wing_basis(window.shape, star_xy[0] - x0, star_xy[1] - y0, powers, r0)
        for _ in range(2):  # fit, mask the other sources, fit again
            use = wwin > 0
            sw = np.sqrt(wwin[use])
            _, coef = _fit_linear(window[use] * sw, [np.ones(sw.size), *(w[use] for w in wings)], sw)
            resid = window - coef[0] - np.tensordot(coef[1:], wings, axes=1)
            if source_sigma is not None:
                found = _sources(resid, wwin, source_sigma)
                wwin = np.where(found, 0.0, wwin)
                weight[y0:y1, x0:x1] = wwin
        window = resid
    elif source_sigma is not None:
        wwin = np.where(_sources(window - np.median(window[wwin > 0]), wwin, source_sigma), 0.0, wwin)
        weight[y0:y1, x0:x1] = wwin
    # ghost centres allowed by the scale range: near the segment between its two ends
    (ax, bx), (ay, by) = ex - x0, ey - y0
    seg = np.array([bx - ax, by - ay])
    length = float(np.hypot(*seg))
    yy, xx = np.indices(window.shape)
    u = np.clip(((xx - ax) * seg[0] + (yy - ay) * seg[1]) / max(length**2, 1e-12), 0.0, 1.0)
    allowed = np.hypot(xx - ax - u * seg[0], yy - ay - u * seg[1]) <= max(4.0, 0.25 * length)
    _, cx, cy, radius = _coarse(window - np.median(window[wwin > 0]), wwin,
                                r0 * np.linspace(0.6, 1.5, 10), model.inner_fraction, allowed)
    log.debug("coarse ghost: centre (%.1f, %.1f), radius %.1f px", cx + x0, cy + y0, radius)
    half = int(np.ceil(1.3 * radius)) + 3
    cx0, cy0 = int(round(cx)) + x0, int(round(cy)) + y0
    sx0, sy0 = max(cx0 - half, 0), max(cy0 - half, 0)
    cut = img[sy0 : cy0 + half + 1, sx0 : cx0 + half + 1]
    sw = np.sqrt(weight[sy0 : cy0 + half + 1, sx0 : cx0 + half + 1])
    ok = sw > 0
    data, sw = cut[ok] * sw[ok], sw[ok]
    extra = [] if not powers else list(
        wing_basis(cut.shape, star_xy[0] - sx0, star_xy[1] - sy0, powers, r0)[:, ok])

    def solve(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ring = _ring(cut.shape, p[0], p[1], p[2], p[3])[ok]
        return _fit_linear(data, [ring, np.ones(sw.size), *extra], sw)

    start = np.array([cx0 - sx0, cy0 - sy0, radius, model.inner_fraction], float)
    fit = least_squares(lambda p: solve(p)[0], start, x_scale=[1.0, 1.0, 1.0, 0.05],
                        bounds=([-np.inf, -np.inf, 2.0, 0.05], [np.inf, np.inf, 3 * r0, 0.95]))
    gx, gy, rad, inner = fit.x
    amp = solve(fit.x)[1][0]
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


def star_flux(image: np.ndarray, x: float, y: float, *, radius: float, saturated: np.ndarray | None = None,
              bleed_columns: tuple[float, float] | None = None, bad: np.ndarray | None = None) -> float:
    """Flux (electrons) of a bright, saturated star: charge summed over a disc and its bleed trail.

    Parameters
    ----------
    image
        Detector image (electrons).
    x, y
        The star's centre (pixels).
    radius
        Radius of the disc (pixels); wide enough that the wings beyond it are negligible.
    saturated
        SAT mask: the bleed trail (saturated pixels of the columns ``bleed_columns``, three
        pixels more up and down) is added to the disc.
    bleed_columns
        First and one-past-last column of the star's saturated pixels.
    bad
        Pixels to leave out of the sky estimate (other saturated stars, defects).

    Notes
    -----
    The sky is the median of an annulus of 1.3 to 1.8 ``radius`` outside the bleed columns.
    Charge that a bleed trail spills off the detector is lost, so pick stars whose trail stays
    on it (the caller checks the trail's extent).
    """
    img = np.asarray(image, float)
    ny, nx = img.shape
    yy, xx = np.indices(img.shape)
    r = np.hypot(xx - x, yy - y)
    aperture = r <= radius
    other = np.zeros(img.shape, bool) if bad is None else np.asarray(bad, bool).copy()
    if saturated is not None and bleed_columns is not None:
        c0, c1 = max(int(bleed_columns[0]) - 1, 0), min(int(bleed_columns[1]) + 1, nx)
        rows = np.flatnonzero(np.asarray(saturated, bool)[:, c0:c1].any(axis=1))
        if rows.size:
            r0, r1 = max(int(rows.min()) - 3, 0), min(int(rows.max()) + 4, ny)
            aperture[r0:r1, c0:c1] = True
        other[:, c0:c1] = True
    annulus = (r > 1.3 * radius) & (r < 1.8 * radius) & ~other
    if annulus.sum() < 50:
        raise ConfigError(f"star_flux: star at ({x:.0f}, {y:.0f}) has no sky annulus on the detector; "
                          f"use a smaller radius than {radius:.0f} px or a star nearer the middle")
    sky = float(np.median(img[annulus]))
    return float(np.sum(img[aperture] - sky))

"""The optical ghost model fitted jointly to the bright stars of many exposures.

One star's ghost holds ~1e-3 of its light spread over thousands of pixels under the star's own
wings: alone, it is a 5-10 sigma feature that a matched filter over a wide search window can
miss for a chance peak.  The model's parameters are common to every star, so
:func:`fit_ghost_model_joint` fits them to all stars at once:

1. per star (:func:`prepare_star`): a cutout around the star, sky subtracted; the star's wings
   (a sum of power laws of the distance to the star, see :func:`~.ghosts.wing_basis`) and a
   constant fitted and subtracted, with the other sources of the cutout found in the residual
   and left out (two passes);
2. coarse: on a grid of scale and radius, the ring of each star is placed at ``scale * f`` and
   the chi-square gain of one common flux fraction (each ghost's flux proportional to its
   star's) summed over the stars; the best grid point starts
3. fine: a least-squares fit of scale, radius and inner fraction to every cutout together,
   each star with its own linear ring amplitude, constant and wing amplitudes (the wings are
   refitted with the ring, so the ring does not leak into them).

The flux fraction is the ratio of the summed ghost fluxes to the summed star fluxes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pachon.algorithms.cp.ghosts import GhostMeasurement, _fit_linear, _ring, _sources
from pachon.algorithms.isr.config import GhostModel
from pachon.core.errors import ConfigError

__all__ = ["StarCutout", "prepare_star", "fit_ghost_model_joint"]

log = logging.getLogger(__name__)


@dataclass
class StarCutout:
    """One bright star ready for the ghost fit: the antisymmetric part of its neighbourhood.

    ``data`` is ``I(x) - I(2c - x)`` about the star centre ``c`` (rounded to a half pixel, so
    the reflection maps pixels onto pixels), ``weight`` its inverse variance (zero where either
    pixel is bad or holds another source), ``gradients`` the two basis images that absorb the
    rounding of the centre (the gradient of the symmetric part).
    """

    data: np.ndarray
    weight: np.ndarray
    x0: int
    y0: int
    centre_x: float
    centre_y: float
    star_fx: float
    star_fy: float
    star_flux: float
    gradients: np.ndarray


def prepare_star(image: np.ndarray, variance: np.ndarray, bad: np.ndarray, detector: Any, star_x: float,
                 star_y: float, star_flux: float, *, half_size: int,
                 source_sigma: float = 4.0) -> StarCutout | None:
    """Cut out the antisymmetric part of one star's neighbourhood (see the module docstring).

    ``bad`` marks pixels to ignore (the saturated core and bleed trail, defects).  None when the
    square of ``half_size`` about the star is not wholly on the detector.
    """
    ny, nx = image.shape
    mx, my = int(round(2 * star_x)), int(round(2 * star_y))  # 2c, an integer
    x0, y0 = mx // 2 - half_size, my // 2 - half_size
    x1, y1 = mx - x0 + 1, my - y0 + 1  # so that index i reflects onto (2c - x0) - (i) within the cut
    if x0 < 0 or y0 < 0 or x1 > nx or y1 > ny:
        return None
    data = np.asarray(image[y0:y1, x0:x1], float)
    var = np.asarray(variance[y0:y1, x0:x1], float)
    badc = np.asarray(bad[y0:y1, x0:x1], bool) | ~np.isfinite(data) | ~(var > 0)
    flip = (slice(None, None, -1), slice(None, None, -1))
    anti = data - data[flip]
    weight = np.where(badc | badc[flip], 0.0, 1.0 / np.where(var > 0, var + var[flip], 1.0))
    found = _sources(anti, weight, source_sigma) | _sources(-anti, weight, source_sigma)
    weight = np.where(found | found[flip], 0.0, weight)
    sym = 0.5 * (data + data[flip])
    from scipy.ndimage import gaussian_filter

    gy, gx = np.gradient(gaussian_filter(np.where(badc | badc[flip], 0.0, sym), 0.7))
    fx, fy = detector.pixel_to_focal_plane(np.array(mx / 2), np.array(my / 2))
    return StarCutout(np.where(weight > 0, anti, 0.0), weight, x0, y0, mx / 2, my / 2, float(fx), float(fy),
                      float(star_flux), np.stack([gx, gy]))


def _centre(c: StarCutout, detector: Any, scale: float) -> tuple[float, float]:
    gx, gy = detector.focal_plane_to_pixel(np.array(c.star_fx * scale), np.array(c.star_fy * scale))
    return float(gx) - c.x0, float(gy) - c.y0


def _template(c: StarCutout, detector: Any, scale: float, radius: float, inner: float) -> np.ndarray:
    """Antisymmetric part of the ghost ring (unit surface brightness) in the cutout."""
    cx, cy = _centre(c, detector, scale)
    ring = _ring(c.data.shape, cx, cy, radius, inner)
    return ring - ring[::-1, ::-1]


def _star_solve(c: StarCutout, template: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    use = c.weight > 0
    sw = np.sqrt(c.weight[use])
    return _fit_linear(c.data[use] * sw, [template[use], *(g[use] for g in c.gradients)], sw)


def fit_ghost_model_joint(
    cutouts: Sequence[StarCutout],
    detector: Any,
    *,
    initial: GhostModel | None = None,
    scale_range: tuple[float, float] = (0.9, 1.1),
    radius_range: tuple[float, float] = (0.5, 1.6),
    n_grid: int = 21,
) -> tuple[GhostModel, list[GhostMeasurement]]:
    """Fit the ghost model to the prepared stars of one detector (see the module docstring).

    Parameters
    ----------
    cutouts
        From :func:`prepare_star`.
    detector
        The detector (focal plane ↔ pixels, pixel size).
    initial
        Starting radius and inner fraction (the grid spans ``radius_range`` times its radius).
    scale_range
        Scales searched by the coarse grid (and the bounds of the fine fit).
    radius_range
        Radii searched, in units of the initial radius (and the bounds of the fine fit).
    n_grid
        Scale steps of the grid.

    Returns
    -------
    model, measurements
        The model, and each star's fitted ghost (centre, flux) under it.

    Raises
    ------
    ConfigError
        No star, or every star on the optical axis (the scale is then undetermined).
    """
    from scipy.optimize import least_squares

    if not cutouts:
        raise ConfigError("fit_ghost_model_joint needs at least one bright star; observe bright stars")
    if all(np.hypot(c.star_fx, c.star_fy) == 0 for c in cutouts):
        raise ConfigError("fit_ghost_model_joint: every star is on the optical axis; the scale is "
                          "undetermined")
    model = initial or GhostModel()
    pix = float(detector.pixel_size_mm)
    r0 = model.radius_mm / pix
    flux = np.array([c.star_flux for c in cutouts])
    best = (-np.inf, 1.0, r0)
    prepared = []
    for c in cutouts:  # weighted data and an orthonormal basis of the centring terms, once per star
        use = c.weight > 0
        sw = np.sqrt(c.weight[use])
        q, _ = np.linalg.qr(np.stack([g[use] * sw for g in c.gradients], axis=1))
        prepared.append((use, sw, q, c.data[use] * sw))
    for scale in np.linspace(*scale_range, n_grid):  # grid of scale x radius; pixels vectorized
        for radius in r0 * np.linspace(*radius_range, 12):
            area = np.pi * radius**2 * (1 - model.inner_fraction**2)
            num = den = 0.0
            for c, f, (use, sw, q, dw) in zip(cutouts, flux, prepared, strict=True):
                # the ghost of a common fraction of the star's flux, less what the centring terms take
                tw = _template(c, detector, scale, radius, model.inner_fraction)[use] * (sw * f / area)
                tw -= q @ (q.T @ tw)
                num += float(tw @ dw)
                den += float(tw @ tw)
            score = num * abs(num) / den if den > 0 else -np.inf
            if score > best[0]:
                best = (score, float(scale), float(radius))
    log.info("ghost coarse fit: scale %.3f, radius %.1f px from %d stars", best[1], best[2], len(cutouts))

    def residuals(p: np.ndarray) -> np.ndarray:
        return np.concatenate([_star_solve(c, _template(c, detector, *p))[0] for c in cutouts])

    start = np.array([best[1], best[2], model.inner_fraction])
    fit = least_squares(residuals, start, x_scale=[0.005, 1.0, 0.05],
                        bounds=([scale_range[0], radius_range[0] * r0, 0.05],
                                [scale_range[1], radius_range[1] * r0, 0.95]))
    scale, radius, inner = (float(v) for v in fit.x)
    area = np.pi * radius**2 * (1 - inner**2)
    measurements = []
    for c in cutouts:
        cx, cy = _centre(c, detector, scale)
        amp = float(_star_solve(c, _template(c, detector, scale, radius, inner))[1][0])
        measurements.append(GhostMeasurement(c.star_fx, c.star_fy, c.star_flux, cx + c.x0, cy + c.y0, radius,
                                             inner, amp * area, c.star_fx * scale, c.star_fy * scale))
    fraction = sum(m.flux for m in measurements) / float(flux.sum())
    result = GhostModel(scale=scale, radius_mm=radius * pix, inner_fraction=inner, flux_fraction=fraction)
    log.info("ghost model from %d stars: %s", len(cutouts), result)
    return result, measurements

"""Sky background: sigma-clipped mesh statistics with source masking, smooth interpolation.

:func:`estimate_background` cuts the image into square meshes, takes a sigma-clipped
statistic of the unmasked pixels of each (all meshes at once: one reshape, no loop over
pixels), fills meshes with too few good pixels from their neighbours and interpolates the mesh
grid with a bicubic spline.  :func:`fit_visit_background` fits one smooth model (a 2-D
Chebyshev polynomial in focal-plane coordinates) to the meshes of every detector of a visit,
so that detector edges share one sky.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pachon.core.errors import ConfigError

if TYPE_CHECKING:
    from pachon.core.exposure import Exposure

__all__ = [
    "BACKGROUND_MASK_PLANES",
    "Background",
    "VisitBackground",
    "estimate_background",
    "fit_visit_background",
    "subtract_background",
]

_log = logging.getLogger(__name__)

#: Mask planes whose pixels never enter the sky statistics.
BACKGROUND_MASK_PLANES = ("BAD", "SAT", "CR", "EDGE", "NO_DATA", "DETECTED", "SUSPECT")


@dataclass
class Background:
    """A background model: mesh values on a regular grid and its full-resolution evaluation.

    Attributes
    ----------
    mesh_x, mesh_y
        Pixel positions (array coordinates) of the mesh centres along x and y.
    values
        Mesh statistics, shape ``(len(mesh_y), len(mesh_x))``.
    rms
        Clipped standard deviation of each mesh.
    shape
        Shape of the image the model covers.
    """

    mesh_x: np.ndarray
    mesh_y: np.ndarray
    values: np.ndarray
    rms: np.ndarray
    shape: tuple[int, int]

    def image(self) -> np.ndarray:
        """The background at every pixel (float32), by bicubic spline through the mesh grid."""
        from scipy.interpolate import RectBivariateSpline

        ny, nx = self.values.shape
        if nx == 1 and ny == 1:
            return np.full(self.shape, self.values[0, 0], dtype=np.float32)
        ky, kx = min(3, ny - 1), min(3, nx - 1)
        if kx == 0 or ky == 0:  # a single row or column of meshes: interpolate along the other axis
            line = np.interp(
                np.arange(self.shape[1 if ky == 0 else 0]),
                self.mesh_x if ky == 0 else self.mesh_y,
                self.values.ravel(),
            )
            out = np.broadcast_to(line[None, :] if ky == 0 else line[:, None], self.shape)
            return np.ascontiguousarray(out, dtype=np.float32)
        spline = RectBivariateSpline(self.mesh_y, self.mesh_x, self.values, kx=kx, ky=ky, s=0)
        return spline(np.arange(self.shape[0]), np.arange(self.shape[1])).astype(np.float32)

    @property
    def median_rms(self) -> float:
        """Median per-mesh clipped standard deviation (the typical sky noise)."""
        return float(np.nanmedian(self.rms))


def _clipped_stats(
    cube: np.ndarray, nsigma: float, n_iter: int, statistic: str = "mode"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sigma-clipped mode (or mean), standard deviation and count along the last axis (NaN = excluded).

    Each mesh is sorted once (NaNs last); a clipped set is then an index interval of the sorted
    row, so every iteration is a count of comparisons, the median and the 16/84 percentiles
    (robust sigma) are read at indices, and the final mean and standard deviation come from
    prefix sums: no per-mesh Python call, no repeated medians.
    """
    lead = cube.shape[:-1]
    rows = np.sort(np.asarray(cube, dtype=np.float32).reshape(-1, cube.shape[-1]), axis=-1)
    m, k = rows.shape
    lo = np.zeros(m, np.int64)
    hi = np.isfinite(rows).sum(axis=1)
    r = np.arange(m)

    def at(frac: float | np.ndarray) -> np.ndarray:
        n = np.maximum(hi - lo, 1)
        idx = np.clip(lo + np.floor(frac * (n - 1) + 0.5).astype(np.int64), 0, k - 1)
        return rows[r, idx].astype(np.float64)

    for _ in range(n_iter):
        med = 0.5 * (at(0.5 - 1e-9) + at(0.5 + 1e-9))
        sig = 0.5 * (at(0.8413) - at(0.1587))
        width = nsigma * np.maximum(sig, 1e-30)
        new_lo = (rows < (med - width)[:, None]).sum(axis=1)
        new_hi = (rows <= (med + width)[:, None]).sum(axis=1)
        new_hi = np.where(hi > lo, new_hi, hi)
        if np.array_equal(new_lo, lo) and np.array_equal(new_hi, hi):
            break
        lo, hi = np.where(hi > lo, new_lo, lo), new_hi
    count = np.maximum(hi - lo, 0)
    off = np.nan_to_num(at(0.5))
    d = np.nan_to_num(rows - off[:, None].astype(np.float32)).astype(np.float64)
    c1 = np.concatenate([np.zeros((m, 1)), np.cumsum(d, axis=1)], axis=1)
    c2 = np.concatenate([np.zeros((m, 1)), np.cumsum(d * d, axis=1)], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s1 = (c1[r, hi] - c1[r, lo]) / count
        s2 = (c2[r, hi] - c2[r, lo]) / count
        mean = np.where(count > 0, s1 + off, np.nan)
        std = np.where(count > 0, np.sqrt(np.maximum(s2 - s1 * s1, 0.0)), np.nan)
    med = np.where(count > 0, 0.5 * (at(0.5 - 1e-9) + at(0.5 + 1e-9)), np.nan)
    if statistic == "mean":  # sources already masked: the mean has the least noise
        out = mean
    else:  # the SExtractor mode estimate where the clipped distribution is skewed by faint sources
        out = np.where(np.abs(mean - med) < 0.3 * std, 2.5 * med - 1.5 * mean, med)
    return out.reshape(lead), std.reshape(lead), count.reshape(lead)


def estimate_background(
    image: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    mesh_size: int = 64,
    nsigma: float = 3.0,
    n_iter: int = 4,
    min_fraction: float = 0.25,
    statistic: str = "mode",
    filter_size: int = 3,
    subsample: int = 1,
) -> Background:
    """Estimate a smooth sky background.

    Parameters
    ----------
    image
        2-D pixel values.
    mask
        Boolean array, True where pixels must not enter the statistics (sources, defects).
    mesh_size
        Mesh width in pixels; the image is cut into ``ceil(ny/mesh) x ceil(nx/mesh)`` meshes.
    nsigma, n_iter
        Sigma clipping of each mesh.
    min_fraction
        Meshes with fewer good pixels than this fraction are filled from their neighbours.
    statistic
        ``"mode"`` (SExtractor's ``2.5 median - 1.5 mean``, robust to unmasked faint sources)
        or ``"mean"`` (clipped mean: least noisy once sources are masked).
    filter_size
        Median filter over the mesh grid (meshes), suppressing single-mesh noise and residual
        source light; 1 disables it.
    subsample
        Use every ``subsample``-th pixel along each axis of each mesh (a quick first pass whose
        residual a later full-resolution pass removes).

    Returns
    -------
    Background
        The mesh grid and its statistics; :meth:`Background.image` evaluates it.
    """
    if image.ndim != 2:
        raise ConfigError(f"estimate_background: image must be 2-D, got shape {image.shape}")
    if statistic not in ("mode", "mean"):
        raise ConfigError(f"estimate_background: statistic must be 'mode' or 'mean', got {statistic!r}")
    if mesh_size < 4:
        raise ConfigError(f"estimate_background: mesh_size must be at least 4 pixels, got {mesh_size!r}")
    ny, nx = image.shape
    my, mx = max(1, round(ny / mesh_size)), max(1, round(nx / mesh_size))
    by, bx = -(-ny // my), -(-nx // mx)  # mesh height and width that tile the image
    k = max(1, int(subsample))
    if my * by == ny and mx * bx == nx:  # meshes tile the image exactly: no padded copy
        data = np.asarray(image).reshape(my, by, mx, bx)[:, ::k, :, ::k]
        bad = None if mask is None else np.asarray(mask, bool).reshape(my, by, mx, bx)[:, ::k, :, ::k]
    else:
        data = np.full((my * by, mx * bx), np.nan, dtype=np.float32)
        data[:ny, :nx] = image
        bad = None
        if mask is not None:
            bad = np.zeros(data.shape, bool)
            bad[:ny, :nx] = mask
        data = data.reshape(my, by, mx, bx)[:, ::k, :, ::k]
        bad = None if bad is None else bad.reshape(my, by, mx, bx)[:, ::k, :, ::k]
    cube = np.asarray(data, np.float32)
    if bad is not None:
        cube = np.where(bad, np.float32(np.nan), cube)
    cube = cube.transpose(0, 2, 1, 3).reshape(my, mx, -1)
    values, rms, count = _clipped_stats(cube, nsigma, n_iter, statistic)
    valid_y = np.minimum(by, ny - np.arange(my) * by)[:, None] * np.minimum(bx, nx - np.arange(mx) * bx)[None]
    valid_y = valid_y / (k * k)
    good = count >= min_fraction * valid_y
    if not good.any():
        raise ConfigError(
            "estimate_background: every mesh is masked or empty; unmask the image or use larger meshes"
        )
    if not good.all():
        values, rms = _fill_meshes(values, good), _fill_meshes(rms, good)
    if filter_size > 1 and min(values.shape) >= filter_size:
        from scipy.ndimage import median_filter

        values = median_filter(values, size=filter_size, mode="nearest")
    centres_y = np.arange(my) * by + (np.minimum(by, ny - np.arange(my) * by) - 1) / 2.0
    centres_x = np.arange(mx) * bx + (np.minimum(bx, nx - np.arange(mx) * bx) - 1) / 2.0
    return Background(centres_x, centres_y, values, rms, (ny, nx))


def _fill_meshes(values: np.ndarray, good: np.ndarray) -> np.ndarray:
    """Replace bad meshes by the inverse-distance-weighted mean of the good ones."""
    gy, gx = np.nonzero(good)
    by_, bx_ = np.nonzero(~good)
    d2 = (by_[:, None] - gy[None]) ** 2 + (bx_[:, None] - gx[None]) ** 2
    w = 1.0 / d2**2
    out = values.copy()
    out[by_, bx_] = (w * values[gy, gx][None]).sum(axis=1) / w.sum(axis=1)
    return out


def subtract_background(
    exposure: Exposure,
    *,
    mesh_size: int = 64,
    mask_planes: tuple[str, ...] = BACKGROUND_MASK_PLANES,
    statistic: str = "mode",
    subsample: int = 1,
) -> Background:
    """Estimate the background of ``exposure`` (masking ``mask_planes``) and subtract it in place."""
    known = [p for p in mask_planes if p in exposure.mask.planes]
    masked = exposure.mask.any(*known) if known else None
    bkg = estimate_background(
        exposure.image, mask=masked, mesh_size=mesh_size, statistic=statistic, subsample=subsample
    )
    exposure.image -= bkg.image()
    _log.debug("background: median %.3f, rms %.3f", float(np.median(bkg.values)), bkg.median_rms)
    return bkg


def _cheb_design(x: np.ndarray, y: np.ndarray, order: int) -> np.ndarray:
    from numpy.polynomial import chebyshev

    vx = chebyshev.chebvander(x, order)
    vy = chebyshev.chebvander(y, order)
    cols = [vx[:, i] * vy[:, j] for i in range(order + 1) for j in range(order + 1 - i)]
    return np.stack(cols, axis=1)


@dataclass
class VisitBackground:
    """One background over a visit's focal plane: a 2-D Chebyshev polynomial in (mm) coordinates."""

    coefficients: np.ndarray
    order: int
    centre: tuple[float, float]
    half_size: float

    def evaluate(self, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
        """The model at focal-plane positions ``(fx, fy)`` (mm)."""
        fx, fy = np.asarray(fx, float), np.asarray(fy, float)
        u = (fx.ravel() - self.centre[0]) / self.half_size
        v = (fy.ravel() - self.centre[1]) / self.half_size
        return (_cheb_design(u, v, self.order) @ self.coefficients).reshape(fx.shape)


def fit_visit_background(
    mesh_fx: np.ndarray, mesh_fy: np.ndarray, values: np.ndarray, *, order: int = 3, nsigma: float = 3.0
) -> VisitBackground:
    """Fit one polynomial background to the meshes of all detectors of a visit.

    Parameters
    ----------
    mesh_fx, mesh_fy
        Focal-plane positions (mm) of every mesh centre of every detector (1-D, concatenated).
    values
        The meshes' clipped sky values (same length).
    order
        Total degree of the Chebyshev polynomial.
    nsigma
        Meshes further than this from the fit (in robust sigma) are rejected, iteratively.
    """
    fx, fy, z = (np.asarray(a, float).ravel() for a in (mesh_fx, mesh_fy, values))
    n_terms = (order + 1) * (order + 2) // 2
    if len(z) < n_terms:
        raise ConfigError(
            f"fit_visit_background: {len(z)} meshes cannot constrain an order-{order} polynomial "
            f"({n_terms} terms); lower the order or use smaller meshes"
        )
    centre = (0.5 * (fx.min() + fx.max()), 0.5 * (fy.min() + fy.max()))
    half = max(0.5 * max(np.ptp(fx), np.ptp(fy)), 1e-6)
    design = _cheb_design((fx - centre[0]) / half, (fy - centre[1]) / half, order)
    keep = np.isfinite(z)
    coef = np.zeros(n_terms)
    for _ in range(5):
        coef = np.linalg.lstsq(design[keep], z[keep], rcond=None)[0]
        resid = z - design @ coef
        sigma = 1.4826 * np.median(np.abs(resid[keep])) + 1e-12
        new = np.isfinite(z) & (np.abs(resid) < nsigma * sigma)
        if np.array_equal(new, keep):
            break
        keep = new
    return VisitBackground(coef, order, centre, half)

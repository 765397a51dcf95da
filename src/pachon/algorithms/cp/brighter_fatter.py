"""Brighter-fatter kernel from the flux dependence of star sizes.

Stars of one PSF but different fluxes should have the same size; brighter-fatter makes bright
ones broader.  :func:`fit_bf_strength` corrects star stamps with delta kernels of increasing
strength and returns the strength at which the slope of size against flux crosses zero
(linear interpolation between grid points).  Sizes are Gaussian-weighted second moments with
a fixed weight, so noise does not bias them with flux.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from pachon.algorithms.isr.brighter_fatter import correct_brighter_fatter, delta_kernel
from pachon.core.errors import ConfigError

__all__ = ["star_sizes", "size_flux_slope", "fit_bf_strength"]

log = logging.getLogger(__name__)


def star_sizes(stamps: np.ndarray, *, weight_sigma: float = 2.5) -> np.ndarray:
    """Gaussian-weighted ``sqrt((Ixx + Iyy) / 2)`` of each stamp (``(n, h, w)``, centred)."""
    s = np.asarray(stamps, float)
    h, w = s.shape[1:]
    yy, xx = np.mgrid[0:h, 0:w]
    yy, xx = yy - (h - 1) / 2, xx - (w - 1) / 2
    wgt = np.exp(-0.5 * (xx * xx + yy * yy) / weight_sigma**2)
    sw = s * wgt
    norm = sw.sum(axis=(1, 2))
    mx = (sw * xx).sum(axis=(1, 2)) / norm
    my = (sw * yy).sum(axis=(1, 2)) / norm
    dx, dy = xx[None] - mx[:, None, None], yy[None] - my[:, None, None]
    r2 = (sw * (dx * dx + dy * dy)).sum(axis=(1, 2)) / norm
    return np.sqrt(r2 / 2)


def size_flux_slope(sizes: np.ndarray, fluxes: np.ndarray) -> tuple[float, float]:
    """Slope of size against flux (pixels per electron) and its standard error."""
    f, s = np.asarray(fluxes, float), np.asarray(sizes, float)
    a = np.stack([np.ones_like(f), f], axis=1)
    coef, *_ = np.linalg.lstsq(a, s, rcond=None)
    resid = s - a @ coef
    dof = max(s.size - 2, 1)
    cov = np.sum(resid**2) / dof * np.linalg.inv(a.T @ a)
    return float(coef[1]), float(np.sqrt(cov[1, 1]))


def fit_bf_strength(stamps: Sequence[np.ndarray], fluxes: Sequence[float],
                    strengths: Sequence[float] | None = None) -> tuple[float, np.ndarray]:
    """Delta-kernel strength that makes star size independent of flux, and the kernel.

    ``stamps`` are background-subtracted star images in electrons (before flat-fielding).
    """
    grid = np.asarray(strengths if strengths is not None else np.linspace(0.0, 2e-5, 11), float)
    st = np.asarray(stamps, float)
    f = np.asarray(fluxes, float)
    if st.shape[0] < 5:
        raise ConfigError(f"fit_bf_strength needs five or more stars, got {st.shape[0]}")
    slopes = []
    for s in grid:  # loop over trial strengths; each correction is vectorized over all stamps
        corrected = st if s == 0 else np.stack(
            [correct_brighter_fatter(x, delta_kernel(s), max_potential=None)[0] for x in st])
        slopes.append(size_flux_slope(star_sizes(corrected), f)[0])
    slopes_arr = np.asarray(slopes)
    cross = np.flatnonzero(np.diff(np.sign(slopes_arr)) != 0)
    if cross.size == 0:
        best = float(grid[np.argmin(np.abs(slopes_arr))])
        log.warning("size-flux slope does not cross zero over the strength grid; using %.3g", best)
    else:
        i = int(cross[0])
        best = float(grid[i] - slopes_arr[i] * (grid[i + 1] - grid[i]) / (slopes_arr[i + 1] - slopes_arr[i]))
    return best, delta_kernel(best)

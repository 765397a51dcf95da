"""Brighter-fatter kernel from the flux dependence of star sizes.

Stars of one PSF but different fluxes should have the same size; brighter-fatter makes bright
ones broader.  :func:`fit_bf_strength` finds the delta-kernel strength whose forward model
reproduces the observed slope of size against flux.  Sizes are Gaussian-weighted second moments with
a fixed weight, so noise does not bias them with flux.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from pachon.algorithms.isr.brighter_fatter import apply_brighter_fatter, delta_kernel
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
    """Delta-kernel strength that explains the growth of star size with flux, and the kernel.

    ``stamps`` are background-subtracted, centred star images in electrons (before
    flat-fielding).  A forward model avoids the noise bias of correcting noisy stamps: the
    mean normalised profile of the faintest quarter of the stars is scaled to each flux, the
    brighter-fatter effect of each trial strength applied, and the size-flux slope of these
    noise-free models compared with the observed slope (linear interpolation on the grid).
    """
    grid = np.asarray(strengths if strengths is not None else np.linspace(0.0, 2e-5, 11), float)
    st = np.asarray(stamps, float)
    f = np.asarray(fluxes, float)
    if st.shape[0] < 5:
        raise ConfigError(f"fit_bf_strength needs five or more stars, got {st.shape[0]}")
    observed = size_flux_slope(star_sizes(st), f)[0]
    faint = np.argsort(f)[: max(2, f.size // 4)]
    psf = np.mean(st[faint] / f[faint, None, None], axis=0)
    models = []
    for s in grid:  # loop over trial strengths; models vectorized over fluxes through the stack
        stack = np.stack([apply_brighter_fatter(x * psf, delta_kernel(s)) for x in f])
        models.append(size_flux_slope(star_sizes(stack), f)[0])
    m = np.asarray(models)
    if not (m.min() <= observed <= m.max()):
        best = float(grid[np.argmin(np.abs(m - observed))])
        log.warning("observed size-flux slope %.3g is outside the model grid; using %.3g", observed, best)
    else:
        best = float(np.interp(observed, m, grid)) if np.all(np.diff(m) > 0) else \
            float(grid[np.argmin(np.abs(m - observed))])
    return best, delta_kernel(best)

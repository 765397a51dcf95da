"""Inverse-variance weighted coadds with outlier rejection, and template building.

:func:`coadd_exposures` stacks warps that share a pixel grid.  Each input gets one weight,
the inverse of its median variance (a per-image weight does not bias the fluxes of sources,
whose pixels carry more Poisson variance than the sky), optionally scaled to a common
photometric calibration.  Pixels deviating from the per-pixel median by more than
``clip_sigma`` times their own noise are rejected (when at least three inputs cover the pixel)
and flagged ``CLIPPED``.  The coadd variance is ``sum(w_i^2 var_i) / (sum w_i)^2``; its PSF is
the weighted mean of the input PSFs (the exact PSF of a weighted mean of images with a
constant weight each).

:func:`make_template` selects the best-seeing calibrated exposures, warps them to a grid and
coadds them: the template for difference imaging.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from pachon.core.errors import ConfigError, NoWorkFound
from pachon.core.exposure import Exposure
from pachon.core.geom import Box
from pachon.core.mask import Mask
from pachon.core.psf import ImagePsf, Psf

if TYPE_CHECKING:
    from astropy.wcs import WCS

__all__ = ["BAD_PLANES", "coadd_exposures", "coadd_psf", "make_template", "select_best_seeing"]

_log = logging.getLogger(__name__)

#: Mask planes whose pixels are left out of a coadd.
BAD_PLANES = ("BAD", "SAT", "NO_DATA", "CR", "EDGE", "SUSPECT")


def coadd_psf(psfs: Sequence[Psf], weights: Sequence[float], x: float, y: float) -> ImagePsf:
    """Weighted mean of PSF kernels at ``(x, y)`` (padded to the largest size)."""
    kernels = [p.kernel_image(x, y) for p in psfs]
    size = max(k.shape[0] for k in kernels)
    total = np.zeros((size, size))
    for k, w in zip(kernels, weights, strict=True):
        o = (size - k.shape[0]) // 2
        total[o : o + k.shape[0], o : o + k.shape[0]] += w * k
    return ImagePsf(total)


def coadd_exposures(
    warps: Sequence[Exposure],
    *,
    clip_sigma: float = 4.0,
    bad_planes: Sequence[str] = BAD_PLANES,
    clip_fraction: float = 0.3,
) -> Exposure:
    """Inverse-variance weighted mean of exposures on the same pixel grid.

    Parameters
    ----------
    warps
        Exposures with identical bounding boxes (e.g. outputs of
        :func:`pachon.algorithms.warp.warp_exposure` onto one grid).
    clip_sigma
        Rejection threshold (in units of each pixel's noise) against the per-pixel median;
        ``inf`` disables the rejection.
    bad_planes
        Mask planes whose pixels are left out.
    clip_fraction
        Fraction of the median added in quadrature to the noise in the rejection test, so that
        star cores are not clipped where the inputs' PSFs differ (as SWarp's ``CLIP_AMPFRAC``).

    Returns
    -------
    Exposure
        The coadd, with the first input's WCS and calibration; ``NO_DATA`` where no input
        contributes; ``CLIPPED`` where an input was rejected.

    Raises
    ------
    ConfigError
        No input, or inputs on different pixel grids.
    """
    if not warps:
        raise ConfigError("coadd_exposures: no exposure to coadd; pass at least one warp")
    bbox = warps[0].bbox
    for k, w in enumerate(warps):
        if w.bbox != bbox:
            raise ConfigError(f"coadd_exposures: input {k} covers {w.bbox}, not {bbox}; warp it first")
    ref_cal = warps[0].photo_calib
    scales = np.array(
        [
            1.0
            if (ref_cal is None or w.photo_calib is None)
            else w.photo_calib.calibration_mean / ref_cal.calibration_mean
            for w in warps
        ]
    )
    img = np.stack([w.image for w in warps]).astype(np.float64) * scales[:, None, None]
    var = np.stack([w.variance for w in warps]).astype(np.float64) * scales[:, None, None] ** 2
    bad = np.stack([w.mask.any(*[p for p in bad_planes if p in w.mask.planes]) for w in warps])
    good = ~bad & np.isfinite(img) & np.isfinite(var) & (var > 0)
    med_var = np.array([np.median(v[g]) if g.any() else np.inf for v, g in zip(var, good, strict=True)])
    weights = np.where(np.isfinite(med_var), 1.0 / med_var, 0.0)
    clipped = np.zeros(bbox.shape, bool)
    if np.isfinite(clip_sigma) and len(warps) >= 3:
        stack = np.where(good, img, np.nan)
        n_good = good.sum(axis=0)
        with np.errstate(all="ignore"):
            med = np.nanmedian(np.where(n_good >= 3, stack, 0.0), axis=0)
        # median of n values has variance ~ (pi/2) var / n; add it to each pixel's own variance
        noise2 = var * (1.0 + np.pi / 2.0 / np.maximum(n_good, 1)) + (clip_fraction * med) ** 2
        dev = np.abs(img - med) / np.sqrt(noise2)
        reject = good & (n_good >= 3) & (dev > clip_sigma)
        good &= ~reject
        clipped = reject.any(axis=0)
    w = np.where(good, weights[:, None, None], 0.0)
    wsum = w.sum(axis=0)
    covered = wsum > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        image = np.where(covered, (w * np.where(good, img, 0.0)).sum(axis=0) / wsum, np.nan)
        variance = np.where(covered, (w**2 * np.where(good, var, 0.0)).sum(axis=0) / wsum**2, np.nan)
    planes = warps[0].mask.planes
    mask_arr = np.zeros(bbox.shape, np.uint32)
    for k, wp in enumerate(warps):
        mask_arr |= np.where(good[k], wp.mask.array, 0).astype(np.uint32)
    mask = Mask(mask_arr, planes=planes)
    mask.set("NO_DATA", ~covered)
    mask.set("CLIPPED", clipped)
    psf = None
    if all(wp.psf is not None for wp in warps):
        cx, cy = bbox.x0 + 0.5 * (bbox.width - 1), bbox.y0 + 0.5 * (bbox.height - 1)
        psf = coadd_psf([wp.psf for wp in warps], weights / weights.sum(), cx, cy)  # type: ignore[misc]
    _log.info("coadded %d exposures (%.2f%% pixels clipped)", len(warps), 100.0 * clipped.mean())
    return Exposure(
        image, mask, variance, wcs=warps[0].wcs, psf=psf, photo_calib=ref_cal, xy0=(bbox.x0, bbox.y0)
    )


def select_best_seeing(
    exposures: Sequence[Exposure], n_best: int | None = None, max_sigma: float | None = None
) -> list[int]:
    """Indices of the exposures with the narrowest PSFs (at each exposure's centre), best first."""
    sig = []
    for k, e in enumerate(exposures):
        if e.psf is None:
            raise ConfigError(f"select_best_seeing: exposure {k} has no PSF; characterize it first")
        b = e.bbox
        sig.append(e.psf.sigma(b.x0 + 0.5 * b.width, b.y0 + 0.5 * b.height))
    order = [int(i) for i in np.argsort(sig, kind="stable")]
    if max_sigma is not None:
        order = [i for i in order if sig[i] <= max_sigma]
    return order[:n_best] if n_best is not None else order


def make_template(
    calexps: Sequence[Exposure],
    wcs: WCS,
    bbox: Box,
    *,
    n_best: int | None = None,
    max_sigma: float | None = None,
    order: int = 3,
    clip_sigma: float = 4.0,
) -> Exposure:
    """A template coadd on the grid ``(wcs, bbox)`` from the best-seeing ``calexps``.

    Exposures that do not overlap the grid are skipped.

    Raises
    ------
    NoWorkFound
        None of the selected exposures covers the grid (no template coverage).
    """
    from pachon.algorithms.warp import warp_exposure

    chosen = select_best_seeing(calexps, n_best=None, max_sigma=max_sigma)
    warps = []
    for i in chosen:
        try:
            warp = warp_exposure(calexps[i], wcs, bbox, order=order)
        except ConfigError:
            _log.debug("template: exposure %d does not overlap %s", i, bbox)
            continue
        warps.append(warp)
        if n_best is not None and len(warps) >= n_best:
            break
    if not warps:
        raise NoWorkFound(f"no template coverage: none of {len(calexps)} exposures overlaps {bbox}")
    return coadd_exposures(warps, clip_sigma=clip_sigma)

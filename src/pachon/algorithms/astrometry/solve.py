"""Astrometric solutions: from a rough (or no) WCS and a reference catalogue to a TAN-SIP WCS.

:func:`solve_astrometry` projects the reference stars with the rough WCS, finds the pattern
match (:func:`~pachon.algorithms.astrometry.matching.match_triangles`), then alternates
nearest-neighbour matching and :func:`~pachon.algorithms.astrometry.sip.fit_tan_sip` with
sigma clipping.  :func:`blind_solve` builds the rough WCS from a pointing and a plate scale
alone (rotation and parity unknown).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pachon.algorithms.astrometry.matching import AstrometryError, _nearest, match_triangles
from pachon.algorithms.astrometry.sip import fit_tan_sip

if TYPE_CHECKING:
    from astropy.wcs import WCS

__all__ = ["AstrometryResult", "blind_solve", "solve_astrometry"]

_log = logging.getLogger(__name__)


@dataclass
class AstrometryResult:
    """A fitted WCS and its matches.

    Attributes
    ----------
    wcs
        TAN-SIP WCS in 0-based pixel coordinates.
    src_index, ref_index
        Matched pairs (indices into the inputs) used by the final fit.
    scatter_arcsec
        Root-mean-square on-sky residual of the matched pairs.
    """

    wcs: WCS
    src_index: np.ndarray
    ref_index: np.ndarray
    scatter_arcsec: float

    @property
    def n_matches(self) -> int:
        """Number of matched pairs."""
        return len(self.src_index)


def _direct_match(
    src_xy: np.ndarray, ref_xy: np.ndarray, n: int, tolerance: float, min_matches: int
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Nearest-neighbour match of the ``n`` brightest sources through the initial WCS, if it holds.

    Accepted only when at least half of those sources (and ``min_matches``) have a reference
    within ``tolerance`` pixels and the offsets agree (median shift below ``tolerance / 2``):
    then the pattern search would find the same pairs.  Otherwise None.
    """
    from scipy.spatial import cKDTree

    src = src_xy[:n]
    d, j = cKDTree(ref_xy).query(src, distance_upper_bound=tolerance)
    ok = np.isfinite(d)
    if ok.sum() < max(min_matches, 0.5 * len(src)):
        return None
    i, j = np.flatnonzero(ok), j[ok]
    _, first = np.unique(j, return_index=True)  # one source per reference
    i, j = i[first], j[first]
    shift = np.median(src[i] - ref_xy[j], axis=0)
    if np.hypot(*shift) > 0.5 * tolerance:
        return None
    return i, j, float(np.sqrt(np.mean(np.sum((src[i] - ref_xy[j] - shift) ** 2, axis=1))))


def solve_astrometry(
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    ref_ra: np.ndarray,
    ref_dec: np.ndarray,
    ref_mag: np.ndarray,
    initial_wcs: WCS,
    shape: tuple[int, int],
    *,
    sip_order: int = 2,
    n_bright: int = 25,
    match_tolerance: float = 3.0,
    scale_range: tuple[float, float] = (0.9, 1.1),
    margin: float = 0.25,
    min_matches: int = 6,
    data_id: str = "",
) -> AstrometryResult:
    """Fit a TAN-SIP WCS for sources ``(x, y, flux)`` against reference stars.

    Parameters
    ----------
    x, y, flux
        Source centroids (0-based pixels) and fluxes (for ranking).
    ref_ra, ref_dec, ref_mag
        Reference stars (deg, at the image's epoch) and magnitudes.
    initial_wcs
        Rough WCS: any rotation/offset the pattern match can absorb, scale within ``scale_range``.
    shape
        Image shape ``(ny, nx)``.
    sip_order
        Order of the final fit (1 = TAN).
    n_bright
        Brightest sources and references used for triangles.
    match_tolerance
        Pattern-match radius (pixels).
    scale_range
        Allowed scale error of the initial WCS.
    min_matches
        Fewest matched stars accepted.
    margin
        References up to this fraction of the image size beyond its edges are kept.
    data_id
        Named in error messages.
    """
    ny, nx = shape
    where = f" for {data_id}" if data_id else ""
    good = np.isfinite(x) & np.isfinite(y) & np.isfinite(flux) & (flux > 0)
    if good.sum() < 3:
        raise AstrometryError(
            f"astrometry{where}: {int(good.sum())} usable source(s); the image may hold no stars"
        )
    rx, ry = initial_wcs.world_to_pixel_values(ref_ra, ref_dec)
    inside = (
        np.isfinite(rx)
        & (rx > -margin * nx)
        & (rx < (1 + margin) * nx)
        & (ry > -margin * ny)
        & (ry < (1 + margin) * ny)
    )
    if inside.sum() < 3:
        raise AstrometryError(
            f"astrometry{where}: {int(inside.sum())} reference star(s) fall on the image with the initial "
            "WCS; the reference region is blank or the initial WCS points elsewhere"
        )
    s_idx = np.flatnonzero(good)[np.argsort(-flux[good])]
    r_idx = np.flatnonzero(inside)[np.argsort(ref_mag[inside])]
    src_xy = np.column_stack([x[s_idx], y[s_idx]])
    ref_xy = np.column_stack([rx[r_idx], ry[r_idx]])
    direct = _direct_match(src_xy, ref_xy, 4 * n_bright, match_tolerance, max(min_matches, 10))
    if direct is not None:  # the initial WCS is already good: no pattern search needed
        s_m, r_m, rms = direct
    else:
        try:
            sim = match_triangles(
                src_xy,
                ref_xy,
                n_bright=n_bright,
                tolerance=match_tolerance,
                scale_range=scale_range,
                min_matches=min(min_matches, 5),
            )
        except AstrometryError as exc:
            raise AstrometryError(f"astrometry{where}: {exc}") from None
        s_m, r_m, rms = sim.src_index, sim.ref_index, sim.rms
    si, ri = s_idx[s_m], r_idx[r_m]
    crpix = ((nx - 1) / 2.0, (ny - 1) / 2.0)
    wcs = fit_tan_sip(x[si], y[si], ref_ra[ri], ref_dec[ri], crpix=crpix, order=1, shape=shape)
    tol = max(match_tolerance, 3.0 * rms)
    all_src = np.column_stack([x[s_idx], y[s_idx]])
    for it in range(6):
        px, py = wcs.world_to_pixel_values(ref_ra[r_idx], ref_dec[r_idx])
        a, b, d = _nearest(all_src, np.column_stack([px, py]), tol)
        si, ri = s_idx[a], r_idx[b]
        order = sip_order if (it >= 1 and len(si) >= 3 * (sip_order + 1) * (sip_order + 2) // 2) else 1
        if len(si) < min_matches:
            break
        wcs = fit_tan_sip(x[si], y[si], ref_ra[ri], ref_dec[ri], crpix=crpix, order=order, shape=shape)
        qx, qy = wcs.world_to_pixel_values(ref_ra[ri], ref_dec[ri])
        resid = np.hypot(qx - x[si], qy - y[si])
        rms = 1.4826 * np.median(resid) + 1e-6
        tol = max(min(tol, 4.0 * rms), 0.5)
    if len(si) < min_matches:
        raise AstrometryError(
            f"astrometry{where}: only {len(si)} matched star(s) after fitting (need {min_matches}); "
            "check the reference catalogue and the initial WCS"
        )
    keep = resid < 3.0 * rms + 1e-9
    si, ri = si[keep], ri[keep]
    wcs = fit_tan_sip(x[si], y[si], ref_ra[ri], ref_dec[ri], crpix=crpix, order=order, shape=shape)
    from pachon.core.sphgeom import angular_separation

    sra, sdec = wcs.pixel_to_world_values(x[si], y[si])
    sep = angular_separation(sra, sdec, ref_ra[ri], ref_dec[ri]) * 3600.0
    scatter = float(np.sqrt(np.mean(sep**2)))
    _log.info("astrometry%s: %d matches, scatter %.3f arcsec, order %d", where, len(si), scatter, order)
    return AstrometryResult(wcs, si, ri, scatter)


def blind_solve(
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    ref_ra: np.ndarray,
    ref_dec: np.ndarray,
    ref_mag: np.ndarray,
    *,
    ra: float,
    dec: float,
    pixel_scale_arcsec: float,
    shape: tuple[int, int],
    scale_tolerance: float = 0.1,
    sip_order: int = 1,
    data_id: str = "",
    **kwargs: float,
) -> AstrometryResult:
    """Solve with only a pointing ``(ra, dec)`` at the image centre and an approximate plate scale.

    The rotation and the parity are unknown; the pattern match finds both.  The pointing may
    be off by a good fraction of the field (references from a ``margin`` beyond the image
    are used).
    """
    from pachon.core.wcs import make_tan_wcs

    ny, nx = shape
    rough = make_tan_wcs(ra, dec, pixel_scale_arcsec, 0.0, crpix=((nx - 1) / 2.0, (ny - 1) / 2.0))
    return solve_astrometry(
        x, y, flux, ref_ra, ref_dec, ref_mag, rough, shape,
        sip_order=sip_order,
        scale_range=(1.0 / (1.0 + scale_tolerance), 1.0 + scale_tolerance),
        data_id=data_id,
        **kwargs,
    )  # fmt: skip

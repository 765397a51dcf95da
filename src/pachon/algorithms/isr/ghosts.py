"""Optical ghosts of bright stars: where they land and which pixels to mask.

The ghost model (:class:`~pachon.algorithms.isr.config.GhostModel`) places the ghost of a star
at focal-plane position ``(fx, fy)`` on a ring centred on ``scale * (fx, fy)``; the mask covers
the ring (widened by a margin) on the detector.

Which stars are bright: ISR finds them in the exposure itself, as blobs of saturated pixels
(:func:`saturated_stars`), unless the caller gives their positions.  A ghost holds a fraction
of a per mille of its star's light, so only stars that saturate make a ghost above the sky
noise, and the exposure knows them without the reference catalogue or a WCS (at ISR time only
the approximate pointing); a star just off the detector whose ghost lands on it is missed.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["ghost_positions", "ghost_mask", "saturated_stars", "bright_stars_mm"]

log = logging.getLogger(__name__)


def ghost_positions(detector: Any, model: Any, star_fx: np.ndarray, star_fy: np.ndarray) -> np.ndarray:
    """Pixel positions ``(n, 2)`` of the ghost centres of stars at focal-plane ``(fx, fy)`` mm."""
    gx, gy = detector.focal_plane_to_pixel(
        np.asarray(star_fx, float) * model.scale, np.asarray(star_fy, float) * model.scale
    )
    return np.stack([np.atleast_1d(gx), np.atleast_1d(gy)], axis=1)


def ghost_mask(detector: Any, model: Any, stars_mm: np.ndarray, *, margin: float = 1.2) -> np.ndarray:
    """Boolean mask of the ghost rings of stars at focal-plane ``stars_mm`` (``(n, 2)``, mm).

    Each ring is widened by ``margin``: outer radius times it, inner radius divided by it.
    """
    shape = detector.bbox.shape
    stars = np.asarray(stars_mm, dtype=float).reshape(-1, 2)
    out = np.zeros(shape, dtype=bool)
    if stars.size == 0:
        return out
    centres = ghost_positions(detector, model, stars[:, 0], stars[:, 1])
    radius_px = margin * model.radius_mm / detector.pixel_size_mm
    inner_px = model.inner_fraction * model.radius_mm / detector.pixel_size_mm / margin
    for gx, gy in centres:  # one pass per bright star, each vectorized over the disc's box
        x0, x1 = max(int(np.floor(gx - radius_px)), 0), min(int(np.ceil(gx + radius_px)) + 1, shape[1])
        y0, y1 = max(int(np.floor(gy - radius_px)), 0), min(int(np.ceil(gy + radius_px)) + 1, shape[0])
        if x0 >= x1 or y0 >= y1:
            continue
        y = np.arange(y0, y1)[:, None]
        x = np.arange(x0, x1)[None, :]
        r2 = (x - gx) ** 2 + (y - gy) ** 2
        out[y0:y1, x0:x1] |= (r2 <= radius_px**2) & (r2 >= inner_px**2)
    return out


def saturated_stars(saturated: np.ndarray, *, min_pixels: int = 25) -> np.ndarray:
    """Bright stars found as blobs of saturated pixels: ``(n, 5)`` rows ``x, y, n_pix, x0..x1``.

    Each connected group (8-connected) of at least ``min_pixels`` saturated pixels is one star
    (smaller groups are cosmic rays or hot pixels); its centre is the centroid of the group,
    which a bleed trail spilling equally up and down its column leaves on the star.  The last
    two columns are the first and one-past-last column of the group (the bleed trail's extent).
    """
    from scipy import ndimage

    sat = np.asarray(saturated, dtype=bool)
    labels, n = ndimage.label(sat, structure=np.ones((3, 3), dtype=int))
    if n == 0:
        return np.zeros((0, 5))
    index = np.arange(1, n + 1)
    sizes = ndimage.sum_labels(sat, labels, index)
    keep = index[sizes >= min_pixels]
    if keep.size == 0:
        return np.zeros((0, 5))
    centres = np.asarray(ndimage.center_of_mass(sat, labels, keep), float).reshape(-1, 2)
    slices = ndimage.find_objects(labels)
    cols = np.array([[slices[k - 1][1].start, slices[k - 1][1].stop] for k in keep], float)
    return np.column_stack([centres[:, 1], centres[:, 0], sizes[keep - 1], cols])


def bright_stars_mm(detector: Any, saturated: np.ndarray, *, min_pixels: int = 25) -> np.ndarray:
    """Focal-plane positions ``(n, 2)`` (mm) of the saturated stars of a detector image."""
    stars = saturated_stars(saturated, min_pixels=min_pixels)
    if not len(stars):
        return np.zeros((0, 2))
    fx, fy = detector.pixel_to_focal_plane(stars[:, 0], stars[:, 1])
    return np.stack([np.atleast_1d(fx), np.atleast_1d(fy)], axis=1)

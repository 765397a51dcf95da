"""Optical ghosts of bright stars: where they land and which pixels to mask.

The ghost model (:class:`~pachon.algorithms.isr.config.GhostModel`) places the ghost of a star
at focal-plane position ``(fx, fy)`` on a ring centred on ``scale * (fx, fy)``; the mask covers
the whole disc of the ring's outer radius (plus a margin) on the detector.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["ghost_positions", "ghost_mask"]

log = logging.getLogger(__name__)


def ghost_positions(detector: Any, model: Any, star_fx: np.ndarray, star_fy: np.ndarray) -> np.ndarray:
    """Pixel positions ``(n, 2)`` of the ghost centres of stars at focal-plane ``(fx, fy)`` mm."""
    gx, gy = detector.focal_plane_to_pixel(
        np.asarray(star_fx, float) * model.scale, np.asarray(star_fy, float) * model.scale
    )
    return np.stack([np.atleast_1d(gx), np.atleast_1d(gy)], axis=1)


def ghost_mask(detector: Any, model: Any, stars_mm: np.ndarray, *, margin: float = 1.2) -> np.ndarray:
    """Boolean mask of the detector pixels within ``margin`` x the ghost radius of any ghost centre."""
    shape = detector.bbox.shape
    stars = np.asarray(stars_mm, dtype=float).reshape(-1, 2)
    out = np.zeros(shape, dtype=bool)
    if stars.size == 0:
        return out
    centres = ghost_positions(detector, model, stars[:, 0], stars[:, 1])
    radius_px = margin * model.radius_mm / detector.pixel_size_mm
    for gx, gy in centres:  # one pass per bright star, each vectorized over the disc's box
        x0, x1 = max(int(np.floor(gx - radius_px)), 0), min(int(np.ceil(gx + radius_px)) + 1, shape[1])
        y0, y1 = max(int(np.floor(gy - radius_px)), 0), min(int(np.ceil(gy + radius_px)) + 1, shape[0])
        if x0 >= x1 or y0 >= y1:
            continue
        y = np.arange(y0, y1)[:, None]
        x = np.arange(x0, x1)[None, :]
        out[y0:y1, x0:x1] |= (x - gx) ** 2 + (y - gy) ** 2 <= radius_px**2
    return out

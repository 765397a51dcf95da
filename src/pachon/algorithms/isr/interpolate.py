"""Interpolation over masked pixels: linear along rows between the nearest good pixels.

Bad columns and bleed trails are vertical, so interpolating along rows uses the good
neighbours on either side.  The nearest good pixel to the left and right of every pixel comes
from running maxima/minima of indices (``np.maximum.accumulate``), so the whole image is done
in a few array passes with no loop over pixels.  Pixels with no good pixel in their row take
the nearest good value along the column instead.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["interpolate_masked"]

log = logging.getLogger(__name__)


def _row_interp(image: np.ndarray, bad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ny, nx = image.shape
    idx = np.broadcast_to(np.arange(nx), (ny, nx))
    left = np.where(~bad, idx, -1)
    np.maximum.accumulate(left, axis=1, out=left)
    right = np.where(~bad, idx, nx)
    right = np.minimum.accumulate(right[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(ny)[:, None]
    has_l, has_r = left >= 0, right < nx
    vl = image[rows, np.clip(left, 0, nx - 1)]
    vr = image[rows, np.clip(right, 0, nx - 1)]
    span = np.maximum(right - left, 1)
    w = (idx - left) / span
    both = vl + w * (vr - vl)
    out = np.where(has_l & has_r, both, np.where(has_l, vl, vr))
    return out, has_l | has_r


def interpolate_masked(image: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Replace pixels where ``bad`` is True by linear interpolation along their row.

    Returns a new float64 array; NaNs in ``image`` are treated as bad too.
    """
    img = np.asarray(image, dtype=np.float64)
    bad = np.asarray(bad, dtype=bool) | ~np.isfinite(img)
    if not bad.any():
        return img.copy()
    if bad.all():
        return np.zeros_like(img)
    filled, ok = _row_interp(np.where(bad, 0.0, img), bad)
    out = np.where(bad, filled, img)
    if not ok.all():
        col, ok_c = _row_interp(np.where(bad, 0.0, img).T, bad.T)
        out = np.where(~ok & ok_c.T, col.T, out)
    return out

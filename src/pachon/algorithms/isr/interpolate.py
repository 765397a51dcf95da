"""Interpolation over masked pixels: linear along rows between the nearest good pixels.

Bad columns and bleed trails are vertical, so interpolating along rows uses the good
neighbours on either side.  The work is proportional to the number of masked pixels, not to
the image: the masked pixels are taken as flat indices, grouped into runs along rows (a run
breaks where the indices jump or a row ends), and each run is filled in one vectorized pass
from the good pixels just before and after it (the nearest one alone at a row's end).  Runs
that fill a whole row take their values along the column instead (the same procedure on the
transposed columns concerned).
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["interpolate_masked", "fill_masked"]

log = logging.getLogger(__name__)


def _fill_runs(flat: np.ndarray, bad_idx: np.ndarray, row_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Values for the sorted flat indices ``bad_idx`` of a row-major array, and which were found.

    ``flat`` is the raveled array; a pixel before or after a run is good by construction
    (otherwise it would belong to the run) unless the run touches a row end.
    """
    n = bad_idx.size
    new_run = np.empty(n, dtype=bool)
    new_run[0] = True
    np.not_equal(np.diff(bad_idx), 1, out=new_run[1:])
    new_run[1:] |= bad_idx[1:] % row_len == 0
    starts = np.flatnonzero(new_run)
    ends = np.r_[starts[1:], n] - 1
    first, last = bad_idx[starts], bad_idx[ends]
    has_l = first % row_len != 0
    has_r = (last + 1) % row_len != 0
    left = np.where(has_l, first - 1, first)
    right = np.where(has_r, last + 1, last)
    vl = np.where(has_l, flat[left], 0.0)
    vr = np.where(has_r, flat[right], 0.0)
    vl = np.where(has_l, vl, vr)
    vr = np.where(has_r, vr, vl)
    run = np.cumsum(new_run) - 1
    w = (bad_idx - left[run]) / np.maximum(right - left, 1)[run]
    values = vl[run] + w * (vr[run] - vl[run])
    return values, (has_l | has_r)[run]


def fill_masked(image: np.ndarray, bad_idx: np.ndarray) -> int:
    """Fill, in place, the pixels at sorted flat indices ``bad_idx`` of a C-contiguous image.

    Pixels with no good pixel in their row are filled along their column; pixels with none
    in either are set to 0.  Returns the number of pixels filled.
    """
    idx = np.asarray(bad_idx, dtype=np.int64)
    if idx.size == 0:
        return 0
    ny, nx = image.shape
    flat = image.reshape(-1)
    values, ok = _fill_runs(flat, idx, nx)
    flat[idx] = values
    if not ok.all():  # whole rows masked: fill those pixels along their columns
        lost = idx[~ok]
        rows, x = np.divmod(lost, nx)
        cols, pos = np.unique(x, return_inverse=True)
        sub = np.ascontiguousarray(image[:, cols].T)  # (n_cols, ny): the columns as rows
        sub_idx = pos * ny + rows
        order = np.argsort(sub_idx)
        col_vals, col_ok = _fill_runs(sub.reshape(-1), sub_idx[order], ny)
        col_vals[~col_ok] = 0.0
        image[rows[order], x[order]] = col_vals
        log.debug("%d masked pixels had no good pixel in their row: filled along columns", lost.size)
    return int(idx.size)


def interpolate_masked(image: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Replace pixels where ``bad`` is True by linear interpolation along their row.

    Returns a new float64 array; NaNs in ``image`` are treated as bad too.
    """
    out = np.array(image, dtype=np.float64, order="C")
    bad = np.asarray(bad, dtype=bool) | ~np.isfinite(out)
    if not bad.any():
        return out
    if bad.all():
        return np.zeros_like(out)
    fill_masked(out, np.flatnonzero(bad))
    return out

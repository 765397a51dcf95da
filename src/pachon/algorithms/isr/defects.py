"""Defects: boxes of bad pixels (hot pixels, dead pixels, bad columns) and their mask.

A defect list is an ``(n, 4)`` integer array of half-open boxes ``x0, y0, x1, y1`` in
assembled detector pixels, as the ``defects`` calibration stores it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pachon.core.errors import ConfigError

__all__ = ["defects_to_mask", "defect_pixels", "mask_to_defects", "normalize_defects"]

log = logging.getLogger(__name__)


def normalize_defects(defects: Any) -> np.ndarray:
    """Defects as an ``(n, 4)`` int64 array (accepts a list of boxes or a table-like mapping)."""
    if hasattr(defects, "keys") and "x0" in defects:
        arr = np.stack([np.asarray(defects[k]) for k in ("x0", "y0", "x1", "y1")], axis=1)
    else:
        arr = np.asarray(defects if len(defects) else np.zeros((0, 4)))
    arr = arr.astype(np.int64).reshape(-1, 4)
    if np.any(arr[:, 2] <= arr[:, 0]) or np.any(arr[:, 3] <= arr[:, 1]):
        raise ConfigError("defect boxes must have x1 > x0 and y1 > y0 (half-open x0, y0, x1, y1)")
    return arr


def defect_pixels(defects: Any, shape: tuple[int, int]) -> np.ndarray:
    """Flat (row-major) indices of the pixels covered by the defect boxes (clipped to ``shape``).

    The work is proportional to the defect pixels, not to the image: every box's pixels are
    enumerated at once with ``np.repeat`` over the boxes.
    """
    boxes = normalize_defects(defects)
    ny, nx = shape
    x0, y0 = np.clip(boxes[:, 0], 0, nx), np.clip(boxes[:, 1], 0, ny)
    width, height = np.clip(boxes[:, 2], 0, nx) - x0, np.clip(boxes[:, 3], 0, ny) - y0
    keep = (width > 0) & (height > 0)
    x0, y0, width, height = x0[keep], y0[keep], width[keep], height[keep]
    area = width * height
    box = np.repeat(np.arange(area.size), area)
    local = np.arange(int(area.sum())) - np.repeat(np.cumsum(area) - area, area)
    dy, dx = np.divmod(local, width[box])
    return np.unique((y0[box] + dy) * nx + x0[box] + dx)


def defects_to_mask(defects: Any, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of the pixels covered by the defect boxes (clipped to ``shape``)."""
    out = np.zeros(shape, dtype=bool)
    out.reshape(-1)[defect_pixels(defects, shape)] = True
    return out


def mask_to_defects(mask: np.ndarray) -> np.ndarray:
    """Group a boolean mask into boxes: runs along columns (one box per column run)."""
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return np.zeros((0, 4), dtype=np.int64)
    padded = np.zeros((m.shape[0] + 2, m.shape[1]), dtype=np.int8)
    padded[1:-1] = m
    d = np.diff(padded, axis=0)
    cols, starts = np.nonzero(d.T == 1)  # transposed: runs ordered by column, then row
    _, ends = np.nonzero(d.T == -1)
    return np.stack([cols, starts, cols + 1, ends], axis=1).astype(np.int64)

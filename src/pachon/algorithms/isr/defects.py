"""Defects: boxes of bad pixels (hot pixels, dead pixels, bad columns) and their mask.

A defect list is an ``(n, 4)`` integer array of half-open boxes ``x0, y0, x1, y1`` in
assembled detector pixels, as the ``defects`` calibration stores it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pachon.core.errors import ConfigError

__all__ = ["defects_to_mask", "mask_to_defects", "normalize_defects"]

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


def defects_to_mask(defects: Any, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of the pixels covered by the defect boxes (clipped to ``shape``)."""
    boxes = normalize_defects(defects)
    ny, nx = shape
    # 2-D difference array: +1/-1 at box corners, then cumulative sums (no loop over pixels)
    diff = np.zeros((ny + 1, nx + 1), dtype=np.int32)
    x0, y0 = np.clip(boxes[:, 0], 0, nx), np.clip(boxes[:, 1], 0, ny)
    x1, y1 = np.clip(boxes[:, 2], 0, nx), np.clip(boxes[:, 3], 0, ny)
    np.add.at(diff, (y0, x0), 1)
    np.add.at(diff, (y0, x1), -1)
    np.add.at(diff, (y1, x0), -1)
    np.add.at(diff, (y1, x1), 1)
    return np.cumsum(np.cumsum(diff, axis=0), axis=1)[:ny, :nx] > 0


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

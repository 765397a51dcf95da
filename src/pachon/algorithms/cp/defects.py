"""Defects from combined flats and darks: dead/dim pixels, bad columns and hot pixels.

Dead pixels respond less than ``1 - flat_threshold`` of their smoothed neighbourhood in the
combined flat (a median filter removes the large-scale illumination); hot pixels have a dark
current above ``hot_sigma`` robust sigma of the combined dark.  The mask is grouped into
column runs (:func:`pachon.algorithms.isr.defects.mask_to_defects`), so a bad column is one box.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from pachon.algorithms.isr.defects import mask_to_defects

__all__ = ["DefectConfig", "find_defects"]

log = logging.getLogger(__name__)


@dataclass
class DefectConfig:
    """Thresholds of the defect finder."""

    flat_threshold: float = 0.2
    hot_sigma: float = 8.0
    hot_min: float = 1.0
    smooth: int = 15


def find_defects(flat: np.ndarray | None, dark: np.ndarray | None,
                 config: DefectConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Defect boxes ``(n, 4)`` and the boolean defect mask.

    Parameters
    ----------
    flat
        Combined flat (any normalisation) or None.
    dark
        Combined dark current (e-/s) or None.
    config
        Thresholds (defaults when None).
    """
    from scipy.ndimage import median_filter

    config = config or DefectConfig()
    shape = (flat if flat is not None else dark).shape
    bad = np.zeros(shape, dtype=bool)
    if flat is not None:
        f = np.asarray(flat, float)
        smooth = median_filter(np.nan_to_num(f), size=config.smooth, mode="nearest")
        rel = f / np.where(smooth > 0, smooth, np.inf)
        bad |= ~np.isfinite(f) | (rel < 1.0 - config.flat_threshold) | (rel > 1.0 + config.flat_threshold)
    if dark is not None:
        d = np.asarray(dark, float)
        med = np.median(d)
        mad = 1.4826 * np.median(np.abs(d - med))
        bad |= d > med + max(config.hot_sigma * mad, config.hot_min)
    boxes = mask_to_defects(bad)
    log.info("found %d defect pixels in %d boxes", int(bad.sum()), len(boxes))
    return boxes, bad

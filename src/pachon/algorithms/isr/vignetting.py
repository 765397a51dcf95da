"""Vignetting: pixels outside the illuminated field of the optics.

Pixels further than ``radius_mm`` from the optical axis (focal-plane coordinates) are marked
VIGNETTED and NO_DATA; :func:`illumination_model` is the radial falloff ``1 - v (r / R)^2``
used to correct flats taken with a source that does not share the sky's vignetting.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["focal_radius", "vignetted_mask", "illumination_model"]

log = logging.getLogger(__name__)


def focal_radius(detector: Any) -> np.ndarray:
    """Focal-plane radius (mm) of every pixel of the detector."""
    b = detector.bbox
    x = np.arange(b.x0, b.x0 + b.width, dtype=np.float64)
    y = np.arange(b.y0, b.y0 + b.height, dtype=np.float64)
    fx, fy = detector.pixel_to_focal_plane(x[None, :], y[:, None])
    return np.hypot(fx, fy)


def vignetted_mask(detector: Any, radius_mm: float) -> np.ndarray:
    """True where the pixel lies beyond ``radius_mm`` from the optical axis."""
    return focal_radius(detector) > radius_mm


def illumination_model(detector: Any, coefficient: float, field_radius_mm: float) -> np.ndarray:
    """Relative illumination ``1 - coefficient (r / field_radius)^2`` of every pixel."""
    r = focal_radius(detector) / field_radius_mm
    return 1.0 - coefficient * r * r

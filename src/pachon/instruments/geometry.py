"""Focal-plane geometry: pixel ↔ focal plane (mm) ↔ field angle (radians).

Coordinate systems (Rubin's names):

* PIXELS: a detector's assembled image, 0-based, pixel centres at integers; x is the
  column, y the row.
* FOCAL_PLANE: millimetres on the focal plane, origin on the optical axis.
* FIELD_ANGLE: radians on the sky from the boresight, ``(theta_x, theta_y)`` along the
  focal-plane axes.

The optics map a focal-plane radius ``r`` (mm) to a field angle with a radial polynomial
``theta(r) = s * r * (1 + c1 r^2 + c2 r^4 + ...)`` where ``s`` is the plate scale in
radians per mm; the inverse is solved with vectorized Newton iterations.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pachon.core.errors import ConfigError

__all__ = ["RadialDistortion", "ARCSEC_PER_RADIAN", "pixel_to_focal_plane", "focal_plane_to_pixel"]

log = logging.getLogger(__name__)

ARCSEC_PER_RADIAN = 180.0 * 3600.0 / np.pi


@dataclass(frozen=True)
class RadialDistortion:
    """Radial optical distortion between the focal plane and field angles.

    Parameters
    ----------
    plate_scale
        Arcseconds per millimetre on the optical axis.
    coefficients
        ``(c1, c2, ...)`` of ``theta(r) = s r (1 + c1 r^2 + c2 r^4 + ...)``, r in mm.
    """

    plate_scale: float
    coefficients: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.plate_scale > 0:
            raise ConfigError(f"plate_scale must be positive (arcsec/mm), got {self.plate_scale!r}")
        object.__setattr__(self, "coefficients", tuple(float(c) for c in self.coefficients))

    @property
    def radians_per_mm(self) -> float:
        """The plate scale on the axis, in radians per millimetre."""
        return self.plate_scale / ARCSEC_PER_RADIAN

    def _factor(self, r2: np.ndarray) -> np.ndarray:
        factor = np.ones_like(r2)
        power = np.ones_like(r2)
        for c in self.coefficients:
            power = power * r2
            factor = factor + c * power
        return factor

    def _dfactor_dr(self, r: np.ndarray) -> np.ndarray:
        # d/dr [r * factor(r^2)] = sum (2k+1) c_k r^(2k), with c_0 = 1
        total = np.ones_like(r)
        r2 = r * r
        power = np.ones_like(r)
        for k, c in enumerate(self.coefficients, start=1):
            power = power * r2
            total = total + (2 * k + 1) * c * power
        return total

    def radius_to_angle(self, r: np.ndarray) -> np.ndarray:
        """Field angle (rad) at focal-plane radius ``r`` (mm)."""
        r = np.asarray(r, dtype=float)
        return self.radians_per_mm * r * self._factor(r * r)

    def angle_to_radius(self, theta: np.ndarray) -> np.ndarray:
        """Focal-plane radius (mm) at field angle ``theta`` (rad): Newton's method, vectorized."""
        theta = np.asarray(theta, dtype=float)
        r = theta / self.radians_per_mm
        if not self.coefficients:
            return r
        for _ in range(50):
            f = self.radius_to_angle(r) - theta
            step = f / (self.radians_per_mm * self._dfactor_dr(r))
            r = r - step
            if np.all(np.abs(step) < 1e-13 * np.maximum(1.0, np.abs(r))):
                break
        return r

    def focal_plane_to_field_angle(self, fx: np.ndarray, fy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Focal-plane position (mm) → field angle ``(theta_x, theta_y)`` (rad)."""
        fx, fy = np.broadcast_arrays(np.asarray(fx, float), np.asarray(fy, float))
        r = np.hypot(fx, fy)
        scale = self.radians_per_mm * self._factor(r * r)
        return fx * scale, fy * scale

    def field_angle_to_focal_plane(self, tx: np.ndarray, ty: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Field angle ``(theta_x, theta_y)`` (rad) → focal-plane position (mm)."""
        tx, ty = np.broadcast_arrays(np.asarray(tx, float), np.asarray(ty, float))
        theta = np.hypot(tx, ty)
        r = self.angle_to_radius(theta)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(theta > 0, r / np.where(theta > 0, theta, 1.0), 1.0 / self.radians_per_mm)
        return tx * ratio, ty * ratio


def pixel_to_focal_plane(
    x: np.ndarray, y: np.ndarray, *, center_mm: Sequence[float], yaw_deg: float,
    pixel_size_mm: float, center_pixel: Sequence[float],
) -> tuple[np.ndarray, np.ndarray]:
    """Detector pixel → focal plane (mm) for a detector centred at ``center_mm`` rotated by yaw."""
    dx = (np.asarray(x, float) - center_pixel[0]) * pixel_size_mm
    dy = (np.asarray(y, float) - center_pixel[1]) * pixel_size_mm
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    return center_mm[0] + c * dx - s * dy, center_mm[1] + s * dx + c * dy


def focal_plane_to_pixel(
    fx: np.ndarray, fy: np.ndarray, *, center_mm: Sequence[float], yaw_deg: float,
    pixel_size_mm: float, center_pixel: Sequence[float],
) -> tuple[np.ndarray, np.ndarray]:
    """Focal plane (mm) → detector pixel: the inverse of :func:`pixel_to_focal_plane`."""
    dx = np.asarray(fx, float) - center_mm[0]
    dy = np.asarray(fy, float) - center_mm[1]
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    x = (c * dx + s * dy) / pixel_size_mm + center_pixel[0]
    return x, (-s * dx + c * dy) / pixel_size_mm + center_pixel[1]

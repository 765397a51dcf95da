"""Collimated Beam Projector (CBP) coordinates: beam and mask spot → field angle → focal plane → pixels.

The CBP projects the image of a pinhole mask through the telescope as a set of collimated
beams.  Model (small-angle where stated, exactly invertible):

1. The CBP's optical axis points at offsets ``(d_az, d_alt)`` (degrees) from the telescope
   boresight, measured on the sky (``d_az`` already includes ``cos(alt)``).  The axis
   direction is the boresight rotated by ``d_az`` about the elevation axis and then by
   ``d_alt`` about the azimuth axis; its field angle is the angle from the boresight
   (exact spherical geometry), rotated by the camera rotator angle.
2. A spot at ``(sx, sy)`` mm in the CBP mask leaves the CBP at angle
   ``R(mask_rotation) · (sx, sy) / f_cbp`` from the CBP axis; it is added to the beam's field
   angle (small angles: the CBP field is about a degree).
3. The instrument's radial distortion maps the field angle to the focal plane, and the
   detector geometry to pixels.
"""

from __future__ import annotations

import logging

import numpy as np

from pachon.core.errors import ConfigError
from pachon.instruments.base import Instrument

__all__ = ["CbpTransform"]

log = logging.getLogger(__name__)


def _rotate(x: np.ndarray, y: np.ndarray, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    return c * x - s * y, s * x + c * y


class CbpTransform:
    """Transforms between CBP beam/mask coordinates and an instrument's focal plane and pixels.

    Parameters
    ----------
    instrument
        The camera the CBP shines into.
    cbp_focal_length_mm
        Focal length of the CBP projection optics (nominal Rubin CBP: 635 mm).
    mask_rotation_deg
        Rotation of the mask about the CBP axis.
    camera_rotation_deg
        Camera rotator angle: rotation from the (az, alt) frame to the focal-plane axes.
    """

    def __init__(self, instrument: Instrument, *, cbp_focal_length_mm: float = 635.0,
                 mask_rotation_deg: float = 0.0, camera_rotation_deg: float = 0.0) -> None:
        if not cbp_focal_length_mm > 0:
            raise ConfigError(f"cbp_focal_length_mm must be positive, got {cbp_focal_length_mm!r}")
        self.instrument = instrument
        self.cbp_focal_length_mm = float(cbp_focal_length_mm)
        self.mask_rotation_deg = float(mask_rotation_deg)
        self.camera_rotation_deg = float(camera_rotation_deg)

    def beam_field_angle(self, d_az_deg: np.ndarray, d_alt_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Field angle (rad) of the CBP axis pointing at ``(d_az, d_alt)`` from the boresight."""
        a, b = np.radians(np.asarray(d_az_deg, float)), np.radians(np.asarray(d_alt_deg, float))
        vx, vy, vz = np.sin(a), np.cos(a) * np.sin(b), np.cos(a) * np.cos(b)
        theta = np.arctan2(np.hypot(vx, vy), vz)
        phi = np.arctan2(vy, vx)
        return _rotate(theta * np.cos(phi), theta * np.sin(phi), self.camera_rotation_deg)

    def beam_offsets(self, tx: np.ndarray, ty: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of :meth:`beam_field_angle`: ``(d_az, d_alt)`` in degrees."""
        x, y = _rotate(np.asarray(tx, float), np.asarray(ty, float), -self.camera_rotation_deg)
        theta, phi = np.hypot(x, y), np.arctan2(y, x)
        vx, vy, vz = np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)
        return np.degrees(np.arcsin(vx)), np.degrees(np.arctan2(vy, vz))

    def spot_field_angle(self, spot_x_mm: np.ndarray, spot_y_mm: np.ndarray, *, d_az_deg: float = 0.0,
                         d_alt_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Field angle (rad) of the beam through mask spot ``(sx, sy)`` mm."""
        bx, by = self.beam_field_angle(d_az_deg, d_alt_deg)
        sx, sy = _rotate(np.asarray(spot_x_mm, float), np.asarray(spot_y_mm, float),
                         self.mask_rotation_deg + self.camera_rotation_deg)
        return bx + sx / self.cbp_focal_length_mm, by + sy / self.cbp_focal_length_mm

    def field_angle_to_spot(self, tx: np.ndarray, ty: np.ndarray, *, d_az_deg: float = 0.0,
                            d_alt_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of :meth:`spot_field_angle`: the mask position (mm) imaged at a field angle."""
        bx, by = self.beam_field_angle(d_az_deg, d_alt_deg)
        dx = (np.asarray(tx, float) - bx) * self.cbp_focal_length_mm
        dy = (np.asarray(ty, float) - by) * self.cbp_focal_length_mm
        return _rotate(dx, dy, -(self.mask_rotation_deg + self.camera_rotation_deg))

    def spot_to_focal_plane(self, spot_x_mm: np.ndarray, spot_y_mm: np.ndarray, *, d_az_deg: float = 0.0,
                            d_alt_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Mask spot (mm) → focal-plane position (mm)."""
        tx, ty = self.spot_field_angle(spot_x_mm, spot_y_mm, d_az_deg=d_az_deg, d_alt_deg=d_alt_deg)
        return self.instrument.field_angle_to_focal_plane(tx, ty)

    def spot_to_pixel(self, spot_x_mm: np.ndarray, spot_y_mm: np.ndarray, *, d_az_deg: float = 0.0,
                      d_alt_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mask spot (mm) → ``(detector id, x, y)``; detector −1 (and NaN pixels) off the sensors."""
        fx, fy = self.spot_to_focal_plane(spot_x_mm, spot_y_mm, d_az_deg=d_az_deg, d_alt_deg=d_alt_deg)
        return self.instrument.focal_plane_to_detector(fx, fy)

    def pixel_to_spot(self, detector: int | str, x: np.ndarray, y: np.ndarray, *, d_az_deg: float = 0.0,
                      d_alt_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Pixel on ``detector`` → the mask spot position (mm) that lands there."""
        fx, fy = self.instrument.detector(detector).pixel_to_focal_plane(x, y)
        tx, ty = self.instrument.focal_plane_to_field_angle(fx, fy)
        return self.field_angle_to_spot(tx, ty, d_az_deg=d_az_deg, d_alt_deg=d_alt_deg)

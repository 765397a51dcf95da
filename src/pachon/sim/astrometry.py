"""Sky ↔ focal plane ↔ pixel mapping of a simulated visit.

The boresight ``(ra0, dec0)`` projects gnomonically to standard coordinates ``(xi, eta)``
(east, north); the focal-plane axes are rotated by the visit's sky position angle so that,
as in :func:`pachon.core.wcs.make_tan_wcs`, rotation 0 puts north along +y and east along −x.
Field angles then go through the instrument's radial distortion to the focal plane (mm) and
each detector's placement to pixels.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = [
    "sky_to_field_angle",
    "field_angle_to_sky",
    "sky_to_pixel",
    "pixel_to_sky",
    "detector_tan_wcs",
    "pixel_scale_arcsec",
]

log = logging.getLogger(__name__)


def sky_to_field_angle(
    ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float, rotation_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sky positions (deg) → field angles (rad) along the focal-plane axes."""
    ra, dec = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    a0, d0 = np.radians(ra0), np.radians(dec0)
    cosc = np.sin(d0) * np.sin(dec) + np.cos(d0) * np.cos(dec) * np.cos(ra - a0)
    xi = np.cos(dec) * np.sin(ra - a0) / cosc
    eta = (np.cos(d0) * np.sin(dec) - np.sin(d0) * np.cos(dec) * np.cos(ra - a0)) / cosc
    c, s = np.cos(np.radians(rotation_deg)), np.sin(np.radians(rotation_deg))
    return -c * xi + s * eta, s * xi + c * eta


def field_angle_to_sky(
    tx: np.ndarray, ty: np.ndarray, ra0: float, dec0: float, rotation_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """Field angles (rad) → sky positions (deg): the inverse of :func:`sky_to_field_angle`."""
    c, s = np.cos(np.radians(rotation_deg)), np.sin(np.radians(rotation_deg))
    tx, ty = np.asarray(tx, float), np.asarray(ty, float)
    xi, eta = -c * tx + s * ty, s * tx + c * ty
    a0, d0 = np.radians(ra0), np.radians(dec0)
    rho = np.hypot(xi, eta)
    cc = np.arctan(rho)
    with np.errstate(invalid="ignore", divide="ignore"):
        dec = np.arcsin(
            np.cos(cc) * np.sin(d0)
            + np.where(rho > 0, eta * np.sin(cc) * np.cos(d0) / np.where(rho > 0, rho, 1.0), 0.0)
        )
    ra = a0 + np.arctan2(xi * np.sin(cc), rho * np.cos(d0) * np.cos(cc) - eta * np.sin(d0) * np.sin(cc))
    return np.degrees(ra) % 360.0, np.degrees(dec)


def sky_to_pixel(
    instrument: Any,
    detector: Any,
    ra: np.ndarray,
    dec: np.ndarray,
    ra0: float,
    dec0: float,
    rotation_deg: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Sky (deg) → pixel position on ``detector`` (0-based, pixel centres at integers)."""
    tx, ty = sky_to_field_angle(ra, dec, ra0, dec0, rotation_deg)
    fx, fy = instrument.field_angle_to_focal_plane(tx, ty)
    return detector.focal_plane_to_pixel(fx, fy)


def pixel_to_sky(
    instrument: Any, detector: Any, x: np.ndarray, y: np.ndarray, ra0: float, dec0: float, rotation_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel position on ``detector`` → sky (deg)."""
    fx, fy = detector.pixel_to_focal_plane(x, y)
    tx, ty = instrument.focal_plane_to_field_angle(fx, fy)
    return field_angle_to_sky(tx, ty, ra0, dec0, rotation_deg)


def pixel_scale_arcsec(instrument: Any, detector: Any) -> float:
    """Pixel size on the sky (arcsec) at the optical axis."""
    return float(instrument.plate_scale * detector.pixel_size_mm)


def detector_tan_wcs(instrument: Any, detector: Any, ra0: float, dec0: float, rotation_deg: float) -> Any:
    """An approximate TAN WCS of ``detector`` (distortion ignored), as written in raw headers."""
    from pachon.core.wcs import make_tan_wcs

    x0, y0 = detector.focal_plane_to_pixel(np.array(0.0), np.array(0.0))
    return make_tan_wcs(
        ra0,
        dec0,
        pixel_scale_arcsec(instrument, detector),
        rotation_deg=rotation_deg - detector.yaw_deg,
        crpix=(float(x0), float(y0)),
    )

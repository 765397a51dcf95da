"""Sky regions of the image services: DALI/STC-S text, WCS footprints and lon/lat ranges.

The IVOA parameters arrive as text: DALI ``circle`` (``"ra dec radius"``), ``polygon``
(``"ra1 dec1 ra2 dec2 ..."``), SIAv2 ``POS`` (``"CIRCLE ..."``, ``"RANGE ra1 ra2 dec1 dec2"``,
``"POLYGON ..."``) and ObsCore ``s_region`` strings in STC-S (``"POLYGON ICRS ra1 dec1 ..."``).
All angles are degrees, ICRS.  Parsing errors raise `ConfigError` naming the parameter, which
the handlers turn into an IVOA ``UsageError``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pachon.core.errors import ConfigError
from pachon.core.sphgeom import Circle, ConvexPolygon, Region

__all__ = [
    "LonLatRange",
    "parse_circle",
    "parse_polygon",
    "parse_pos",
    "region_to_stcs",
    "stcs_to_region",
    "wcs_footprint",
    "region_overlaps",
    "boundary_points",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LonLatRange:
    """A SIAv2 ``RANGE``: ``ra_min <= ra <= ra_max`` and ``dec_min <= dec <= dec_max`` (deg).

    ``ra_min > ra_max`` wraps through RA 0.  Overlap with a footprint is tested on the
    footprint's vertices and densified edges and on the range's own corners and centre, which is
    exact unless a footprint edge crosses the range without a sample point inside (ranges
    narrower than a footprint edge sample spacing, 1/16 of an edge).
    """

    ra_min: float
    ra_max: float
    dec_min: float
    dec_max: float

    def contains(self, ra: Any, dec: Any) -> np.ndarray:
        """Whether each point (degrees) lies in the range."""
        ra, dec = np.asarray(ra, float) % 360.0, np.asarray(dec, float)
        lo, hi = self.ra_min, self.ra_max
        if hi - lo >= 360.0:
            in_ra = np.ones(ra.shape, bool)
        else:
            lo, hi = lo % 360.0, hi % 360.0
            in_ra = (ra >= lo) & (ra <= hi) if lo <= hi else (ra >= lo) | (ra <= hi)
        return in_ra & (dec >= self.dec_min) & (dec <= self.dec_max)

    def corners(self) -> tuple[np.ndarray, np.ndarray]:
        """Corner and edge-midpoint samples of the range (finite ends only)."""
        lo = self.ra_min
        hi = self.ra_max if self.ra_max >= lo else self.ra_max + 360.0
        ras = np.linspace(lo, hi, 5)
        decs = np.linspace(self.dec_min, self.dec_max, 5)
        rr, dd = np.meshgrid(ras, decs)
        return rr.ravel() % 360.0, dd.ravel()


def _numbers(text: str, name: str) -> np.ndarray:
    try:
        values = np.array([float(v) for v in str(text).replace(",", " ").split()], float)
    except ValueError:
        raise ConfigError(f"{name}={text!r}: expected numbers separated by spaces (degrees)") from None
    if values.size and not np.all(np.isfinite(values) | np.isinf(values)):
        raise ConfigError(f"{name}={text!r}: NaN is not a valid coordinate")
    return values


def parse_circle(text: str, name: str = "CIRCLE") -> Circle:
    """A DALI circle ``"ra dec radius"`` (degrees)."""
    v = _numbers(text, name)
    if v.size != 3 or not np.all(np.isfinite(v)):
        raise ConfigError(f"{name}={text!r}: a circle is 3 finite numbers 'ra dec radius' in degrees")
    if not -90.0 <= v[1] <= 90.0 or not 0.0 < v[2] <= 180.0:
        raise ConfigError(f"{name}={text!r}: need -90 <= dec <= 90 and 0 < radius <= 180 degrees")
    return Circle(v[0], v[1], v[2])


def parse_polygon(text: str, name: str = "POLYGON") -> ConvexPolygon:
    """A DALI polygon ``"ra1 dec1 ra2 dec2 ra3 dec3 ..."`` (either winding, convex)."""
    v = _numbers(text, name)
    if v.size < 6 or v.size % 2 or not np.all(np.isfinite(v)):
        raise ConfigError(
            f"{name}={text!r}: a polygon is at least 3 vertices given as 'ra1 dec1 ra2 dec2 ra3 dec3'"
        )
    try:
        return ConvexPolygon.from_corners(v[0::2], v[1::2])
    except ConfigError as exc:
        raise ConfigError(f"{name}={text!r}: {exc}") from None


def _parse_range(text: str, name: str) -> LonLatRange:
    v = _numbers(text, name)
    if v.size != 4:
        raise ConfigError(f"{name}=RANGE {text!r}: a range is 4 numbers 'ra1 ra2 dec1 dec2'")
    ra1, ra2 = (0.0 if math.isinf(v[0]) else v[0]), (360.0 if math.isinf(v[1]) else v[1])
    dec1, dec2 = max(v[2], -90.0), min(v[3], 90.0)
    if dec1 > dec2:
        raise ConfigError(f"{name}=RANGE {text!r}: dec1 must not exceed dec2")
    return LonLatRange(ra1, ra2, dec1, dec2)


def parse_pos(text: str, name: str = "POS") -> Region | LonLatRange:
    """A SIAv2/SODA ``POS``: ``CIRCLE ra dec r``, ``RANGE ra1 ra2 dec1 dec2`` or ``POLYGON ...``."""
    shape, _, rest = str(text).strip().partition(" ")
    shape = shape.upper()
    if shape == "CIRCLE":
        return parse_circle(rest, name)
    if shape == "POLYGON":
        return parse_polygon(rest, name)
    if shape == "RANGE":
        return _parse_range(rest, name)
    raise ConfigError(f"{name}={text!r}: the shape must be CIRCLE, RANGE or POLYGON")


def region_to_stcs(region: Region) -> str:
    """STC-S text of a region (``"POLYGON ICRS ..."`` or ``"CIRCLE ICRS ..."``), 10 decimals."""
    if isinstance(region, Circle):
        return f"CIRCLE ICRS {region.ra:.10f} {region.dec:.10f} {region.radius:.10f}"
    if isinstance(region, ConvexPolygon):
        verts = zip(region.ra_vertices, region.dec_vertices, strict=True)
        pairs = " ".join(f"{r:.10f} {d:.10f}" for r, d in verts)
        return f"POLYGON ICRS {pairs}"
    raise ConfigError(f"cannot write {type(region).__name__} as STC-S; use a Circle or ConvexPolygon")


def stcs_to_region(text: str) -> Region:
    """Read back an STC-S ``POLYGON``/``CIRCLE`` (frame word optional) as a Region."""
    words = str(text).split()
    if not words:
        raise ConfigError("empty s_region string")
    shape = words[0].upper()
    rest = [w for w in words[1:] if not w[0].isalpha()]
    if shape == "CIRCLE":
        return parse_circle(" ".join(rest), "s_region")
    if shape == "POLYGON":
        return parse_polygon(" ".join(rest), "s_region")
    raise ConfigError(f"s_region {text!r}: only POLYGON and CIRCLE are supported")


def wcs_footprint(wcs: Any, width: int, height: int, x0: int = 0, y0: int = 0) -> ConvexPolygon:
    """The sky polygon through the outer pixel corners of a ``width`` x ``height`` image.

    ``wcs`` maps 0-based pixel positions of the grid whose first pixel is ``(x0, y0)``.
    """
    xs = np.array([x0 - 0.5, x0 + width - 0.5, x0 + width - 0.5, x0 - 0.5])
    ys = np.array([y0 - 0.5, y0 - 0.5, y0 + height - 0.5, y0 + height - 0.5])
    ra, dec = wcs.all_pix2world(xs, ys, 0)
    return ConvexPolygon.from_corners(ra, dec)


def boundary_points(region: Region | LonLatRange, n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Points along a region's boundary (densified polygon edges, circle rim), degrees."""
    if isinstance(region, Circle):
        from pachon.core.sphgeom import lonlat_to_vector, vector_to_lonlat

        c = lonlat_to_vector(region.ra, region.dec)
        ref = np.array([0.0, 0.0, 1.0]) if abs(c[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
        u = np.cross(c, ref)
        u /= np.linalg.norm(u)
        w = np.cross(c, u)
        t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)[:, None]
        r = np.radians(region.radius)
        vec = np.cos(r) * c + np.sin(r) * (np.cos(t) * u + np.sin(t) * w)
        return vector_to_lonlat(vec)
    if isinstance(region, ConvexPolygon):
        from pachon.core.sphgeom import vector_to_lonlat

        a = region.vertices
        b = np.roll(a, -1, axis=0)
        k = max(2, n // len(a))
        f = np.linspace(0.0, 1.0, k, endpoint=False)[None, :, None]
        pts = a[:, None, :] * (1 - f) + b[:, None, :] * f
        pts = pts.reshape(-1, 3)
        return vector_to_lonlat(pts / np.linalg.norm(pts, axis=1)[:, None])
    if isinstance(region, LonLatRange):
        return region.corners()
    raise ConfigError(f"no boundary for {type(region).__name__}")


def region_overlaps(footprint: Region, query: Region | LonLatRange) -> bool:
    """Whether an image footprint and a query region (or lon/lat range) share a point."""
    if not isinstance(query, LonLatRange):
        return bool(footprint.overlaps(query))
    ra, dec = boundary_points(footprint, 64)
    if np.any(query.contains(ra, dec)):
        return True
    qra, qdec = query.corners()
    return bool(np.any(footprint.contains(qra, qdec)))

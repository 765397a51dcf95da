"""Spherical geometry: angular separations, unit vectors and sky regions.

Everything takes and returns degrees.  Internally points are unit vectors in the usual
equatorial frame (x towards RA=0/Dec=0, z towards the north pole), which removes every special
case at RA = 0/360 and at the poles.

Regions are :class:`Circle` (a spherical cap) and :class:`ConvexPolygon` (great-circle edges).
Polygon vertices go **counter-clockwise as seen from outside the sphere**, which is the same as
counter-clockwise in an (RA, Dec) plot with RA increasing to the right (the convention of Rubin's
``lsst.sphgeom``).  Detector corners taken in pixel order through a standard east-left WCS come
out clockwise: use :meth:`ConvexPolygon.from_corners`, which accepts either direction.
A point lies in a polygon when it is on the inner side of every edge's great circle; points
exactly on an edge count as inside.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pachon.core.errors import ConfigError

__all__ = [
    "angular_separation",
    "lonlat_to_vector",
    "vector_to_lonlat",
    "Region",
    "Circle",
    "ConvexPolygon",
]

_log = logging.getLogger(__name__)


def angular_separation(ra1: ArrayLike, dec1: ArrayLike, ra2: ArrayLike, dec2: ArrayLike) -> NDArray:
    """Great-circle distance between two sets of points (broadcasting), in degrees.

    Uses the Vincenty form (``atan2`` of the cross and dot products), accurate to rounding both
    for tiny separations and near the antipode, where ``acos`` and haversine lose digits.

    Parameters
    ----------
    ra1, dec1, ra2, dec2
        Coordinates in degrees; any broadcastable shapes.
    """
    ra1, dec1, ra2, dec2 = (np.asarray(a, dtype=float) for a in (ra1, dec1, ra2, dec2))
    # Differences are taken in degrees first (exact for nearby points), and the formula is
    # rearranged around sin/cos of the Dec difference, so tiny separations keep full relative
    # precision instead of being limited by the rounding of each coordinate in radians.
    dl = np.radians(ra2 - ra1)
    db = np.radians(dec2 - dec1)
    b1, b2 = np.radians(dec1), np.radians(dec2)
    sb1, cb1, cb2 = np.sin(b1), np.cos(b1), np.cos(b2)
    hav = 2.0 * np.sin(dl / 2.0) ** 2  # 1 - cos(dl), without cancellation
    num1 = cb2 * np.sin(dl)
    num2 = np.sin(db) + sb1 * cb2 * hav
    den = np.cos(db) - cb1 * cb2 * hav
    return np.degrees(np.arctan2(np.hypot(num1, num2), den))


def lonlat_to_vector(ra: ArrayLike, dec: ArrayLike) -> NDArray:
    """Unit vectors, shape ``(..., 3)``, for RA/Dec in degrees."""
    lon = np.radians(np.asarray(ra, dtype=float))
    lat = np.radians(np.asarray(dec, dtype=float))
    cos_lat = np.cos(lat)
    return np.stack([cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)], axis=-1)


def vector_to_lonlat(vec: ArrayLike) -> tuple[NDArray, NDArray]:
    """RA in [0, 360) and Dec in [-90, 90], degrees, for vectors of shape ``(..., 3)``.

    The vectors need not be normalised.
    """
    v = np.asarray(vec, dtype=float)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    ra = np.degrees(np.arctan2(y, x)) % 360.0
    ra = np.where(ra >= 360.0, 0.0, ra)  # -tiny % 360 rounds to 360
    dec = np.degrees(np.arctan2(z, np.hypot(x, y)))
    return ra, dec


def _normalize(v: NDArray) -> NDArray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _cross(a: NDArray, b: NDArray) -> NDArray:
    """Cross product over the last axis (broadcasting; much faster than np.cross on small arrays)."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def _vector_angle(a: NDArray, b: NDArray) -> NDArray:
    """Angle in radians between (not necessarily unit) vectors, stable at 0 and pi."""
    return np.arctan2(np.linalg.norm(_cross(a, b), axis=-1), np.sum(a * b, axis=-1))


class Region(ABC):
    """A region of the sky.

    Subclasses register themselves under a ``kind`` name used by :meth:`to_dict`.
    """

    kind: ClassVar[str] = ""
    _kinds: ClassVar[dict[str, type[Region]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Region._kinds[cls.kind] = cls

    @abstractmethod
    def contains(self, ra: ArrayLike, dec: ArrayLike) -> NDArray:
        """Whether each point (degrees) lies inside the region (boolean array)."""

    @abstractmethod
    def bounding_circle(self) -> Circle:
        """A circle containing the whole region."""

    @abstractmethod
    def area(self) -> float:
        """Solid angle in steradians."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description, read back by :meth:`Region.from_dict`."""

    @abstractmethod
    def distance(self, ra: ArrayLike, dec: ArrayLike) -> NDArray:
        """Angular distance in degrees from each point to the region (0 inside)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Region:
        """Rebuild a region from :meth:`to_dict` output.

        Parameters
        ----------
        data
            A mapping with a ``"type"`` key naming the region kind.
        """
        kind = data.get("type")
        if kind not in Region._kinds:
            raise ConfigError(f"region 'type' {kind!r} is unknown; expected one of {sorted(Region._kinds)}")
        return Region._kinds[kind]._from_dict(data)

    @classmethod
    @abstractmethod
    def _from_dict(cls, data: dict[str, Any]) -> Region: ...

    def overlaps(self, other: Region) -> bool:
        """Whether the two regions share at least one point.

        Exact for circle/circle, polygon/circle and polygon/polygon.  Other combinations fall
        back to comparing bounding circles (conservative: may answer True wrongly, never False).
        """
        if isinstance(other, Circle):
            return bool(self.distance(other.ra, other.dec) <= other.radius)
        if isinstance(self, Circle):
            return bool(other.distance(self.ra, self.dec) <= self.radius)
        a, b = self.bounding_circle(), other.bounding_circle()
        return a.overlaps(b)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Region) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "type")
        return f"{type(self).__name__}({args})"


class Circle(Region):
    """A spherical cap: every point within ``radius`` degrees of (``ra``, ``dec``).

    Parameters
    ----------
    ra, dec
        Centre in degrees.
    radius
        Opening angle in degrees, 0 to 180.
    """

    kind = "circle"

    def __init__(self, ra: float, dec: float, radius: float) -> None:
        if not -90.0 <= dec <= 90.0:
            raise ConfigError(f"Circle dec={dec!r} is outside [-90, 90] degrees")
        if not 0.0 <= radius <= 180.0:
            raise ConfigError(f"Circle radius={radius!r} must be in [0, 180] degrees")
        self.ra, self.dec, self.radius = float(ra) % 360.0, float(dec), float(radius)
        self.center = lonlat_to_vector(self.ra, self.dec)

    def contains(self, ra: ArrayLike, dec: ArrayLike) -> NDArray:
        """Whether each point (degrees) lies within the cap (boolean array)."""
        return np.asarray(angular_separation(self.ra, self.dec, ra, dec) <= self.radius)

    def distance(self, ra: ArrayLike, dec: ArrayLike) -> NDArray:
        """Angular distance in degrees from each point to the cap (0 inside)."""
        return np.maximum(angular_separation(self.ra, self.dec, ra, dec) - self.radius, 0.0)

    def bounding_circle(self) -> Circle:
        """The circle itself."""
        return self

    def area(self) -> float:
        """Solid angle in steradians, ``4 pi sin^2(r/2)`` (stable for small radii)."""
        return float(4.0 * np.pi * np.sin(np.radians(self.radius) / 2.0) ** 2)

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "circle", "ra": ..., "dec": ..., "radius": ...}``."""
        return {"type": self.kind, "ra": self.ra, "dec": self.dec, "radius": self.radius}

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Circle:
        return cls(data["ra"], data["dec"], data["radius"])


class ConvexPolygon(Region):
    """A convex spherical polygon with great-circle edges.

    Parameters
    ----------
    ra_vertices, dec_vertices
        Vertices in degrees, counter-clockwise as seen from outside the sphere (RA increasing to
        the right, Dec up), without repeating the first vertex.  At least 3.

    Raises
    ------
    ConfigError
        If there are fewer than 3 vertices, repeated vertices, or the polygon is not convex and
        counter-clockwise.
    """

    kind = "convex_polygon"
    _TOL = 1e-15

    def __init__(self, ra_vertices: ArrayLike, dec_vertices: ArrayLike) -> None:
        ra = np.atleast_1d(np.asarray(ra_vertices, dtype=float)) % 360.0
        dec = np.atleast_1d(np.asarray(dec_vertices, dtype=float))
        if ra.shape != dec.shape or ra.ndim != 1 or ra.size < 3:
            raise ConfigError(
                f"ConvexPolygon needs equal-length 1-D vertex lists of at least 3 points, got "
                f"ra_vertices of shape {ra.shape} and dec_vertices of shape {dec.shape}"
            )
        if np.any(np.abs(dec) > 90.0) or not np.all(np.isfinite(ra)):
            raise ConfigError(f"ConvexPolygon vertices must be finite with |dec| <= 90, got dec={dec}")
        self.ra_vertices, self.dec_vertices = ra, dec
        self.vertices = lonlat_to_vector(ra, dec)
        nxt = np.roll(self.vertices, -1, axis=0)
        edges = _cross(self.vertices, nxt)
        norms = np.linalg.norm(edges, axis=1)
        if np.any(norms <= 1e-15):
            raise ConfigError(
                "ConvexPolygon has repeated or antipodal consecutive vertices; give distinct "
                f"vertices without repeating the first one (ra={ra.tolist()}, dec={dec.tolist()})"
            )
        self.normals = edges / norms[:, None]
        side = self.normals @ self.vertices.T  # side[i, j]: vertex j against edge i
        n = ra.size
        others = ~(np.eye(n, dtype=bool) | np.eye(n, k=1, dtype=bool) | np.eye(n, k=1 - n, dtype=bool))
        bad = side[others]
        if bad.size and np.all(bad <= self._TOL):
            raise ConfigError(
                "ConvexPolygon vertices run clockwise; give them counter-clockwise as seen from "
                "outside the sphere (RA increasing to the right), or use ConvexPolygon.from_corners"
            )
        if np.any(bad < -1e-12):
            raise ConfigError(
                f"ConvexPolygon vertices ra={ra.tolist()}, dec={dec.tolist()} do not form a convex "
                "polygon in counter-clockwise order"
            )

    @classmethod
    def from_corners(cls, ra: ArrayLike, dec: ArrayLike) -> ConvexPolygon:
        """Build a polygon from vertices given in either rotational direction.

        Parameters
        ----------
        ra, dec
            Vertices in degrees, in order around the polygon (clockwise or counter-clockwise).
        """
        ra_a, dec_a = np.asarray(ra, dtype=float), np.asarray(dec, dtype=float)
        v = lonlat_to_vector(ra_a, dec_a)
        if v.shape[0] >= 3:
            orient = np.sum(_cross(v, np.roll(v, -1, axis=0)) @ v.sum(axis=0))
            if orient < 0:
                return cls(ra_a[::-1], dec_a[::-1])
        return cls(ra_a, dec_a)

    def contains(self, ra: ArrayLike, dec: ArrayLike) -> NDArray:
        """Whether each point (degrees) lies inside or on the polygon (boolean array)."""
        p = lonlat_to_vector(ra, dec)
        return np.all(p @ self.normals.T >= -self._TOL, axis=-1)

    def _distance_vec(self, p: NDArray) -> NDArray:
        """Angular distance in radians from unit vectors ``(N, 3)`` to the polygon."""
        a = self.vertices
        b = np.roll(a, -1, axis=0)
        n = self.normals
        pn = p @ n.T  # (N, E) sine of the distance to each edge's great circle
        inside = np.all(pn >= -self._TOL, axis=1)
        # the foot of the perpendicular lies on the arc when it sits between a and b
        q = p[:, None, :] - pn[..., None] * n[None, :, :]
        on_arc = (np.einsum("ek,nek->ne", _cross(n, a), q) >= 0) & (
            np.einsum("ek,nek->ne", _cross(b, n), q) >= 0
        )
        d_line = np.arcsin(np.clip(np.abs(pn), 0.0, 1.0))
        d_vert = _vector_angle(p[:, None, :], a[None, :, :])
        d_edge = np.where(on_arc, d_line, np.inf)
        d = np.minimum(d_edge.min(axis=1), d_vert.min(axis=1))
        return np.where(inside, 0.0, d)

    def distance(self, ra: ArrayLike, dec: ArrayLike) -> NDArray:
        """Angular distance in degrees from each point to the polygon (0 inside)."""
        p = lonlat_to_vector(ra, dec)
        shape = p.shape[:-1]
        return np.degrees(self._distance_vec(p.reshape(-1, 3))).reshape(shape)

    def bounding_circle(self) -> Circle:
        """A circle around the vertex centroid through the farthest vertex (slightly padded)."""
        center = _normalize(self.vertices.sum(axis=0))
        radius = np.degrees(_vector_angle(center[None, :], self.vertices).max())
        ra, dec = vector_to_lonlat(center)
        return Circle(float(ra), float(dec), min(180.0, radius * (1 + 1e-9) + 1e-12))

    def area(self) -> float:
        """Solid angle in steradians (fan of triangles, Van Oosterom-Strackee formula)."""
        a = self.vertices[0]
        b, c = self.vertices[1:-1], self.vertices[2:]
        triple = np.einsum("k,nk->n", a, _cross(b, c))
        den = 1.0 + b @ a + np.sum(b * c, axis=1) + c @ a
        return float(np.sum(2.0 * np.arctan2(triple, den)))

    def overlaps(self, other: Region) -> bool:
        """Whether the regions share a point (exact against circles and convex polygons)."""
        if not isinstance(other, ConvexPolygon):
            return super().overlaps(other)
        if not self.bounding_circle().overlaps(other.bounding_circle()):
            return False
        if np.any(other.contains(self.ra_vertices, self.dec_vertices)) or np.any(
            self.contains(other.ra_vertices, other.dec_vertices)
        ):
            return True
        return _edges_cross(self, other)

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "convex_polygon", "ra": [...], "dec": [...]}``."""
        return {"type": self.kind, "ra": self.ra_vertices.tolist(), "dec": self.dec_vertices.tolist()}

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> ConvexPolygon:
        return cls(data["ra"], data["dec"])


def _edges_cross(p1: ConvexPolygon, p2: ConvexPolygon) -> bool:
    """Whether any edge of ``p1`` crosses any edge of ``p2`` (all pairs at once)."""
    a0, n1 = p1.vertices, p1.normals
    a1 = np.roll(a0, -1, axis=0)
    b0, n2 = p2.vertices, p2.normals
    b1 = np.roll(b0, -1, axis=0)
    x = _cross(n1[:, None, :], n2[None, :, :])  # (E1, E2, 3): both candidate crossings +-x
    ok = np.linalg.norm(x, axis=-1) > 1e-15
    hit = np.zeros(ok.shape, dtype=bool)
    for sign in (1.0, -1.0):
        xs = sign * x
        on1 = (np.einsum("ik,ijk->ij", _cross(n1, a0), xs) >= 0) & (
            np.einsum("ik,ijk->ij", _cross(a1, n1), xs) >= 0
        )
        on2 = (np.einsum("jk,ijk->ij", _cross(n2, b0), xs) >= 0) & (
            np.einsum("jk,ijk->ij", _cross(b1, n2), xs) >= 0
        )
        hit |= on1 & on2
    return bool(np.any(hit & ok))

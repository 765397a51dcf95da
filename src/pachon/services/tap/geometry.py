"""ADQL geometry (POINT, CIRCLE, BOX, POLYGON; CONTAINS, INTERSECTS, DISTANCE...) as SQL.

The back end has no geometry type: geometries exist only while translating.  A predicate such as
``CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 150, 2, 0.1)) = 1`` becomes plain SQL on the
point's columns:

- the exact test: haversine separation (numerically stable at small angles) <= radius; for a
  polygon, the point's unit vector on the inner side of every edge's great circle (convex
  polygons, either orientation);
- a prefilter ANDed in front when the region is constant: a declination band and, away from the
  poles, a right-ascension window (wrapping at 0/360).  It changes no result (the band contains
  the region) but lets DuckDB skip row groups by their min/max statistics, on tables sorted by
  declination, so a cone search on 10^7 rows reads a few row groups.
- on PostgreSQL (``q3c=True``) the prefilter is instead a Q3C index call on a circle a hair
  wider than the region (``q3c_radial_query`` for a constant centre, ``q3c_join`` otherwise), and
  the exact test above still decides: both back ends return exactly the same rows.

BOX(x, y, w, h) is taken as the polygon with corners (x±w/2, y±h/2) (ADQL 2.1 deprecates BOX).
Geometry values in the select list, and regions held in columns (e.g. ObsCore ``s_region``), are
not supported: the translator says so (`QueryError`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from pachon.core.errors import QueryError

__all__ = ["Geometry", "separation_sql", "contains_sql", "intersects_sql", "area_sql", "constant"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Geometry:
    """A geometry during translation: kind and SQL texts of its numbers.

    ``point``: (x, y); ``circle``: (x, y, r); ``polygon``: (x1, y1, x2, y2, ...), all degrees.
    """

    kind: str
    args: tuple[str, ...]


def constant(sql: str) -> float | None:
    """The value of a numeric literal SQL text (``-1.5``, ``(2)``), else None."""
    text = sql.strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    try:
        return float(text)
    except ValueError:
        return None


def separation_sql(x1: str, y1: str, x2: str, y2: str) -> str:
    """SQL of the angular separation (deg) between two points (haversine formula)."""
    hav = (
        f"POWER(SIN(RADIANS(({y2}) - ({y1})) / 2), 2) + COS(RADIANS({y1})) * COS(RADIANS({y2})) "
        f"* POWER(SIN(RADIANS(({x2}) - ({x1})) / 2), 2)"
    )
    return f"DEGREES(2 * ASIN(LEAST(1.0, SQRT({hav}))))"


def _band(x: str, y: str, cx: float, cy: float, r: float) -> list[str]:
    """Prefilter terms for points (x, y) within r of (cx, cy) (all constants but x, y)."""
    lo, hi = cy - r, cy + r
    terms = [f"({y}) BETWEEN {lo!r} AND {hi!r}"]
    if hi < 89.0 and lo > -89.0 and r < 30.0:
        dra = math.degrees(math.asin(min(1.0, math.sin(math.radians(r)) / math.cos(math.radians(cy)))))
        # widen a hair: the exact test decides, the window must only never cut a true match
        dra = dra * 1.0001 + 1e-9
        a, b = (cx - dra) % 360.0, (cx + dra) % 360.0
        if 2 * dra < 360.0:
            terms.append(
                f"({x}) BETWEEN {a!r} AND {b!r}" if a <= b else f"(({x}) >= {a!r} OR ({x}) <= {b!r})"
            )
    return terms


def _q3c(x: str, y: str, cx: str, cy: str, r: str) -> str:
    """Q3C index prefilter: (x, y) within a circle a hair wider than r around (cx, cy)."""
    wide = f"(({r}) * 1.000001 + 1e-9)"
    if all(constant(v) is not None for v in (cx, cy, r)):
        return f"q3c_radial_query({x}, {y}, {cx}, {cy}, {wide})"
    return f"q3c_join({cx}, {cy}, {x}, {y}, {wide})"


def _point_in_circle(p: Geometry, c: Geometry, q3c: bool = False) -> str:
    x, y = p.args
    cx, cy, r = c.args
    exact = f"{separation_sql(x, y, cx, cy)} <= ({r})"
    if q3c:
        return f"({_q3c(x, y, cx, cy, r)} AND {exact})"
    vals = [constant(v) for v in (cx, cy, r)]
    if any(v is None for v in vals):
        return f"({exact})"
    return "(" + " AND ".join([*_band(x, y, *vals), exact]) + ")"


def _vectors(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    lon, lat = np.radians(lon), np.radians(lat)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def _point_in_polygon(p: Geometry, poly: Geometry, q3c: bool = False) -> str:
    x, y = p.args
    vals = [constant(v) for v in poly.args]
    if any(v is None for v in vals):
        raise QueryError("POLYGON vertices must be numeric constants in this service")
    lon, lat = np.array(vals[0::2]), np.array(vals[1::2])
    if len(lon) < 3:
        raise QueryError(f"a POLYGON needs at least 3 vertices, got {len(lon)}")
    v = _vectors(lon, lat)
    normals = np.cross(v, np.roll(v, -1, axis=0))
    centre = v.sum(axis=0)
    norm = np.linalg.norm(centre)
    if norm < 1e-12:
        raise QueryError("degenerate POLYGON: its vertices surround no area")
    centre /= norm
    if np.sum(normals @ centre) < 0:
        normals = -normals
    px = f"COS(RADIANS({y})) * COS(RADIANS({x}))"
    py = f"COS(RADIANS({y})) * SIN(RADIANS({x}))"
    pz = f"SIN(RADIANS({y}))"
    tests = [
        f"({float(n[0])!r} * {px} + {float(n[1])!r} * {py} + {float(n[2])!r} * {pz}) >= 0" for n in normals
    ]
    c_lon = math.degrees(math.atan2(float(centre[1]), float(centre[0]))) % 360
    c_lat = math.degrees(math.asin(float(centre[2])))
    radius = float(np.degrees(np.arccos(np.clip(v @ centre, -1, 1))).max()) * 1.0001 + 1e-9
    prefilter = [_q3c(x, y, repr(c_lon), repr(c_lat), repr(radius))] if q3c else _band(
        x, y, c_lon, c_lat, radius
    )
    return "(" + " AND ".join([*prefilter, *tests]) + ")"


def contains_sql(a: Geometry, b: Geometry, *, q3c: bool = False) -> str:
    """SQL (boolean) of ADQL ``CONTAINS(a, b)``: ``a`` lies within ``b``.

    ``q3c``: prefilter with the Q3C index functions (PostgreSQL) instead of coordinate ranges.
    """
    if a.kind == "point" and b.kind == "circle":
        return _point_in_circle(a, b, q3c)
    if a.kind == "point" and b.kind == "polygon":
        return _point_in_polygon(a, b, q3c)
    if a.kind == "circle" and b.kind == "circle":
        x1, y1, r1 = a.args
        x2, y2, r2 = b.args
        return f"({separation_sql(x1, y1, x2, y2)} + ({r1}) <= ({r2}))"
    raise QueryError(
        f"CONTAINS({a.kind.upper()}, {b.kind.upper()}) is not supported; use a POINT "
        "in a CIRCLE or POLYGON, or a CIRCLE in a CIRCLE"
    )


def intersects_sql(a: Geometry, b: Geometry, *, q3c: bool = False) -> str:
    """SQL (boolean) of ADQL ``INTERSECTS(a, b)`` (``q3c`` as in `contains_sql`)."""
    if b.kind == "point":
        a, b = b, a
    if a.kind == "point":
        return contains_sql(a, b, q3c=q3c)
    if a.kind == "circle" and b.kind == "circle":
        x1, y1, r1 = a.args
        x2, y2, r2 = b.args
        return f"({separation_sql(x1, y1, x2, y2)} <= ({r1}) + ({r2}))"
    raise QueryError(
        f"INTERSECTS({a.kind.upper()}, {b.kind.upper()}) is not supported; use a POINT "
        "with a CIRCLE or POLYGON, or two CIRCLEs"
    )


def area_sql(g: Geometry) -> str:
    """SQL of ADQL ``AREA(g)`` (square degrees) for a circle."""
    if g.kind != "circle":
        raise QueryError(f"AREA({g.kind.upper()}) is not supported; AREA takes a CIRCLE here")
    r = g.args[2]
    return f"(2 * PI() * (1 - COS(RADIANS({r}))) * POWER(180 / PI(), 2))"

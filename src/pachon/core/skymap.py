"""A tract/patch tessellation of the whole sky ("rings" sky map).

The sphere is cut into ``num_rings`` rings of equal declination height
``delta = 180 / (num_rings + 1)`` degrees plus two polar caps of radius ``delta / 2``:

- tract 0 is the south cap (Dec < -90 + delta/2), the last tract the north cap;
- ring ``i`` covers ``-90 + delta/2 + i*delta <= Dec < -90 + delta/2 + (i+1)*delta`` and is cut
  into ``n_i = ceil(360 * cos(Dec_eq) / delta)`` tracts of equal RA width starting at RA = 0,
  where ``Dec_eq`` is the ring edge nearest the equator (so no tract is wider than ``delta``
  there); tract ids run through the rings from south to north, RA increasing.

That area is a tract's *inner region*: every point of the sky belongs to exactly one, the one
:meth:`SkyMap.find_tract` returns.  Each tract has a gnomonic (TAN) WCS centred on its inner
region, east to the left (``CD1_1 = -pixel_scale``), and a pixel bounding box holding the inner
region plus ``tract_overlap / 2`` on every side, rounded up to a whole number of patches and
surrounded by ``patch_border`` pixels.  Patches tile the tract: the inner boxes
(``patch_inner_dimensions``) abut, the outer boxes add ``patch_border`` on each side and stay in
the tract box.  Because a TAN projection maps straight pixel lines to great circles, the sky
regions of tracts and patches (the outer boxes) are exact :class:`~pachon.core.sphgeom.ConvexPolygon`\\ s.
Patch ids are ``cell_y * nx + cell_x``.  Defaults follow Rubin's LSST rings sky map (120 rings,
0.2 arcsec pixels, 4000-pixel patches with a 100-pixel border, 1 arcmin tract overlap).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pachon.core.errors import ConfigError
from pachon.core.geom import Box
from pachon.core.progress import progress
from pachon.core.sphgeom import ConvexPolygon, lonlat_to_vector

__all__ = ["SkyMapConfig", "SkyMap", "Tract", "Patch"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SkyMapConfig:
    """Parameters of a rings sky map (all have LSST-like defaults).

    Attributes
    ----------
    name
        Sky map name used in data IDs.
    num_rings
        Number of declination rings between the polar caps.
    pixel_scale
        Tract pixel scale in arcsec.
    patch_inner_dimensions
        Patch inner box size (width, height) in pixels.
    patch_border
        Pixels added on each side of a patch's inner box to make its outer box.
    tract_overlap
        Degrees of sky shared by neighbouring tracts (half of it added on each side).
    """

    name: str = "pachon_rings"
    num_rings: int = 120
    pixel_scale: float = 0.2
    patch_inner_dimensions: tuple[int, int] = (4000, 4000)
    patch_border: int = 100
    tract_overlap: float = 1.0 / 60.0

    def __post_init__(self) -> None:
        if not isinstance(self.num_rings, int) or self.num_rings < 1:
            raise ConfigError(f"SkyMapConfig.num_rings must be a positive integer, got {self.num_rings!r}")
        if not self.pixel_scale > 0:
            raise ConfigError(f"SkyMapConfig.pixel_scale must be > 0 arcsec, got {self.pixel_scale!r}")
        dims = tuple(self.patch_inner_dimensions)
        if len(dims) != 2 or any(int(d) != d or d < 1 for d in dims):
            raise ConfigError(
                f"SkyMapConfig.patch_inner_dimensions must be two positive integers, got {dims!r}"
            )
        object.__setattr__(self, "patch_inner_dimensions", (int(dims[0]), int(dims[1])))
        if self.patch_border < 0 or self.tract_overlap < 0:
            raise ConfigError("SkyMapConfig.patch_border and tract_overlap must be >= 0")

    def hash(self) -> str:
        """Hex SHA-256 of the geometry parameters (the name excluded)."""
        params = {k: v for k, v in asdict(self).items() if k != "name"}
        return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Patch:
    """One patch of a tract: pixel boxes in the tract's pixel frame and sky regions."""

    skymap: str
    tract: int
    id: int
    cell_x: int
    cell_y: int
    inner_bbox: Box
    outer_bbox: Box
    region: ConvexPolygon = field(repr=False)
    inner_region: ConvexPolygon = field(repr=False)


def _tan_offsets(ra: NDArray, dec: NDArray, ra_c: float, dec_c: float) -> tuple[NDArray, NDArray]:
    """Gnomonic standard coordinates (xi east, eta north), in degrees of the tangent plane."""
    p = lonlat_to_vector(ra, dec)
    c = lonlat_to_vector(ra_c, dec_c)
    a, d = np.radians(ra_c), np.radians(dec_c)
    east = np.array([-np.sin(a), np.cos(a), 0.0])
    north = np.array([-np.sin(d) * np.cos(a), -np.sin(d) * np.sin(a), np.cos(d)])
    w = p @ c
    return np.degrees(p @ east / w), np.degrees(p @ north / w)


class Tract:
    """A tract: inner sky area, TAN WCS and patch grid.  Built by :meth:`SkyMap.tract`."""

    def __init__(
        self,
        skymap: SkyMap,
        tract_id: int,
        ra_range: tuple[float, float],
        dec_range: tuple[float, float],
        center: tuple[float, float],
        num_patches: tuple[int, int],
    ) -> None:
        cfg = skymap.config
        self.skymap = skymap.name
        self.id = tract_id
        self.ra_range, self.dec_range, self.center = ra_range, dec_range, center
        self.num_patches = num_patches
        self.patch_inner_dimensions = cfg.patch_inner_dimensions
        self.patch_border = cfg.patch_border
        pw, ph = cfg.patch_inner_dimensions
        self.bbox = Box(
            0, 0, num_patches[0] * pw + 2 * cfg.patch_border, num_patches[1] * ph + 2 * cfg.patch_border
        )
        self._pixel_scale = cfg.pixel_scale

    def __repr__(self) -> str:
        return f"Tract(skymap={self.skymap!r}, id={self.id}, center={self.center}, bbox={self.bbox})"

    @cached_property
    def wcs(self) -> Any:
        """The tract's TAN ``astropy.wcs.WCS`` (0-based parent pixels as astropy uses)."""
        from astropy.wcs import WCS

        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval = list(self.center)
        w.wcs.crpix = [(self.bbox.width + 1) / 2.0, (self.bbox.height + 1) / 2.0]
        scale = self._pixel_scale / 3600.0
        w.wcs.cd = [[-scale, 0.0], [0.0, scale]]
        w.wcs.radesys = "ICRS"
        w.pixel_shape = (self.bbox.width, self.bbox.height)
        return w

    def _box_polygons(self, boxes: list[Box]) -> list[ConvexPolygon]:
        """Sky polygons through the outer pixel corners of ``boxes`` (one WCS call for all)."""
        x0 = np.array([b.x0 for b in boxes], dtype=float) - 0.5
        y0 = np.array([b.y0 for b in boxes], dtype=float) - 0.5
        x1 = x0 + np.array([b.width for b in boxes])
        y1 = y0 + np.array([b.height for b in boxes])
        x = np.stack([x0, x1, x1, x0], axis=1)
        y = np.stack([y0, y0, y1, y1], axis=1)
        ra, dec = self.wcs.wcs_pix2world(x.ravel(), y.ravel(), 0)
        ra, dec = ra.reshape(-1, 4), dec.reshape(-1, 4)
        return [ConvexPolygon.from_corners(r, d) for r, d in zip(ra, dec, strict=True)]

    def _box_polygon(self, box: Box) -> ConvexPolygon:
        return self._box_polygons([box])[0]

    @cached_property
    def region(self) -> ConvexPolygon:
        """The sky polygon of the whole tract box (exact: TAN edges are great circles)."""
        return self._box_polygon(self.bbox)

    def inner_contains(self, ra: ArrayLike, dec: ArrayLike) -> NDArray:
        """Whether each point (degrees) lies in this tract's inner (assigned) area."""
        ra_a = np.mod(np.asarray(ra, dtype=float), 360.0)
        dec_a = np.asarray(dec, dtype=float)
        in_dec = (dec_a >= self.dec_range[0]) & (dec_a < self.dec_range[1])
        if self.dec_range[1] >= 90.0:
            in_dec |= dec_a >= 90.0
        return in_dec & (ra_a >= self.ra_range[0]) & (ra_a < self.ra_range[1])

    def patch_indices(self, ra: ArrayLike, dec: ArrayLike) -> tuple[NDArray, NDArray]:
        """Patch cell (x, y) holding each point in its inner box; -1 where outside every patch."""
        x, y = self.wcs.wcs_world2pix(np.asarray(ra, dtype=float), np.asarray(dec, dtype=float), 0)
        pw, ph = self.patch_inner_dimensions
        x, y = np.asarray(x), np.asarray(y)
        finite = np.isfinite(x) & np.isfinite(y)
        x, y = np.where(finite, x, -1e9), np.where(finite, y, -1e9)
        cx = np.floor((np.floor(x + 0.5) - self.patch_border) / pw).astype(np.int64)
        cy = np.floor((np.floor(y + 0.5) - self.patch_border) / ph).astype(np.int64)
        bad = (cx < 0) | (cy < 0) | (cx >= self.num_patches[0]) | (cy >= self.num_patches[1]) | ~finite
        return np.where(bad, -1, cx), np.where(bad, -1, cy)

    def find_patch(self, ra: float, dec: float) -> Patch:
        """The patch whose inner box holds the point (degrees).

        Raises
        ------
        ConfigError
            If the point is outside this tract's patches (use :meth:`SkyMap.find_tract` first).
        """
        cx, cy = self.patch_indices(ra, dec)
        if int(cx) < 0:
            raise ConfigError(
                f"RA={ra}, Dec={dec} is outside tract {self.id} of sky map {self.skymap!r}; "
                "find the right tract with SkyMap.find_tract"
            )
        return self.patch(int(cx), int(cy))

    def patch(self, cell_x: int, cell_y: int | None = None) -> Patch:
        """A patch by cell (x, y), or by patch id when ``cell_y`` is None."""
        nx, ny = self.num_patches
        if cell_y is None:
            if not 0 <= cell_x < nx * ny:
                raise ConfigError(f"patch id {cell_x} out of range [0, {nx * ny}) in tract {self.id}")
            cell_x, cell_y = cell_x % nx, cell_x // nx
        if not (0 <= cell_x < nx and 0 <= cell_y < ny):
            raise ConfigError(
                f"patch cell ({cell_x}, {cell_y}) outside the {nx}x{ny} grid of tract {self.id}"
            )
        return self._make_patches([(cell_x, cell_y)])[0]

    def _make_patches(self, cells: list[tuple[int, int]]) -> list[Patch]:
        pw, ph = self.patch_inner_dimensions
        b = self.patch_border
        inner = [Box(b + cx * pw, b + cy * ph, pw, ph) for cx, cy in cells]
        outer = [Box(cx * pw, cy * ph, pw + 2 * b, ph + 2 * b) for cx, cy in cells]
        polys = self._box_polygons(outer + inner)
        n = len(cells)
        return [
            Patch(
                skymap=self.skymap,
                tract=self.id,
                id=cy * self.num_patches[0] + cx,
                cell_x=cx,
                cell_y=cy,
                inner_bbox=inner[i],
                outer_bbox=outer[i],
                region=polys[i],
                inner_region=polys[n + i],
            )
            for i, (cx, cy) in enumerate(cells)
        ]

    def patches(self) -> list[Patch]:
        """Every patch of the tract, in id order."""
        nx, ny = self.num_patches
        return self._make_patches([(i % nx, i // nx) for i in range(nx * ny)])


class SkyMap:
    """A rings sky map (see the module docstring for the layout).

    Parameters
    ----------
    config
        Geometry parameters; LSST-like defaults when None.
    """

    def __init__(self, config: SkyMapConfig | None = None) -> None:
        self.config = config or SkyMapConfig()
        self.name = self.config.name
        self.hash = self.config.hash()
        n = self.config.num_rings
        self._delta = 180.0 / (n + 1)
        lo = -90.0 + self._delta / 2 + self._delta * np.arange(n)
        hi = lo + self._delta
        self._ring_lo, self._ring_hi = lo, hi
        nearest_eq = np.where((lo < 0) & (hi > 0), 0.0, np.minimum(np.abs(lo), np.abs(hi)))
        self._ring_ntracts = np.maximum(
            1, np.ceil(360.0 * np.cos(np.radians(nearest_eq)) / self._delta - 1e-9)
        ).astype(np.int64)
        self._ring_offset = 1 + np.concatenate([[0], np.cumsum(self._ring_ntracts)[:-1]])
        self.tract_max = int(2 + self._ring_ntracts.sum())
        self._ring_patches = np.array([self._num_patches(i) for i in range(-1, n + 1)])
        self.patch_nx_max = int(self._ring_patches[:, 0].max())
        self.patch_ny_max = int(self._ring_patches[:, 1].max())
        self._tracts: dict[int, Tract] = {}

    def __repr__(self) -> str:
        return f"SkyMap({self.config!r})"

    def _ring_geometry(self, ring: int, j: int = 0) -> tuple[tuple, tuple, tuple]:
        """(ra_range, dec_range, centre) of tract ``j`` of ``ring`` (-1 south cap, n north cap)."""
        n, d = self.config.num_rings, self._delta
        if ring < 0:
            return (0.0, 360.0), (-90.0, -90.0 + d / 2), (0.0, -90.0)
        if ring >= n:
            return (0.0, 360.0), (90.0 - d / 2, 90.0), (0.0, 90.0)
        width = 360.0 / self._ring_ntracts[ring]
        lo, hi = float(self._ring_lo[ring]), float(self._ring_hi[ring])
        ra_hi = 360.0 if j == self._ring_ntracts[ring] - 1 else (j + 1) * width
        return (j * width, ra_hi), (lo, hi), ((j + 0.5) * width, -90.0 + (ring + 1) * d)

    def _num_patches(self, ring: int) -> tuple[int, int]:
        """Patch grid of every tract in a ring (they are rotated copies of one another)."""
        (ra0, ra1), (dec0, dec1), (ra_c, dec_c) = self._ring_geometry(ring)
        t = np.linspace(0.0, 1.0, 65)
        ra = np.concatenate(
            [ra0 + (ra1 - ra0) * t, ra0 + (ra1 - ra0) * t, np.full(65, ra0), np.full(65, ra1)]
        )
        dec = np.concatenate(
            [np.full(65, dec0), np.full(65, dec1), dec0 + (dec1 - dec0) * t, dec0 + (dec1 - dec0) * t]
        )
        if ring < 0 or ring >= self.config.num_rings:  # a cap: one circle of latitude
            dec = np.full(ra.size, dec1 if ring < 0 else dec0)
        xi, eta = _tan_offsets(ra, dec, ra_c, dec_c)
        scale = self.config.pixel_scale / 3600.0
        margin = self.config.tract_overlap / 2 / scale + 2.0
        half = np.array([np.abs(xi).max(), np.abs(eta).max()]) * 1.0001 / scale + margin
        dims = np.array(self.config.patch_inner_dimensions)
        nx, ny = np.ceil(2 * half / dims).astype(int)
        return int(nx), int(ny)

    def _locate(self, tract_id: int) -> tuple[int, int]:
        if not 0 <= tract_id < self.tract_max:
            raise ConfigError(
                f"tract {tract_id} does not exist in sky map {self.name!r} (ids 0 to {self.tract_max - 1})"
            )
        if tract_id == 0:
            return -1, 0
        if tract_id == self.tract_max - 1:
            return self.config.num_rings, 0
        ring = int(np.searchsorted(self._ring_offset, tract_id, side="right") - 1)
        return ring, tract_id - int(self._ring_offset[ring])

    def _make_tract(self, tract_id: int) -> Tract:
        ring, j = self._locate(int(tract_id))
        ra_range, dec_range, center = self._ring_geometry(ring, j)
        nxy = self._ring_patches[ring + 1]
        return Tract(self, int(tract_id), ra_range, dec_range, center, (int(nxy[0]), int(nxy[1])))

    def tract(self, tract_id: int) -> Tract:
        """The tract with this id (built on first use, then cached)."""
        tid = int(tract_id)
        if tid not in self._tracts:
            if len(self._tracts) > 4096:
                self._tracts.clear()
            self._tracts[tid] = self._make_tract(tid)
        return self._tracts[tid]

    def find_tract(self, ra: ArrayLike, dec: ArrayLike) -> Any:
        """Id of the tract whose inner area holds each point (int, or int64 array for arrays)."""
        dec_a = np.asarray(dec, dtype=float)
        if np.any(np.abs(dec_a) > 90.0) or not np.all(np.isfinite(dec_a)):
            raise ConfigError("SkyMap.find_tract: dec must be finite and within [-90, 90] degrees")
        ra_a = np.mod(np.asarray(ra, dtype=float), 360.0)
        ring = np.floor((dec_a - (-90.0 + self._delta / 2)) / self._delta).astype(np.int64)
        n = self.config.num_rings
        rc = np.clip(ring, 0, n - 1)
        # agree exactly with the stored ring edges used by Tract.inner_contains
        rc = np.where(dec_a < self._ring_lo[rc], rc - 1, np.where(dec_a >= self._ring_hi[rc], rc + 1, rc))
        ring = np.where((ring < 0) | (rc < 0), -1, np.where((ring >= n) | (rc >= n), n, rc))
        rc = np.clip(ring, 0, n - 1)
        ntr = self._ring_ntracts[rc]
        j = np.minimum(np.floor(ra_a * ntr / 360.0).astype(np.int64), ntr - 1)
        width = 360.0 / ntr
        j = np.where(ra_a < j * width, j - 1, np.where(ra_a >= (j + 1) * width, j + 1, j))
        ids = np.where(ring < 0, 0, np.where(ring >= n, self.tract_max - 1, self._ring_offset[rc] + j))
        return int(ids) if ids.ndim == 0 else ids.astype(np.int64)

    def __iter__(self) -> Iterator[Tract]:
        """Every tract in id order."""
        return (self.tract(i) for i in range(self.tract_max))

    def dimension_records(self, *, tracts: ArrayLike | None = None) -> dict[str, list[dict[str, Any]]]:
        """Registry records of the ``skymap``, ``tract`` and ``patch`` dimensions.

        Parameters
        ----------
        tracts
            Only these tract ids (and their patches); all tracts when None.  A full LSST-like map
            has ~19 000 tracts and ~10^6 patches, which takes minutes.
        """
        ids = range(self.tract_max) if tracts is None else [int(t) for t in np.atleast_1d(tracts)]
        records: dict[str, list[dict[str, Any]]] = {
            "skymap": [
                {
                    "name": self.name,
                    "hash": self.hash,
                    "tract_max": self.tract_max,
                    "patch_nx_max": self.patch_nx_max,
                    "patch_ny_max": self.patch_ny_max,
                }
            ],
            "tract": [],
            "patch": [],
        }
        for tid in progress(ids, total=len(ids), desc=f"sky map {self.name} records", logger=_log):
            tract = self._make_tract(tid)
            records["tract"].append({"skymap": self.name, "id": tid, "region": tract.region})
            for p in tract.patches():
                records["patch"].append(
                    {
                        "skymap": self.name,
                        "tract": tid,
                        "id": p.id,
                        "cell_x": p.cell_x,
                        "cell_y": p.cell_y,
                        "region": p.region,
                    }
                )
        return records

from __future__ import annotations

import json

import numpy as np
import pytest

from pachon.core.errors import ConfigError
from pachon.core.sphgeom import (
    Circle,
    ConvexPolygon,
    Region,
    angular_separation,
    lonlat_to_vector,
    vector_to_lonlat,
)


def _astropy_sep(ra1, dec1, ra2, dec2):
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    a = SkyCoord(ra1 * u.deg, dec1 * u.deg, frame="icrs")
    b = SkyCoord(ra2 * u.deg, dec2 * u.deg, frame="icrs")
    return a.separation(b).deg


def test_separation_tiny_and_antipodal_vs_astropy():
    rng = np.random.default_rng(3)
    ra = rng.uniform(0, 360, 200)
    dec = rng.uniform(-89.9, 89.9, 200)
    # also along RA, where the offset on the sky is eps * cos(dec)
    along_ra = angular_separation(ra, dec, ra + 1e-10, dec)
    np.testing.assert_allclose(along_ra, ((ra + 1e-10) - ra) * np.cos(np.radians(dec)), rtol=1e-6)
    for eps in (1e-10, 1e-7, 1.0):
        dec2 = dec + eps
        true = dec2 - dec  # exact (Sterbenz): the offset that dec + eps really holds
        ours = angular_separation(ra, dec, ra, dec2)
        np.testing.assert_allclose(ours, true, rtol=1e-9)
        # astropy works from coordinates rounded in radians: agreement to its ~1e-14 deg floor
        np.testing.assert_allclose(ours, _astropy_sep(ra, dec, ra, dec2), rtol=1e-12, atol=3e-14)
    # antipodes and near-antipodes
    anti = angular_separation(ra, dec, ra + 180.0, -dec)
    np.testing.assert_allclose(anti, 180.0, atol=1e-12)
    near = angular_separation(ra, dec, ra + 180.0, -dec + 1e-8)
    np.testing.assert_allclose(near, 180.0 - 1e-8, atol=1e-11)
    np.testing.assert_allclose(near, _astropy_sep(ra, dec, ra + 180.0, -dec + 1e-8), atol=1e-11)


def test_separation_across_ra_wrap_and_pole():
    assert angular_separation(359.5, 0.0, 0.5, 0.0) == pytest.approx(1.0, abs=1e-12)
    # at the pole RA is meaningless
    assert angular_separation(10.0, 90.0, 250.0, 90.0) == pytest.approx(0.0, abs=1e-12)
    assert angular_separation(0.0, 89.0, 180.0, 89.0) == pytest.approx(2.0, abs=1e-12)


def test_vector_round_trip():
    rng = np.random.default_rng(1)
    ra = rng.uniform(0, 360, 1000)
    dec = rng.uniform(-90, 90, 1000)
    v = lonlat_to_vector(ra, dec)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-15)
    ra2, dec2 = vector_to_lonlat(v * 3.0)
    np.testing.assert_allclose(dec2, dec, atol=1e-12)
    assert np.max(angular_separation(ra, dec, ra2, dec2)) < 1e-11
    assert np.all((ra2 >= 0) & (ra2 < 360))
    np.testing.assert_allclose(lonlat_to_vector(90.0, 0.0), [0.0, 1.0, 0.0], atol=1e-16)


def test_circle_contains_area_and_wrap():
    c = Circle(359.9, 10.0, 0.5)
    assert c.contains(0.2, 10.0)  # across RA = 0
    assert not c.contains(0.6, 10.0)
    # small-cap area equals pi r^2 to first order, exactly 2 pi (1 - cos r)
    r = np.radians(0.5)
    assert c.area() == pytest.approx(2 * np.pi * (1 - np.cos(r)), rel=1e-12)
    assert Circle(0, 0, 90).area() == pytest.approx(2 * np.pi, rel=1e-14)
    polar = Circle(123.0, 90.0, 1.0)
    assert polar.contains(np.arange(0, 360, 30.0), np.full(12, 89.01)).all()
    assert not polar.contains(0.0, 88.99)


def _square(ra0, dec0, half):
    """CCW (RA to the right) square of great-circle edges around (ra0, dec0)."""
    ra = np.array([ra0 - half, ra0 + half, ra0 + half, ra0 - half])
    dec = np.array([dec0 - half, dec0 - half, dec0 + half, dec0 + half])
    return ConvexPolygon(ra, dec)


def test_polygon_orientation_and_convexity_errors():
    with pytest.raises(ConfigError, match="clockwise"):
        ConvexPolygon([0, 0, 1, 1], [0, 1, 1, 0])
    with pytest.raises(ConfigError, match="convex"):
        ConvexPolygon([0, 2, 1, 2, 0], [0, 0, 0.2, 2, 2])  # dented
    with pytest.raises(ConfigError, match="at least 3"):
        ConvexPolygon([0, 1], [0, 1])
    with pytest.raises(ConfigError, match="repeated"):
        ConvexPolygon([0, 1, 1, 1], [0, 0, 0, 1])
    p = ConvexPolygon.from_corners([0, 0, 1, 1], [0, 1, 1, 0])  # clockwise accepted
    assert p.contains(0.5, 0.5) and not p.contains(1.5, 0.5)


def test_polygon_contains_wrap_and_pole():
    p = _square(0.0, 0.0, 0.5)  # vertices at RA -0.5 == 359.5
    assert p.contains(359.8, 0.1) and p.contains(0.2, -0.3)
    assert not p.contains(0.6, 0.0) and not p.contains(359.4, 0.0)
    # a square around the north pole
    cap = ConvexPolygon([45, 135, 225, 315], [88, 88, 88, 88])
    assert cap.contains(np.arange(0, 360, 10.0), np.full(36, 89.5)).all()
    assert cap.contains(0.0, 90.0)
    assert not cap.contains(45.0, 87.9)


def test_polygon_area_against_analytic_and_healpix():
    # octant: 4 pi / 8
    octant = ConvexPolygon([0, 90, 0], [0, 0, 90])
    assert octant.area() == pytest.approx(np.pi / 2, rel=1e-14)
    from astropy_healpix import HEALPix

    for level in (10, 12):
        hp = HEALPix(2**level, order="nested")
        idx = np.array([0, 5 * 4**level + 7, 4 * 4**level + 123, 12 * 4**level - 1])
        lon, lat = hp.boundaries_lonlat(idx, step=1)
        for i in range(idx.size):
            poly = ConvexPolygon.from_corners(lon[i].deg, lat[i].deg)
            assert poly.area() == pytest.approx(4 * np.pi / hp.npix, rel=1e-6)


def test_distance_and_overlaps():
    p = _square(10.0, 0.0, 1.0)
    assert p.distance(10.0, 0.3) == 0.0
    # east of the square on the equator: distance to the meridian-like edge
    d = p.distance(12.0, 0.0)
    assert d == pytest.approx(angular_separation(11.0, 0.0, 12.0, 0.0), rel=1e-3)
    assert p.overlaps(Circle(12.0, 0.0, 1.01)) and not p.overlaps(Circle(12.0, 0.0, 0.99))
    # vertex is the nearest point diagonally
    dv = p.distance(12.0, 2.0)
    assert dv == pytest.approx(angular_separation(11.0, 1.0, 12.0, 2.0), rel=1e-12)
    assert Circle(0, 0, 1).overlaps(Circle(2.0, 0, 1.001))
    assert not Circle(0, 0, 1).overlaps(Circle(2.0, 0, 0.999))
    # polygon-polygon: cross shape with no vertex inside the other polygon
    wide = ConvexPolygon([8, 12, 12, 8], [-0.2, -0.2, 0.2, 0.2])
    tall = ConvexPolygon([9.8, 10.2, 10.2, 9.8], [-2, -2, 2, 2])
    assert not np.any(wide.contains(tall.ra_vertices, tall.dec_vertices))
    assert wide.overlaps(tall) and tall.overlaps(wide)
    assert not wide.overlaps(_square(10.0, 3.0, 0.5))
    # polygons near each other across RA = 0
    assert _square(359.8, 0, 0.3).overlaps(_square(0.2, 0, 0.15))
    assert not _square(359.5, 0, 0.3).overlaps(_square(0.5, 0, 0.15))


def test_overlaps_random_against_sampling():
    """Polygon-polygon overlap agrees with dense point sampling."""
    rng = np.random.default_rng(7)
    grid = np.linspace(-1, 1, 61)
    gx, gy = np.meshgrid(grid, grid)
    for _ in range(40):
        a = _square(0.0, 0.0, 1.0)
        ra0, dec0 = rng.uniform(-2.5, 2.5, 2)
        b = _square(ra0 % 360, dec0, 0.6)
        pts = b.contains(ra0 + 0.6 * gx.ravel(), dec0 + 0.6 * gy.ravel())
        sampled = np.any(a.contains((ra0 + 0.6 * gx.ravel())[pts], (dec0 + 0.6 * gy.ravel())[pts]))
        if sampled:
            assert a.overlaps(b)
        if not a.overlaps(b):
            assert not sampled


def test_bounding_circle_contains_polygon():
    p = ConvexPolygon([45, 135, 225, 315], [80, 80, 80, 80])
    c = p.bounding_circle()
    assert c.dec == pytest.approx(90.0)
    assert c.radius == pytest.approx(10.0, rel=1e-6)
    assert c.contains(p.ra_vertices, p.dec_vertices).all()


def test_json_round_trip():
    for region in (Circle(359.5, -89.0, 0.25), _square(0.0, 45.0, 0.1)):
        text = json.dumps(region.to_dict())
        back = Region.from_dict(json.loads(text))
        assert type(back) is type(region)
        assert back == region
        assert back.area() == region.area()
    with pytest.raises(ConfigError, match="circle"):
        Region.from_dict({"type": "blob"})

from __future__ import annotations

import numpy as np
import pytest

from pachon.core.errors import ConfigError
from pachon.core.skypix import DEFAULT_SKYPIX_LEVEL, SkyPixelization
from pachon.core.sphgeom import Circle, ConvexPolygon, angular_separation


def _random_polygon(rng, ra0, dec0, size):
    """A random convex quadrilateral of about ``size`` degrees, built in the tangent plane."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, 4))
    while np.max(np.diff(np.concatenate([angles, [angles[0] + 2 * np.pi]]))) > 0.9 * np.pi:
        angles = np.sort(rng.uniform(0, 2 * np.pi, 4))
    r = np.radians(size / 2)
    xi, eta = np.tan(r) * np.cos(angles), np.tan(r) * np.sin(angles)
    a, d = np.radians(ra0), np.radians(dec0)
    c = np.array([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)])
    east = np.array([-np.sin(a), np.cos(a), 0.0])
    north = np.cross(c, east)
    v = c + xi[:, None] * east + eta[:, None] * north
    ra = np.degrees(np.arctan2(v[:, 1], v[:, 0])) % 360
    dec = np.degrees(np.arcsin(v[:, 2] / np.linalg.norm(v, axis=1)))
    return ConvexPolygon.from_corners(ra, dec)


def _points_inside(rng, region, n):
    c = region.bounding_circle()
    # uniform points in the bounding cap, kept when inside the region
    u = rng.uniform(np.cos(np.radians(c.radius)), 1.0, 4 * n)
    phi = rng.uniform(0, 2 * np.pi, 4 * n)
    s = np.sqrt(1 - u**2)
    local = np.stack([s * np.cos(phi), s * np.sin(phi), u], axis=1)
    a, d = np.radians(c.ra), np.radians(c.dec)
    z = np.array([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)])
    x = np.array([-np.sin(a), np.cos(a), 0.0])
    y = np.cross(z, x)
    v = local @ np.stack([x, y, z])
    ra = np.degrees(np.arctan2(v[:, 1], v[:, 0])) % 360
    dec = np.degrees(np.arcsin(np.clip(v[:, 2], -1, 1)))
    keep = region.contains(ra, dec)
    return ra[keep][:n], dec[keep][:n]


def test_index_matches_pixel_centres_and_known_values():
    sp = SkyPixelization(3)
    assert sp.npix == 768 and sp.nside == 8
    ra, dec = sp.pixel_center(np.arange(sp.npix))
    np.testing.assert_array_equal(sp.index(ra, dec), np.arange(sp.npix))
    # nested numbering: the north pole is in base pixel 0..3, the south pole in 8..11
    assert sp.index(45.0, 90.0) // 64 in (0, 1, 2, 3)
    assert sp.index(45.0, -90.0) // 64 in (8, 9, 10, 11)
    # RA wrap
    assert sp.index(360.0, 10.0) == sp.index(0.0, 10.0)
    assert sp.index(-10.0, 10.0) == sp.index(350.0, 10.0)
    assert sp.index(np.zeros((2, 3)), np.zeros((2, 3))).shape == (2, 3)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="level"):
        SkyPixelization(40)
    with pytest.raises(ConfigError, match="dec"):
        SkyPixelization(5).index(0.0, 91.0)
    with pytest.raises(ConfigError, match="out of range"):
        SkyPixelization(0).pixel_region(12)


def test_pixel_region_area_and_containment():
    sp = SkyPixelization(10)
    for idx in (0, 5 * 4**10 + 7, 12 * 4**10 - 1):
        poly = sp.pixel_region(idx)
        assert poly.area() == pytest.approx(sp.pixel_area, rel=1e-6)
        ra, dec = sp.pixel_center(idx)
        assert poly.contains(ra, dec).all()


@pytest.mark.parametrize("level", [DEFAULT_SKYPIX_LEVEL, 9])
def test_envelope_is_superset_for_random_regions(level):
    sp = SkyPixelization(level)
    rng = np.random.default_rng(level)
    centres_ra = np.concatenate([rng.uniform(0, 360, 50), [0.0, 359.95, 0.05, 180.0, 10.0]])
    centres_dec = np.concatenate([rng.uniform(-89, 89, 50), [0.0, 30.0, -30.0, 89.9, -89.95]])
    for i, (ra0, dec0) in enumerate(zip(centres_ra, centres_dec, strict=True)):
        size = [0.05, 0.2, 1.0, 3.5][i % 4]
        region = _random_polygon(rng, ra0, dec0, size) if i % 2 else Circle(ra0, dec0, size / 2)
        env = sp.envelope(region)
        ra, dec = _points_inside(rng, region, 400)
        assert ra.size > 50
        if isinstance(region, ConvexPolygon):  # add points on the edges, where misses would hide
            v = region.vertices
            t = np.linspace(0, 1, 200)[:, None, None]
            e = (1 - t) * v[None] + t * np.roll(v, -1, axis=0)[None]
            e = e.reshape(-1, 3)
            ra = np.concatenate([ra, np.degrees(np.arctan2(e[:, 1], e[:, 0])) % 360])
            dec = np.concatenate([dec, np.degrees(np.arcsin(e[:, 2] / np.linalg.norm(e, axis=1)))])
        missing = np.setdiff1d(sp.index(ra, dec), env)
        assert missing.size == 0, f"region {region} misses pixels {missing}"
        assert np.all(np.diff(env) > 0)


def test_envelope_is_tight_for_regions_larger_than_pixels():
    sp = SkyPixelization(DEFAULT_SKYPIX_LEVEL)
    rng = np.random.default_rng(11)
    for _ in range(10):
        ra0, dec0 = rng.uniform(0, 360), rng.uniform(-80, 80)
        visit = Circle(ra0, dec0, 1.75)
        ratio = sp.envelope(visit).size * sp.pixel_area / visit.area()
        assert 1.0 < ratio < 2.0
        poly = _random_polygon(rng, ra0, dec0, 3.0)
        assert 1.0 < sp.envelope(poly).size * sp.pixel_area / poly.area() < 3.0
    # a pixel's own polygon: itself plus at most its 8 neighbours and a ring's worth more
    own = sp.envelope(sp.pixel_region(1000))
    assert 1000 in own and own.size <= 16


def test_envelope_excludes_far_pixels_and_covers_whole_sky():
    sp = SkyPixelization(2)
    env = sp.envelope(Circle(0.0, 0.0, 1.0))
    ra, dec = sp.pixel_center(env)
    assert np.all(angular_separation(0.0, 0.0, ra, dec) < 1.0 + 2 * np.degrees(np.sqrt(sp.pixel_area)))
    assert sp.envelope(Circle(0.0, 0.0, 180.0)).size == sp.npix

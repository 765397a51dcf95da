from __future__ import annotations

import json

import numpy as np
import pytest

from pachon.core.errors import ConfigError
from pachon.core.skymap import SkyMap, SkyMapConfig
from pachon.core.sphgeom import Region, angular_separation


@pytest.fixture(scope="module")
def lsst_map() -> SkyMap:
    return SkyMap()


@pytest.fixture(scope="module")
def small_map() -> SkyMap:
    """A coarse map (big pixels) whose every tract can be checked quickly."""
    return SkyMap(
        SkyMapConfig(
            name="coarse", num_rings=11, pixel_scale=20.0, patch_inner_dimensions=(600, 500), patch_border=10
        )
    )


def _random_points(n, seed):
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    # poles, RA = 0/360 and ring edges
    extra_ra = np.array([0.0, 360.0, 359.999999999, 0.0, 123.0, 0.0, 180.0, 1e-12])
    extra_dec = np.array([0.0, 10.0, -45.0, 90.0, -90.0, 89.99999, -89.9999, 0.0])
    return np.concatenate([ra, extra_ra]), np.concatenate([dec, extra_dec])


def test_layout_numbers(lsst_map):
    delta = 180.0 / 121
    assert lsst_map.tract_max == 2 + lsst_map._ring_ntracts.sum()
    # equatorial ring: 360 / delta rounded up
    assert lsst_map._ring_ntracts.max() == int(np.ceil(360.0 / delta))
    # LSST-like: ~1.5 deg tracts of 7-8 patches of 4000 px (0.2") on a side
    assert 18_000 < lsst_map.tract_max < 20_000
    assert (lsst_map.patch_nx_max, lsst_map.patch_ny_max) == (7, 8)
    tract = lsst_map.tract(lsst_map.find_tract(45.0, 0.3))
    assert tract.bbox.width == tract.num_patches[0] * 4000 + 200
    scale = np.sqrt(abs(np.linalg.det(tract.wcs.pixel_scale_matrix))) * 3600
    assert scale == pytest.approx(0.2, rel=1e-12)


def test_every_point_in_exactly_one_tract_and_its_patch(small_map):
    ra, dec = _random_points(10_000, 1)
    ids = small_map.find_tract(ra, dec)
    owners = np.zeros(ra.size, dtype=int)
    for tract in small_map:
        inside = tract.inner_contains(ra, dec)
        owners += inside
        assert np.all(ids[inside] == tract.id)
    assert np.all(owners == 1)
    for tid in np.unique(ids):
        m = ids == tid
        tract = small_map.tract(tid)
        assert tract.region.contains(ra[m], dec[m]).all()
        cx, cy = tract.patch_indices(ra[m], dec[m])
        assert np.all(cx >= 0) and np.all(cy >= 0)
        x, y = tract.wcs.wcs_world2pix(ra[m], dec[m], 0)
        for i in np.flatnonzero(m)[:5]:
            patch = tract.find_patch(ra[i], dec[i])
            px, py = tract.wcs.wcs_world2pix([ra[i]], [dec[i]], 0)
            assert patch.inner_bbox.contains_points(px, py).all()
            assert patch.outer_bbox.contains(patch.inner_bbox)
            assert tract.bbox.contains(patch.outer_bbox)
            assert patch.inner_region.contains(ra[i], dec[i]) and patch.region.contains(ra[i], dec[i])
        # patch cells agree with pixel positions
        pw, ph = tract.patch_inner_dimensions
        np.testing.assert_array_equal(cx, (np.floor(x + 0.5).astype(int) - tract.patch_border) // pw)


def test_lsst_map_random_points(lsst_map):
    ra, dec = _random_points(2000, 2)
    ids = lsst_map.find_tract(ra, dec)
    for tid in np.unique(ids)[:400]:
        m = ids == tid
        tract = lsst_map.tract(tid)
        assert tract.inner_contains(ra[m], dec[m]).all()
        assert tract.region.contains(ra[m], dec[m]).all()
        cx, _ = tract.patch_indices(ra[m], dec[m])
        assert np.all(cx >= 0)
    # tract centres are near: no point farther than a tract diagonal from its tract centre
    centres = np.array([lsst_map.tract(t).center for t in ids])
    assert angular_separation(ra, dec, centres[:, 0], centres[:, 1]).max() < 1.5


def test_find_tract_scalar_wrap_and_poles(lsst_map):
    assert isinstance(lsst_map.find_tract(10.0, 20.0), int)
    assert lsst_map.find_tract(0.0, 90.0) == lsst_map.tract_max - 1
    assert lsst_map.find_tract(77.0, -90.0) == 0
    assert lsst_map.find_tract(360.0, 5.0) == lsst_map.find_tract(0.0, 5.0)
    assert lsst_map.find_tract(-0.5, 5.0) == lsst_map.find_tract(359.5, 5.0)
    with pytest.raises(ConfigError, match="dec"):
        lsst_map.find_tract(0.0, 95.0)
    with pytest.raises(ConfigError, match="does not exist"):
        lsst_map.tract(lsst_map.tract_max)


def test_wcs_round_trip(lsst_map):
    rng = np.random.default_rng(5)
    for tid in (0, 1, 9000, lsst_map.tract_max - 1):
        tract = lsst_map.tract(tid)
        x = rng.uniform(0, tract.bbox.width, 100)
        y = rng.uniform(0, tract.bbox.height, 100)
        ra, dec = tract.wcs.wcs_pix2world(x, y, 0)
        x2, y2 = tract.wcs.wcs_world2pix(ra, dec, 0)
        np.testing.assert_allclose(x2, x, atol=1e-6)
        np.testing.assert_allclose(y2, y, atol=1e-6)
        # the tract centre sits at the middle of the box, RA increases to the left
        cx, cy = tract.wcs.wcs_world2pix([tract.center[0]], [tract.center[1]], 0)
        assert cx[0] == pytest.approx((tract.bbox.width - 1) / 2, abs=1e-6)
        assert cy[0] == pytest.approx((tract.bbox.height - 1) / 2, abs=1e-6)
    t = lsst_map.tract(9000)
    ra_l, _ = t.wcs.wcs_pix2world([0.0, 100.0], [t.bbox.height / 2] * 2, 0)
    assert (ra_l[0] - ra_l[1]) % 360 < 1.0  # x increasing = RA decreasing


def test_neighbouring_tracts_overlap(lsst_map):
    tid = lsst_map.find_tract(100.0, 20.0)
    east = lsst_map.find_tract(100.0 + 1.6, 20.0)
    assert east != tid
    assert lsst_map.tract(tid).region.overlaps(lsst_map.tract(east).region)


def test_dimension_records(small_map):
    rec = small_map.dimension_records()
    (sm,) = rec["skymap"]
    assert sm["name"] == "coarse" and sm["tract_max"] == small_map.tract_max
    assert len(sm["hash"]) == 64
    assert len(rec["tract"]) == small_map.tract_max
    n_patches = sum(np.prod(small_map.tract(t).num_patches) for t in range(small_map.tract_max))
    assert len(rec["patch"]) == n_patches
    p = rec["patch"][5]
    assert set(p) == {"skymap", "tract", "id", "cell_x", "cell_y", "region"}
    nx = small_map.tract(p["tract"]).num_patches[0]
    assert p["id"] == p["cell_y"] * nx + p["cell_x"]
    assert all(r["cell_x"] < sm["patch_nx_max"] and r["cell_y"] < sm["patch_ny_max"] for r in rec["patch"])
    back = Region.from_dict(json.loads(json.dumps(p["region"].to_dict())))
    assert back == p["region"]
    # patch regions of a tract sum to more than the tract's inner area (they overlap)
    one = [r for r in rec["patch"] if r["tract"] == 3]
    tract = small_map.tract(3)
    assert sum(r["region"].area() for r in one) > tract.region.area() * 0.99
    only = small_map.dimension_records(tracts=[3])
    assert len(only["tract"]) == 1 and len(only["patch"]) == len(one)


def test_config_validation_and_hash():
    with pytest.raises(ConfigError, match="num_rings"):
        SkyMapConfig(num_rings=0)
    with pytest.raises(ConfigError, match="patch_inner_dimensions"):
        SkyMapConfig(patch_inner_dimensions=(0, 10))
    assert SkyMapConfig().hash() == SkyMapConfig(name="other").hash()
    assert SkyMapConfig().hash() != SkyMapConfig(pixel_scale=0.3).hash()
    with pytest.raises(ConfigError, match="outside tract"):
        SkyMap().tract(0).find_patch(0.0, 0.0)

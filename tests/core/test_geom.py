from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pachon.core.errors import ConfigError
from pachon.core.geom import Box, parse_fits_section


def test_corners_shape_and_ends():
    box = Box.from_corners(3, 5, 10, 9)
    assert box == Box(3, 5, 7, 4)
    assert (box.x1, box.y1) == (10, 9)
    assert box.shape == (4, 7)
    assert box.area == 28
    assert box.center == (6.0, 6.5)
    assert Box.from_shape((4, 7), (3, 5)) == box


def test_invalid_boxes():
    with pytest.raises(ConfigError, match="width and height"):
        Box(0, 0, -1, 3)
    with pytest.raises(ConfigError, match="x0 must be an integer"):
        Box(0.5, 0, 1, 1)  # type: ignore[arg-type]


def test_contains_and_intersection():
    outer = Box(0, 0, 10, 10)
    assert outer.contains(Box(2, 3, 8, 7))
    assert not outer.contains(Box(2, 3, 9, 7))
    assert not outer.contains(Box(-1, 0, 2, 2))
    assert outer.intersection(Box(5, -5, 10, 8)) == Box(5, 0, 5, 3)
    assert outer.intersection(Box(10, 0, 3, 3)) is None  # touching edges share no pixel
    assert outer.contains(Box(50, 50, 0, 0))


def test_contains_points_vectorized():
    box = Box(2, 2, 3, 3)
    inside = box.contains_points(np.array([1.6, 1.4, 4.49, 4.5]), np.array([2.0, 2.0, 4.0, 4.0]))
    assert inside.tolist() == [True, False, True, False]


def test_shift_grow_and_slices():
    box = Box(4, 6, 3, 2)
    assert box.shifted(-4, 1) == Box(0, 7, 3, 2)
    assert box.grown(2) == Box(2, 4, 7, 6)
    with pytest.raises(ConfigError):
        box.grown(-2)
    parent = np.arange(100).reshape(10, 10)
    rows, cols = box.slices()
    np.testing.assert_array_equal(parent[rows, cols], [[64, 65, 66], [74, 75, 76]])
    # an array whose first pixel sits at parent (3, 5)
    sub = parent[5:, 3:]
    rows, cols = box.slices(origin=(3, 5))
    np.testing.assert_array_equal(sub[rows, cols], parent[6:8, 4:7])
    with pytest.raises(ConfigError, match="starts before"):
        box.slices(origin=(5, 0))


def test_fits_sections():
    box = Box(0, 10, 512, 2002)
    assert box.to_fits_section() == "[1:512,11:2012]"
    assert Box.from_fits_section("[1:512,11:2012]") == box
    assert Box.from_fits_section(" [ 1 : 512 , 11:2012 ] ") == box
    flipped, fx, fy = parse_fits_section("[512:1,11:2012]")
    assert flipped == box and fx and not fy
    for bad in ("[0:5,1:5]", "1:5,1:5", "[1:5]", "[a:b,c:d]"):
        with pytest.raises(ConfigError):
            Box.from_fits_section(bad)


def test_geom_and_mask_import_light():
    code = "import sys, pachon.core.geom, pachon.core.mask; print('astropy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

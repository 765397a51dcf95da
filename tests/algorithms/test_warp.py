from __future__ import annotations

import numpy as np
import pytest

from pachon.algorithms.diffim.simulate import draw_points
from pachon.algorithms.warp import warp_exposure
from pachon.core.errors import ConfigError
from pachon.core.exposure import Exposure
from pachon.core.geom import Box
from pachon.core.wcs import make_tan_wcs


def test_warp_shift_flux_variance() -> None:
    rng = np.random.default_rng(0)
    wcs = make_tan_wcs(10.0, 0.0, 0.2, crpix=(100.0, 100.0))
    xs, ys = rng.uniform(30, 170, 20), rng.uniform(30, 170, 20)
    img = np.zeros((200, 200))
    draw_points(img, xs, ys, np.full(20, 1e4), 2.0)
    noise = rng.standard_normal((200, 200))
    exp = Exposure(img + noise, variance=np.ones((200, 200)), wcs=wcs)
    dest = make_tan_wcs(10.0, 0.0, 0.2, crpix=(103.3, 97.6))  # a shift of (3.3, -2.4) pixels
    out = warp_exposure(exp, dest, Box(0, 0, 200, 200))
    expected = np.zeros((200, 200))
    draw_points(expected, xs + 3.3, ys - 2.4, np.full(20, 1e4), 2.0)
    good = ~out.mask.get("NO_DATA")
    resid = (out.image - expected)[good]
    assert np.std(resid) < 1.0  # interpolation error well below the noise
    assert out.mask.get("NO_DATA")[:, :2].all() and not out.mask.get("NO_DATA")[10:190, 10:190].any()
    ratio = np.var(resid[np.abs(expected[good]) < 1]) / np.median(out.variance[good])
    assert 0.85 < ratio < 1.15  # noise variance follows the propagated plane
    with pytest.raises(ConfigError, match="does not overlap"):
        warp_exposure(exp, make_tan_wcs(50.0, 0.0, 0.2), Box(0, 0, 50, 50))

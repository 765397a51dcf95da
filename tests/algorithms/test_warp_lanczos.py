"""The Lanczos weights of the warp (computed with trigonometric identities) against their definition."""

from __future__ import annotations

import numpy as np
import pytest

from pachon.algorithms.warp import lanczos_weights, warp_exposure
from pachon.core.exposure import Exposure
from pachon.core.geom import Box
from pachon.core.wcs import make_tan_wcs


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_weights_match_the_sinc_definition(order: int) -> None:
    rng = np.random.default_rng(order)
    frac = np.r_[0.0, 1e-9, 0.5, 1 - 1e-9, rng.uniform(0, 1, 1000)]
    d = frac[None] - np.arange(-order + 1, order + 1)[:, None]
    expected = np.sinc(d) * np.sinc(d / order) * (np.abs(d) < order)
    got = lanczos_weights(frac, order)
    assert got.shape == (2 * order, frac.size)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-14)
    # an exact pixel position takes that pixel only
    assert got[order - 1, 0] == 1.0 and np.count_nonzero(got[:, 0]) == 1


def test_integer_shift_is_exact() -> None:
    rng = np.random.default_rng(1)
    img = rng.normal(0, 1, (64, 64))
    exp = Exposure(img, variance=np.full((64, 64), 2.0), wcs=make_tan_wcs(10.0, 0.0, 0.2, crpix=(32.0, 32.0)))
    out = warp_exposure(exp, make_tan_wcs(10.0, 0.0, 0.2, crpix=(35.0, 30.0)), Box(0, 0, 64, 64))
    good = ~out.mask.get("NO_DATA")
    good[:6], good[-6:], good[:, :6], good[:, -6:] = False, False, False, False
    np.testing.assert_allclose(out.image[good], np.roll(np.roll(img, 3, axis=1), -2, axis=0)[good],
                               atol=1e-5)
    np.testing.assert_allclose(out.variance[good], 2.0, rtol=1e-6)

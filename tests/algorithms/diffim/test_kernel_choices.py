"""Kernel-fit choices against simulated truth: spatial order by cross-validation, fixed photometric
scale from the calibrations, bad pixels interpolated rather than zeroed."""

from __future__ import annotations

import numpy as np

from pachon.algorithms.diffim.al import AlConfig
from pachon.algorithms.diffim.simulate import PairSpec, make_pair
from pachon.algorithms.diffim.subtract import DiffimConfig, fill_rows, residual_noise_ratio, subtract_images
from pachon.core.photocalib import PhotoCalib


def test_fill_rows_interpolates_along_rows() -> None:
    img = np.array([[0.0, 1.0, 9.0, 9.0, 4.0, 5.0], [9.0, 9.0, 2.0, 3.0, 9.0, 9.0], [9.0] * 6])
    bad = img == 9.0
    out = fill_rows(img, bad)
    np.testing.assert_allclose(out[0], [0, 1, 2, 3, 4, 5])  # linear between the good neighbours
    np.testing.assert_allclose(out[1], [2, 2, 2, 3, 3, 3])  # one-sided: the nearest good value
    np.testing.assert_allclose(out[2], 0.0)  # no good pixel in the row
    assert out.dtype == np.float32 and img[0, 2] == 9.0  # a copy


def _pair(n_stars: int, seed: int):  # noqa: ANN202
    spec = PairSpec(shape=(256, 256), sigma_science=2.0, sigma_template=1.6, n_stars=n_stars,
                    star_flux=(2e4, 3e5))
    return make_pair(spec, seed=seed)


def test_constant_kernel_chosen_when_the_psf_does_not_vary() -> None:
    # ~25 kernel stars: the star-count rule alone allowed order 2 (6 spatial terms x the basis),
    # which fits their noise; leave-one-out prediction prefers the constant kernel
    sci, tpl, _ = _pair(40, seed=4)
    res = subtract_images(sci, tpl, DiffimConfig())
    assert res.kernel is not None and res.kernel.n_stars >= 24
    assert res.kernel.spatial_order == 0
    forced = subtract_images(sci, tpl, DiffimConfig(al=AlConfig(spatial_order=2)))
    assert forced.kernel.spatial_order == 2
    assert residual_noise_ratio(res.difference) < 1.1


def test_kernel_sum_fixed_by_the_calibrations() -> None:
    # the template is 1.25 x brighter in counts; its calibration says so
    sci, tpl, _ = _pair(40, seed=5)
    tpl.image *= 1.25
    tpl.variance *= 1.25**2
    sci.photo_calib, tpl.photo_calib = PhotoCalib(1.0), PhotoCalib(1.0 / 1.25)
    res = subtract_images(sci, tpl, DiffimConfig())
    assert res.kernel.kernel_sum(np.array([128.0]), np.array([128.0]))[0] == np.float64(0.8)
    free = subtract_images(sci, tpl, DiffimConfig(al=AlConfig(scale_from_calibration=False)))
    assert abs(free.kernel.kernel_sum(np.array([128.0]), np.array([128.0]))[0] - 0.8) < 0.02
    assert residual_noise_ratio(res.difference) < 1.1

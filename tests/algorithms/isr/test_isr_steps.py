"""Each ISR step on small arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from pachon.algorithms.isr.brighter_fatter import apply_brighter_fatter, correct_brighter_fatter, delta_kernel
from pachon.algorithms.isr.crosstalk import apply_crosstalk, correct_crosstalk
from pachon.algorithms.isr.defects import defects_to_mask, mask_to_defects
from pachon.algorithms.isr.interpolate import interpolate_masked
from pachon.algorithms.isr.linear_features import LinearFeatureConfig, find_linear_features, line_mask
from pachon.algorithms.isr.linearity import apply_nonlinearity, linearize
from pachon.algorithms.isr.overscan import OverscanConfig, subtract_overscan
from pachon.core.errors import ConfigError
from pachon.instruments import get_instrument


@pytest.mark.parametrize("method", ["median", "mean", "poly", "constant"])
def test_overscan_removes_row_structure(method):
    amp = get_instrument("PachonTestCam").detectors[0].amplifiers[0]
    rng = np.random.default_rng(1)
    h, w = amp.raw_bbox.shape
    rows = 1000.0 + 5.0 * np.sin(np.arange(h) / 40.0)[:, None]
    raw = rows + rng.normal(0, 3.0, (h, w))
    out, stats = subtract_overscan(raw, amp, OverscanConfig(method=method))
    data = out[amp.raw_data_bbox.slices()]
    assert abs(data.mean()) < 0.2
    assert stats["overscan_level"] == pytest.approx(1000.0, abs=1.0)
    if method != "constant":  # the row structure is gone: the data RMS is the read noise (+ overscan noise)
        assert data.std() < 3.6


def test_overscan_config_is_checked():
    with pytest.raises(ConfigError, match="overscan.method"):
        OverscanConfig(method="spline")


def test_crosstalk_round_trip():
    rng = np.random.default_rng(2)
    segs = [rng.uniform(0, 5e4, (20, 30)) for _ in range(4)]
    c = rng.uniform(-3e-4, 3e-4, (4, 4))
    np.fill_diagonal(c, 0)
    back = correct_crosstalk(apply_crosstalk(segs, c), c)
    assert max(np.max(np.abs(a - b)) for a, b in zip(segs, back, strict=True)) < 1e-8
    with pytest.raises(ConfigError, match="crosstalk matrix has shape"):
        correct_crosstalk(segs, np.zeros((3, 3)))


def test_linearity_round_trip():
    true = np.linspace(0, 1.2e5, 1001)
    coeffs = np.array([-2e-7, 1e-13])
    assert np.max(np.abs(linearize(apply_nonlinearity(true, coeffs), coeffs) - true)) < 1e-6


def test_brighter_fatter_round_trip_and_sizes():
    from pachon.algorithms.cp.brighter_fatter import size_flux_slope, star_sizes

    yy, xx = np.mgrid[-12:13, -12:13]
    psf = np.exp(-0.5 * (xx**2 + yy**2) / 1.8**2)
    psf /= psf.sum()
    fluxes = np.geomspace(2e3, 4e5, 12)
    k = delta_kernel(4e-6)
    observed = np.stack([apply_brighter_fatter(f * psf, k) for f in fluxes])
    corrected = np.stack([correct_brighter_fatter(o, k, max_potential=None)[0] for o in observed])
    assert np.max(np.abs(corrected - fluxes[:, None, None] * psf)) / fluxes.max() < 1e-6
    assert size_flux_slope(star_sizes(observed), fluxes)[0] > 1e-8
    assert abs(size_flux_slope(star_sizes(corrected), fluxes)[0]) < 1e-12


def test_defect_boxes_round_trip():
    boxes = np.array([[3, 0, 4, 50], [10, 10, 11, 11], [20, 5, 22, 8]])
    mask = defects_to_mask(boxes, (50, 40))
    assert mask.sum() == 50 + 1 + 6
    assert np.array_equal(defects_to_mask(mask_to_defects(mask), (50, 40)), mask)
    with pytest.raises(ConfigError, match="x1 > x0"):
        defects_to_mask([[5, 5, 5, 6]], (10, 10))


def test_interpolation_is_exact_on_row_ramps():
    y, x = np.mgrid[0:30, 0:40]
    image = 3.0 * x + 0.5 * y
    bad = np.zeros(image.shape, bool)
    bad[:, 17] = True
    bad[4:9, 30:33] = True
    bad[20, :] = True  # a whole row: filled along the column
    out = interpolate_masked(np.where(bad, 1e6, image), bad)
    rows = np.arange(30) != 20
    assert np.allclose(out[rows, 17], image[rows, 17])
    assert np.allclose(out[4:9, 30:33], image[4:9, 30:33])
    cols = np.arange(40) != 17  # (20, 17) has no good pixel in its row or column
    assert np.all(np.abs(out[20, cols] - image[20, cols]) <= 0.5 + 1e-9)


def test_hough_finds_and_masks_a_trail():
    rng = np.random.default_rng(3)
    image = rng.normal(0, 10.0, (400, 400))
    yy, xx = np.mgrid[0:400, 0:400]
    theta, rho = np.deg2rad(58.0), 170.0
    dist = xx * np.cos(theta) + yy * np.sin(theta) - rho
    image += 60.0 * np.exp(-0.5 * (dist / 2.0) ** 2)
    for sx, sy in rng.uniform(20, 380, (15, 2)):  # compact stars must not be taken for trails
        image += 3000.0 * np.exp(-0.5 * ((xx - sx) ** 2 + (yy - sy) ** 2) / 2.0**2)
    lines = find_linear_features(image, LinearFeatureConfig())
    assert len(lines) == 1
    t, r, half = lines[0]
    assert abs(t - theta) < np.deg2rad(1.5) and abs(r - rho) < 3.0
    mask = line_mask(image.shape, lines)
    assert mask[np.abs(dist) < 3].mean() > 0.95
    assert mask[np.abs(dist) > 30].mean() < 0.01
    assert find_linear_features(rng.normal(0, 10.0, (400, 400)), LinearFeatureConfig()) == []

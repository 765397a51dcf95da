"""The in-place building blocks of the fast ISR path, against the plain forms with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from pachon.algorithms.isr.crosstalk import apply_crosstalk, correct_crosstalk_in_place
from pachon.algorithms.isr.defects import defect_pixels, defects_to_mask
from pachon.algorithms.isr.interpolate import fill_masked
from pachon.algorithms.isr.overscan import OverscanConfig, overscan_levels, subtract_overscan
from pachon.algorithms.isr.stages import apply_flat, flagged_pixels
from pachon.core.errors import ConfigError
from pachon.instruments import get_instrument


def test_fill_masked_rows_and_whole_bad_rows():
    truth = np.add.outer(np.arange(9.0) * 7, np.arange(12.0) * 0.5).astype(np.float32)
    bad = np.zeros(truth.shape, bool)
    bad[:, 4:7] = True  # bad columns: filled along rows
    bad[3, :] = True  # a whole bad row: filled along columns
    image = np.where(bad, np.float32(1e6), truth)
    assert fill_masked(image, np.flatnonzero(bad)) == bad.sum()
    np.testing.assert_allclose(image, truth, atol=1e-4)


def test_defect_pixels_match_the_box_mask():
    boxes = [[1, 2, 3, 5], [0, 0, 1, 1], [8, 8, 20, 20], [2, 3, 4, 4]]  # overlapping, clipped
    idx = defect_pixels(boxes, (10, 10))
    expected = np.zeros((10, 10), bool)
    for x0, y0, x1, y1 in boxes:
        expected[y0:y1, x0:x1] = True
    np.testing.assert_array_equal(np.flatnonzero(expected), idx)
    np.testing.assert_array_equal(defects_to_mask(boxes, (10, 10)), expected)


def test_in_place_crosstalk_on_flipped_views():
    rng = np.random.default_rng(3)
    true = rng.uniform(0, 5e4, (4, 70, 30)).astype(np.float32)
    c = rng.uniform(-3e-4, 3e-4, (4, 4))
    np.fill_diagonal(c, 0)
    observed = apply_crosstalk(list(true), c)
    image = np.zeros((70, 120), np.float32)
    views = [image[:, 30 * k : 30 * (k + 1)][:, ::-1] if k % 2 else image[:, 30 * k : 30 * (k + 1)]
             for k in range(4)]
    for v, o in zip(views, observed, strict=True):
        v[...] = o
    correct_crosstalk_in_place(views, c, block_rows=16)
    assert max(np.max(np.abs(v - t)) for v, t in zip(views, true, strict=True)) < 0.02  # float32
    with pytest.raises(ConfigError, match="crosstalk matrix has shape"):
        correct_crosstalk_in_place(views, np.zeros((3, 3)))


def test_overscan_levels_agree_with_subtraction():
    amp = get_instrument("PachonTestCam").detectors[0].amplifiers[0]
    rng = np.random.default_rng(1)
    raw = (1000 + 5 * np.sin(np.arange(amp.raw_bbox.height) / 40.0)[:, None]
           + rng.normal(0, 3.0, amp.raw_bbox.shape)).astype(np.int32)
    rows, cols, stats = overscan_levels(raw, amp, OverscanConfig(), noise_sample=500)
    out, full = subtract_overscan(raw, amp, OverscanConfig())
    rs, _ = amp.raw_serial_overscan_bbox.slices(origin=(amp.raw_bbox.x0, amp.raw_bbox.y0))
    np.testing.assert_allclose(raw[rs] - rows[rs, None], out[rs])
    assert cols is None
    assert stats["overscan_noise"] == pytest.approx(full["overscan_noise"], rel=0.15)


def test_apply_flat_flags_bad_flat_pixels():
    image = np.full((3, 4), 10.0, np.float32)
    variance = np.full((3, 4), 4.0, np.float32)
    flat = np.full((3, 4), 2.0)
    flat[0, 0], flat[1, 1], flat[2, 2] = np.nan, 0.01, np.inf
    mask = np.zeros((3, 4), np.uint32)
    apply_flat(image, variance, mask, flat, 1)
    bad = ~np.isfinite(flat) | (flat <= 0.05)
    np.testing.assert_array_equal(mask == 1, bad)
    np.testing.assert_allclose(image, np.where(bad, 10.0, 5.0))
    np.testing.assert_allclose(variance, np.where(bad, 4.0, 1.0))
    np.testing.assert_array_equal(flagged_pixels(mask, 1, block_rows=2), np.flatnonzero(bad))

"""Calibration products measured on simulated exposures with known truth."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from isr_sim_helpers import SEED, sim_config

from pachon.algorithms.cp import (
    combine_frames,
    find_defects,
    fit_bf_strength,
    fit_linearity,
    fit_ptc,
    measure_crosstalk,
    pair_statistics,
    read_noise_from_bias_pair,
)
from pachon.algorithms.isr.assemble import data_segment
from pachon.algorithms.isr.overscan import OverscanConfig, subtract_overscan
from pachon.sim import Simulator

log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def sim():
    return Simulator(sim_config(), seed=SEED)


def _segments(sim, det, expected, dark_time, k, *, overscan=True):
    raws, _ = sim.expose(expected, det, dark_time=dark_time, rng=np.random.default_rng([SEED, 7, k]),
                         cosmic_rays=False)
    cfg = OverscanConfig()
    return [data_segment(subtract_overscan(r, a, cfg)[0] if overscan else r.astype(float), a)
            for r, a in zip(raws, det.amplifiers, strict=True)]


def test_combine_clips_outliers_and_propagates_variance():
    rng = np.random.default_rng(0)
    frames = [100.0 + rng.normal(0, 2.0, (60, 60)) for _ in range(7)]
    frames[3][10, 10] = 5000.0  # a cosmic ray
    combined, variance, n_used = combine_frames(frames, variances=[np.full((60, 60), 4.0)] * 7)
    assert combined[10, 10] == pytest.approx(100.0, abs=3)
    assert n_used[10, 10] == 6 and n_used[0, 0] == 7
    assert variance[0, 0] == pytest.approx(4.0 / 7)
    assert np.std(combined) == pytest.approx(2.0 / np.sqrt(7), rel=0.1)


def test_ptc_gain_and_read_noise_within_2_percent(sim):
    det = sim.detectors[0]
    sig = sim.signatures(det)
    illum = sig.illumination.astype(float)
    stats = {a.name: ([], []) for a in det.amplifiers}
    for i, level in enumerate(np.geomspace(1000, 40000, 8)):
        s1 = _segments(sim, det, level * illum, 0.0, 2 * i)
        s2 = _segments(sim, det, level * illum, 0.0, 2 * i + 1)
        for amp, a, b in zip(det.amplifiers, s1, s2, strict=True):
            m, v = pair_statistics(a, b)
            stats[amp.name][0].append(m)
            stats[amp.name][1].append(v)
    b1 = _segments(sim, det, np.zeros(det.bbox.shape), 0.0, 100, overscan=False)
    b2 = _segments(sim, det, np.zeros(det.bbox.shape), 0.0, 101, overscan=False)
    for i, amp in enumerate(det.amplifiers):
        rn_adu = read_noise_from_bias_pair(b1[i], b2[i])
        res = fit_ptc(*stats[amp.name], read_noise_adu=rn_adu)
        log.info("PTC %s: gain %.4f (truth %.4f), read noise %.3f e- (truth %.3f)", amp.name, res.gain,
                 sig.gains[i], res.read_noise, amp.read_noise)
        assert res.gain == pytest.approx(sig.gains[i], rel=0.02)
        assert res.read_noise == pytest.approx(amp.read_noise, rel=0.02)


def test_crosstalk_within_10_percent(sim):
    det = sim.detectors[0]
    rng = np.random.default_rng(5)
    shape = det.bbox.shape
    exposures = []
    for k in range(4):
        expected = np.zeros(shape)
        # bright blocks at random places: sources at different readout pixels in each amplifier
        for x, y in rng.integers(0, 480, (60, 2)):
            expected[y : y + 24, x : x + 24] = 60000.0
        exposures.append(_segments(sim, det, expected, 0.0, 200 + k))
    coeff, err = measure_crosstalk(exposures)
    truth = sim.signatures(det).crosstalk
    off = ~np.eye(len(det.amplifiers), dtype=bool)
    rel = np.abs(coeff[off] - truth[off]) / truth[off]
    log.info("crosstalk: max relative error %.3f (truth %s)", rel.max(), np.unique(truth[off]))
    assert rel.max() < 0.10


def test_linearity_coefficient(sim):
    det = sim.detectors[0]
    times = np.array([1, 2, 4, 8, 12, 16, 20.0])
    means = []
    for i, t in enumerate(times):
        segs = _segments(sim, det, np.full(det.bbox.shape, 4000.0 * t), 0.0, 300 + i)
        means.append(np.mean(segs[0]) * sim.signatures(det).gains[0])
    c2 = fit_linearity(times, means, order=2)[0]
    truth = sim.config.detector.nonlinearity
    log.info("linearity c2 %.3g (truth %.3g)", c2, truth)
    assert c2 == pytest.approx(truth, rel=0.1)


def test_linearity_on_a_32k_ramp_within_noise(sim):
    """The PTC-like ramp (2000 e-/s, 0.5 .. 16 s, overscan subtracted only): the bias structure left
    in the flats (~2 e-) biased c2 by ~25% until the fit got its constant term."""
    from pachon.algorithms.cp import fit_linearity_curve

    det = sim.detectors[0]
    sig = sim.signatures(det)
    illum = sig.illumination.astype(float)
    times = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 16.0])
    segments = [_segments(sim, det, 2000.0 * t * illum, t, 400 + i) for i, t in enumerate(times)]
    means = np.array([[np.mean(s) * g for s, g in zip(segs, sig.gains, strict=True)] for segs in segments])
    truth = sim.config.detector.nonlinearity
    for k in range(means.shape[1]):
        fit = fit_linearity_curve(times, means[:, k])
        no_offset = fit_linearity_curve(times, means[:, k], fit_offset=False)
        log.info("linearity amp %d: c2 %.4g +- %.2g (truth %.3g), offset %.2f e-; without offset %.4g", k,
                 fit.coefficients[0], fit.errors[0], truth, fit.offset, no_offset.coefficients[0])
        assert abs(fit.coefficients[0] - truth) < max(3 * fit.errors[0], 0.01 * abs(truth))
        assert fit.coefficients[0] == pytest.approx(truth, rel=0.05)
        # the offset is the simulator's bias column gradient (mean 1.5 ADU) left by the overscan
        bias_residual = 0.5 * sim.config.detector.bias_gradient * sig.gains[k]
        assert fit.offset == pytest.approx(bias_residual, abs=0.6)
        assert abs(no_offset.coefficients[0] / truth - 1) > 0.15  # the cause of the old 25% error


def test_defects_completeness(sim):
    from isr_sim_helpers import build_calibs

    from pachon.algorithms.isr.defects import defects_to_mask

    det = sim.detectors[0]
    calibs = build_calibs(sim, det, n_bias=3, n_dark=3, n_flat=3)
    boxes, mask = find_defects(calibs.flat, calibs.dark)
    truth = [d for d in sim.signatures(det).defects if d["kind"] in ("hot_pixel", "bad_column")]
    true_mask = defects_to_mask([[d["x0"], d["y0"], d["x1"], d["y1"]] for d in truth], det.bbox.shape)
    completeness = (mask & true_mask).sum() / true_mask.sum()
    false_rate = (mask & ~true_mask).sum() / mask.size
    log.info("defects: completeness %.3f, false-positive fraction %.2e, %d boxes", completeness,
             false_rate, len(boxes))
    assert completeness >= 0.95
    assert false_rate < 1e-3


def test_bf_strength_from_star_sizes():
    from pachon.algorithms.cp.brighter_fatter import size_flux_slope, star_sizes
    from pachon.algorithms.isr.brighter_fatter import correct_brighter_fatter
    from pachon.sim.render import brighter_fatter

    rng = np.random.default_rng(9)
    yy, xx = np.mgrid[-10:11, -10:11]
    fluxes = np.geomspace(1e4, 3e5, 240)
    stamps = []
    psf = np.exp(-0.5 * (xx**2 + yy**2) / 1.7**2)  # centred stamps (as cut around centroids)
    for f in fluxes:
        img = brighter_fatter(f * psf / psf.sum(), 4e-6)  # the simulator's own model
        stamps.append(rng.poisson(np.maximum(img + 500, 0)) - 500.0)
    strength, kernel = fit_bf_strength(stamps, fluxes)
    log.info("BF strength %.3g (truth 4e-6)", strength)
    assert strength == pytest.approx(4e-6, rel=0.25)  # 40 stars are too few: the fit is noise-limited
    before, err_b = size_flux_slope(star_sizes(np.array(stamps)), fluxes)
    corrected = np.stack([correct_brighter_fatter(s, kernel, max_potential=None)[0] for s in stamps])
    after, err_a = size_flux_slope(star_sizes(corrected), fluxes)
    log.info("size-flux slope %.3g +- %.2g before, %.3g +- %.2g after", before, err_b, after, err_a)
    assert before > 4 * err_b
    assert abs(after) < 3 * err_a

"""Truth versus pixels: photometry, astrometry, bias and read noise, crosstalk, non-linearity, BF."""

from __future__ import annotations

import numpy as np
import pytest

from pachon.sim.astrometry import pixel_scale_arcsec
from pachon.sim.detector import raw_to_assembled
from pachon.sim.engine import Simulator
from pachon.sim.render import PsfField


def _isolated_bright(truth: dict, det, *, min_flux: float, max_flux: float) -> np.ndarray:
    x, y, f = truth["x"], truth["y"], truth["flux"]
    good = []
    for i in np.flatnonzero((truth["kind"] == 0) & (f > min_flux) & (f < max_flux)):
        if not (20 < x[i] < det.bbox.width - 20 and 20 < y[i] < det.bbox.height - 20):
            continue
        d = np.hypot(x - x[i], y - y[i])
        if np.all((d > 25) | (d == 0) | (f < 1e-3 * f[i])):
            good.append(i)
    return np.array(good, dtype=int)


@pytest.fixture(scope="module")
def frames(make_quiet_config):
    sim = Simulator(make_quiet_config(), seed=11)
    visit = sim.visits[0]
    scene = sim.scene(visit)
    return sim, visit, [sim.simulate_detector(visit, det, scene) for det in sim.detectors]


def test_aperture_flux_and_positions(frames) -> None:
    sim, visit, out = frames
    n_checked = 0
    for frame in out:
        det = frame.detector
        sig = sim.signatures(det)
        gain = np.repeat(sig.gains, 1)
        electrons = raw_to_assembled(frame.raws, det)
        for i, amp in enumerate(det.amplifiers):
            electrons[amp.bbox.slices()] *= gain[i]
        truth = frame.sources
        psf = PsfField(sim.visit_psf(visit), det, pixel_scale_arcsec(sim.instrument, det))
        yy, xx = np.mgrid[0 : det.bbox.height, 0 : det.bbox.width]
        for i in _isolated_bright(truth, det, min_flux=2e5, max_flux=1.5e6):
            x, y = truth["x"][i], truth["y"][i]
            r = np.hypot(xx - x, yy - y)
            ap, ann = r < 10, (r > 14) & (r < 20)
            sky = np.median(electrons[ann])
            measured = np.sum(electrons[ap] - sky)
            # expected: truth flux x illumination x the PSF's encircled energy in the aperture
            n = 81
            im = psf.profile(x, y).drawImage(nx=n, ny=n, scale=psf.pixel_scale).array
            ry, rx = np.mgrid[0:n, 0:n] - n // 2
            ee = im[np.hypot(rx, ry) < 10].sum() / im.sum() * im.sum()
            expected = truth["flux"][i] * truth["illumination"][i] * ee
            noise = np.sqrt(expected + ap.sum() * (sky + 25.0))
            assert abs(measured - expected) < 4 * noise + 0.002 * expected, (measured, expected, noise)
            # centroid from the background-subtracted pixels (Gaussian-weighted, iterated)
            cx, cy = x + 0.3, y - 0.2
            for _ in range(20):
                w = np.exp(-0.5 * ((xx - cx) ** 2 + (yy - cy) ** 2) / 2.0**2) * (r < 12)
                img = (electrons - sky) * w
                cx, cy = np.sum(img * xx) / img.sum(), np.sum(img * yy) / img.sum()
            # the Gaussian weight biases the centroid of an asymmetric (sheared) PSF by ~0; allow 0.02
            assert abs(cx - x) < 0.02 and abs(cy - y) < 0.02, (cx - x, cy - y)
            n_checked += 1
    assert n_checked >= 5


def test_overscan_matches_bias_and_read_noise(frames) -> None:
    sim, _, out = frames
    cfg = sim.config.detector
    for frame in out:
        sig = sim.signatures(frame.detector)
        for i, (amp, raw) in enumerate(zip(frame.detector.amplifiers, frame.raws, strict=True)):
            over = raw[amp.raw_serial_overscan_bbox.slices()].astype(float)
            expected_std = np.hypot(sig.read_noise_adu[i], cfg.bias_row_rms)
            n_rows = over.shape[0]
            tol = 4 * (cfg.bias_row_rms / np.sqrt(n_rows) + sig.read_noise_adu[i] / np.sqrt(over.size))
            assert abs(over.mean() - sig.bias_levels[i]) < tol
            assert over.std() == pytest.approx(expected_std, rel=0.04)
            pre = raw[amp.raw_serial_prescan_bbox.slices()].astype(float)
            assert abs(pre.mean() - sig.bias_levels[i]) < 4 * tol


def test_crosstalk_at_configured_level(make_quiet_config) -> None:
    coefficient = 1e-3
    sim = Simulator(make_quiet_config(crosstalk=coefficient), seed=5)
    det = sim.detectors[0]
    sig = sim.signatures(det)
    expected = np.zeros(det.bbox.shape)
    src = det.amplifiers[0]
    sl = src.bbox.slices()
    expected[sl][100:140, 60:200] = 8e4  # a bright block in amplifier 0 only
    raws, _ = sim.expose(expected, det, dark_time=0.0, rng=np.random.default_rng(1), cosmic_rays=False)
    # in readout order the victim sees coefficient x the source's ADU at the same raw pixel
    src_adu = raws[0].astype(float) - sig.bias_levels[0]
    hot = src_adu > 3e4
    for victim in (1, 2, 3):
        v_adu = raws[victim].astype(float) - sig.bias_levels[victim]
        amp = det.amplifiers[victim]
        gradient = sim.config.detector.bias_gradient * np.linspace(0, 1, amp.raw_data_bbox.width)
        v_adu[amp.raw_data_bbox.slices()] -= gradient
        measured = np.median(v_adu[hot]) / np.median(src_adu[hot])
        assert measured == pytest.approx(sig.crosstalk[victim, 0], rel=0.1)
    assert sig.crosstalk[1, 0] == coefficient


@pytest.mark.parametrize("beta", [0.0, -4e-7])
def test_nonlinearity_at_configured_level(beta: float, make_quiet_config) -> None:
    sim = Simulator(make_quiet_config(nonlinearity=beta, bias_row_rms=0.0), seed=2)
    det = sim.detectors[1]
    sig = sim.signatures(det)
    level = 60000.0
    raws, _ = sim.expose(
        np.full(det.bbox.shape, level), det, dark_time=0.0, rng=np.random.default_rng(3), cosmic_rays=False
    )
    adu = raw_to_assembled(raws, det)
    for i, amp in enumerate(det.amplifiers):
        e_true = level * sig.flat[amp.bbox.slices()].astype(float)
        grad = sim.config.detector.bias_gradient / 2
        measured = (adu[amp.bbox.slices()].mean() - grad) * sig.gains[i]
        expected = np.mean(e_true + beta * (e_true**2 + e_true))
        assert measured == pytest.approx(expected, rel=5e-4)
        if beta:
            # the deviation from linearity is present at the configured level (-1.4 % here)
            assert (measured / e_true.mean() - 1) == pytest.approx(beta * level, rel=0.05)


def test_brighter_fatter_broadens_bright_stars(make_quiet_config) -> None:
    def size(bf: float, flux: float) -> float:
        sim = Simulator(make_quiet_config(brighter_fatter=bf), seed=1)
        det = sim.detectors[0]
        psf = PsfField(sim.visit_psf(sim.visits[0]), det, 0.2)
        img = np.zeros((64, 64))
        psf.draw_point(img, 32.0, 32.0, flux, bf=bf)
        yy, xx = np.mgrid[0:64, 0:64]
        r2 = (xx - 32) ** 2 + (yy - 32) ** 2
        core = img * (r2 < 25)
        return float(np.sum(core * r2) / core.sum())

    base = size(0.0, 5e5)
    assert size(4e-6, 5e3) == pytest.approx(base, rel=1e-3)
    bright = size(4e-6, 5e5)
    assert bright > base * 1.008, (bright, base)

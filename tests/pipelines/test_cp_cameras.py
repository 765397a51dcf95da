"""The cp pipeline and ISR on full-size detectors of LSSTCam (e2v), LSSTComCam and LATISS (ITL).

One simulated 4k x 4k, 16-amplifier detector per camera (:mod:`cp_cameras_helpers`): cp.yaml
in one run (bias, dark, flat, ptc and linearity, defects), certified, then isr.yaml on a science
exposure, checked against the simulator's truth: gains and read noise per amplifier, the
defects, the post-ISR image pixel by pixel (mean, RMS and chi of the residual; the amplifiers'
placement and flips on the pixels of stars).  PachonTestCam's run is tests/pipelines/
test_cp_pipeline.py.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from cp_cameras_helpers import CAMERAS, N_FRAMES, build_camera, calibration_noise, truth_image
from scipy.ndimage import binary_dilation

from pachon.algorithms.isr.defects import defects_to_mask
from pachon.sim.writer import physical_filter_for

log = logging.getLogger(__name__)


def _fmt(values: np.ndarray) -> str:
    return "[" + " ".join(f"{v:+.3f}" for v in values) + "]"


@pytest.fixture(scope="module", params=list(CAMERAS))
def camera(request, tmp_path_factory):
    run = build_camera(request.param, tmp_path_factory.mktemp(f"cp_{request.param}"))
    yield run
    run.repo.close()


@pytest.fixture(scope="module")
def isr_check(camera):
    """Post-ISR exposure, truth, expected variance per pixel and the pixels compared."""
    exp = camera.post_isr()
    truth, sources = truth_image(camera)
    flat = camera.calibration("flat", physical_filter=exp.metadata["FILTER"])
    amp_index = np.zeros(truth.shape, dtype=np.int64)
    for i, amp in enumerate(camera.detector.amplifiers):
        amp_index[amp.bbox.slices()] = i
    read2 = np.array([a.read_noise for a in camera.detector.amplifiers]) ** 2
    # science shot and read noise, the combined bias and dark, the flat's own noise (its variance plane)
    expected_var = truth + (read2 + calibration_noise(camera))[amp_index] + truth**2 * flat.variance
    sig = camera.sim.signatures(camera.detector)
    good = ~binary_dilation(exp.mask.any("SAT", "BAD", "SUSPECT"), iterations=3) & (sig.dark < 1.0)
    return exp, truth, sources, expected_var, good, amp_index


def test_cp_run_makes_and_certifies_every_product(camera):
    counts = {label: c["succeeded"] for label, c in camera.cp_report.counts().items() if c["succeeded"]}
    assert counts == {"cpBiasProc": N_FRAMES["bias"], "cpDarkProc": N_FRAMES["dark"],
                      "cpFlatProc": N_FRAMES["flat"], "cpBias": 1, "cpDark": 1, "cpFlat": 1, "cpPtc": 1,
                      "cpDefects": 1}
    shape = camera.detector.bbox.shape
    bias, dark = camera.calibration("bias"), camera.calibration("dark")
    flat = camera.calibration("flat", physical_filter=physical_filter_for(camera.sim.instrument, "r"))
    assert bias.image.shape == dark.image.shape == flat.image.shape == shape
    assert (bias.metadata["NCOMBINE"], dark.metadata["NCOMBINE"], flat.metadata["NCOMBINE"]) == \
        (N_FRAMES["bias"], N_FRAMES["dark"], N_FRAMES["flat"])
    assert np.mean(flat.image) == pytest.approx(1.0, abs=1e-4)
    truth = camera.sim.signatures(camera.detector)
    model = truth.flat * truth.illumination
    assert np.corrcoef(flat.image.ravel(), (model / model.mean()).ravel())[0, 1] > 0.95
    assert np.median(dark.image) == pytest.approx(camera.sim.config.detector.dark_current, abs=0.01)
    assert camera.calibration("linearity").shape == (len(camera.detector.amplifiers), 1)


def test_ptc_gains_and_read_noise(camera):
    """Each amplifier has ~1M pixels: a pair's variance is good to sqrt(2/N) = 0.14 %, the gain
    from four pairs to ~0.1 %, the read noise from one bias pair to 1/sqrt(2N) = 0.07 % (plus the
    ADC's 1/12 ADU^2, +0.3 % at ITL's 3.75 ADU); the issue asks for 2 %."""
    ptc = camera.calibration("ptc")
    amps = camera.detector.amplifiers
    assert ptc["amplifiers"] == [a.name for a in amps]
    truth = camera.sim.signatures(camera.detector)
    gain_err = np.asarray(ptc["gain"]) / truth.gains - 1
    noise_err = np.asarray(ptc["read_noise"]) / np.array([a.read_noise for a in amps]) - 1
    log.info("%s ptc: gain error %% per amplifier %s (max |.| %.3f %%), read noise error %% %s (max |.| "
             "%.3f %%)", camera.instrument, _fmt(100 * gain_err), 100 * np.abs(gain_err).max(),
             _fmt(100 * noise_err), 100 * np.abs(noise_err).max())
    assert np.all(np.abs(gain_err) < 0.005)
    assert np.all(np.abs(noise_err) < 0.01)


def test_defects_match_the_simulated_ones(camera):
    det = camera.detector
    truth = camera.sim.signatures(det)
    found = defects_to_mask(camera.calibration("defects"), det.bbox.shape)
    kinds = {}
    for d in truth.defects:
        kinds.setdefault(d["kind"], np.zeros(det.bbox.shape, bool))[d["y0"]:d["y1"], d["x0"]:d["x1"]] = True
    hot, column = kinds["hot_pixel"], kinds["bad_column"]
    extra = found & ~binary_dilation(hot | column)
    log.info("%s defects: %d boxes; hot pixels found %d/%d, bad-column pixels %d/%d; %d other pixels",
             camera.instrument, len(camera.calibration("defects")), (found & hot).sum(), hot.sum(),
             (found & column).sum(), column.sum(), extra.sum())
    assert hot.sum() > 100 and column.sum() > 1000
    assert found[hot].all()
    assert found[column].mean() > 0.95
    assert extra.sum() < 1e-5 * found.size


def test_post_isr_equals_truth_within_noise(camera, isr_check):
    exp, truth, sources, expected_var, good, amp_index = isr_check
    resid = (exp.image - truth)[good]
    chi = resid / np.sqrt(expected_var[good])
    sky = good & (sources < 1.0)
    sky_resid = (exp.image - truth)[sky]
    sky_expected = np.sqrt(np.mean(expected_var[sky]))
    isr_chi = ((exp.image - truth) / np.sqrt(exp.variance))[good]
    log.info("%s ISR: residual mean %.3f e-, RMS %.2f e- on sky pixels (expected %.2f e-, sky %.0f e-); "
             "chi over %d pixels: mean %.4f, std %.4f; chi with ISR's variance plane: std %.4f",
             camera.instrument, sky_resid.mean(), sky_resid.std(), sky_expected, np.median(truth[sky]),
             good.sum(), chi.mean(), chi.std(), isr_chi.std())
    # per amplifier: the bias, dark and flat (made with the nominal gains) follow the ptc gains the
    # science frame is converted with; a gain mismatch would leave steps of (ptc / nominal - 1) x sky
    amp_means = np.bincount(amp_index[sky], weights=sky_resid) / np.bincount(amp_index[sky])
    log.info("%s ISR: sky residual mean per amplifier (e-) %s", camera.instrument, _fmt(amp_means))
    assert np.all(np.abs(amp_means) < 0.25)
    assert good.mean() > 0.98
    assert abs(resid.mean()) < 0.3 and abs(sky_resid.mean()) < 0.3
    assert sky_resid.std() == pytest.approx(sky_expected, rel=0.02)
    assert abs(chi.mean()) < 0.01 and chi.std() == pytest.approx(1.0, abs=0.02)
    # ISR's variance leaves out the calibrations' noise (a few %)
    assert 1.0 < isr_chi.std() < 1.05
    md = exp.metadata
    assert md["ISR_BIAS"] and md["ISR_DARK"] and md["ISR_FLAT"] and md["ISR_PTC"]
    assert md["ISR_LINEARITY"] and md["ISR_DEFECTS"]


def test_amplifiers_assembled_pixel_by_pixel(camera, isr_check):
    """On the pixels of sources (> 10 sigma) in each amplifier the residual is noise; the same
    pixels against the truth flipped within the amplifier (a wrong readout flip) are far off."""
    exp, truth, sources, expected_var, good, _ = isr_check
    summary = []
    for amp in camera.detector.amplifiers:
        box = amp.bbox.slices()
        img, tru, var, ok = exp.image[box], truth[box], expected_var[box], good[box]
        src = ok & (sources[box] > 10 * np.sqrt(var))
        chi = (img - tru)[src] / np.sqrt(var[src])
        flipped = min(np.median(np.abs(img - f)[src] / np.sqrt(var[src]))
                      for f in (tru[:, ::-1], tru[::-1, :]))
        summary.append((amp.name, int(src.sum()), round(float(chi.std()), 3), round(float(flipped), 1)))
        assert src.sum() > 20, amp.name
        assert abs(chi.mean()) < 0.25 and chi.std() < 1.2 and np.abs(chi).max() < 6, summary[-1]
        assert flipped > 5, summary[-1]
    log.info("%s assembly (amplifier, source pixels, chi std, median |chi| if flipped in x or y): %s",
             camera.instrument, summary)


def test_calibrations_follow_the_gains_isr_applies():
    """A flat, bias or dark made with one set of gains, applied with another: each amplifier's
    pixels scale by the ratio (no camera fixture: a ComCam-shaped detector of arrays)."""
    from pachon.algorithms.isr import IsrCalibs
    from pachon.core.exposure import Exposure
    from pachon.instruments import get_instrument
    from pachon.pipelines.isr_task import match_calibration_gains, record_gains, recorded_gains

    det = get_instrument("LSSTComCam").detector(4)
    nominal = np.array([a.gain for a in det.amplifiers])
    ptc = nominal * (1 + 0.01 * np.arange(len(nominal)))
    flat = Exposure(np.ones(det.bbox.shape, np.float32))
    record_gains(flat.metadata, det, nominal)
    bias = Exposure(np.full(det.bbox.shape, 2.0, np.float32))  # records nothing: used as it is
    calibs = match_calibration_gains(IsrCalibs(flat=flat, bias=bias, gains=ptc), det, {"exposure": 1})
    for i, amp in enumerate(det.amplifiers):
        assert np.all(calibs.flat.image[amp.bbox.slices()] == np.float32(ptc[i] / nominal[i]))
    np.testing.assert_allclose(recorded_gains(calibs.flat.metadata, det), ptc)
    assert np.all(flat.image == 1.0) and calibs.bias is bias
    # the same gains: nothing copied
    same = IsrCalibs(flat=flat, gains=nominal)
    assert match_calibration_gains(same, det, {"exposure": 1}).flat is flat

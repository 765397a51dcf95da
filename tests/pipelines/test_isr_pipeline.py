"""ISR through run_pipeline with calibrations made by the cp pipeline and certified; bad inputs;
the Calar Alto set through cp and ISR with the CAHA-CAFOS instrument definition."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from astropy.io import fits
from night_helpers import CALIB, ISR_YAML, RAW
from scipy.ndimage import binary_dilation

from pachon.pipe import run_pipeline

log = logging.getLogger(__name__)
SCIENCE = "exposure.observation_type = 'science'"


@pytest.fixture(scope="module")
def isr_run(night):
    report = run_pipeline(night.repo, ISR_YAML, inputs=[RAW, CALIB], output="isr/science", where=SCIENCE)
    assert report.ok, report.summary()
    return report


def test_post_isr_equals_truth_within_noise(night, isr_run):
    repo, sim = night.repo, night.sim
    refs = repo.query_datasets("post_isr", "isr/science")
    assert len(refs) == 1
    exp = repo.get(refs[0])
    det, visit = sim.detectors[0], sim.visits[0]
    sig = sim.signatures(det)
    image, _, _ = sim.render(visit, det)
    sky = sim.simulate_detector(visit, det).sky_level
    truth = (image + sky) * float(np.mean(sig.flat * sig.illumination))
    good = ~binary_dilation(exp.mask.any("SAT", "BAD", "SUSPECT"), iterations=3) & (sig.dark < 1.0)
    resid = (exp.image - truth)[good]
    expected = np.sqrt(np.median(truth) + np.mean([a.read_noise**2 for a in det.amplifiers]))
    chi = ((exp.image - truth) / np.sqrt(exp.variance))[good]
    log.info("ISR pipeline residual: mean %.3f e-, RMS %.2f e- (noise %.2f e-); chi mean %.3f, std %.3f",
             resid.mean(), resid.std(), expected, chi.mean(), chi.std())
    assert abs(resid.mean()) < 1.0
    assert resid.std() == pytest.approx(expected, rel=0.06)
    assert abs(chi.mean()) < 0.05 and 0.95 < chi.std() < 1.08
    md = exp.metadata
    assert md["OBSTYPE"] == "science" and md["ISR_PTC"] and md["ISR_FLAT"]
    # linearity and defects made by the cp run are applied; no crosstalk or bfk: those steps are off
    assert md["ISR_LINEARITY"] and md["ISR_DEFECTS"] and md["ISR_DARK"]
    assert not md["ISR_CROSSTALK"] and not md["ISR_BFK"] and md["ISR_OFF"] == "crosstalk,bfk"
    meta = repo.get("isr_metadata", refs[0].data_id, collections="isr/science")
    assert meta["missing_optional"] == ["crosstalk", "bfk"]
    assert exp.visit_info.exposure_time == visit.exposure_time
    assert exp.visit_info.band == "r"


def test_optional_calibration_absent_and_required_missing(night, isr_run):
    repo = night.repo
    det0 = {"instrument": "PachonTestCam", "detector": 0}
    # only bias and flat certified: dark, ptc, linearity, defects switch off (recorded), the run succeeds
    repo.register_collection("min/calib", "CALIBRATION")
    repo.certify("min/calib", [repo.find_dataset("bias", det0, collections=CALIB, time=0),
                               repo.query_datasets("flat", CALIB)[0]])
    report = run_pipeline(repo, ISR_YAML, inputs=[RAW, "min/calib"], output="isr/min")
    assert report.ok, report.summary()
    (ref,) = repo.query_datasets("post_isr", "isr/min")
    md = repo.get(ref).metadata
    assert md["ISR_BIAS"] and md["ISR_FLAT"] and not md["ISR_DARK"] and not md["ISR_PTC"]
    assert md["ISR_OFF"] == "dark,crosstalk,linearity,bfk,defects,ptc"
    meta = repo.get("isr_metadata", ref.data_id, collections="isr/min")
    assert meta["missing_optional"] == ["dark", "crosstalk", "linearity", "bfk", "defects", "ptc"]
    # the flat is required: without it the quantum fails, naming the data ID and the flat
    repo.register_collection("noflat/calib", "CALIBRATION")
    repo.certify("noflat/calib", [repo.find_dataset("bias", det0, collections=CALIB, time=0)])
    report = run_pipeline(repo, ISR_YAML, inputs=[RAW, "noflat/calib"], output="isr/noflat")
    (fail,) = report.failures()
    assert f"'exposure': {ref.data_id['exposure']}" in fail.error
    assert "required prerequisite 'flat' (flat) not found" in fail.error
    assert not repo.query_datasets("post_isr", "isr/noflat")
    (record,) = [repo.get(r) for r in repo.query_datasets("isr_failure", "isr/noflat")]
    assert record["data_id"]["exposure"] == ref.data_id["exposure"] and "flat" in record["error"]


def _variant(night, tmp_path, seq, edit, repo=None):
    src = next(p for p in (night.root / "sim" / "raw").glob("*_000100_*.fits"))
    with fits.open(src) as hdul:
        hdul = fits.HDUList([h.copy() for h in hdul])
    h = hdul[0].header
    h["SEQNUM"] = seq
    h["OBSID"] = h["GROUPID"] = f"PachonTestCam_O_20240330_{seq:06d}"
    path = tmp_path / f"bad_{seq}.fits"
    hdul.writeto(path)
    # ingest refuses an incomplete file, so corrupt it after ingest (as a bad transfer would)
    rep = repo.ingest_raws([path], run=f"bad/raw{seq}", transfer="direct")
    assert not rep.failed, rep.failed
    edit(hdul)
    hdul.writeto(path, overwrite=True)
    return path


def _nan(hdul):
    hdul[3] = fits.ImageHDU(hdul[3].data.astype(np.float32), hdul[3].header)
    hdul[3].data[10, 10] = np.nan


@pytest.mark.parametrize(("seq", "edit", "message"), [
    (900, lambda h: h.pop(), r"amplifier Segment11|amplifier C11"),
    (901, _nan, r"amplifier C10 holds 1 NaN"),
])
def test_bad_raw_fails_its_quantum_only(night, isr_run, tmp_path, seq, edit, message):
    repo = night.repo
    _variant(night, tmp_path, seq, edit, repo)
    out = f"isr/bad{seq}"
    report = run_pipeline(repo, ISR_YAML, inputs=[f"bad/raw{seq}", CALIB], output=out, where=SCIENCE)
    assert not report.ok
    (fail,) = report.failures()
    assert f"'exposure': 2024033000{seq}" in fail.error
    assert __import__("re").search(message, fail.error), fail.error
    assert not repo.query_datasets("post_isr", out)


def test_wrong_shape_calibration_fails_with_data_id(night, isr_run):
    from pachon.core.exposure import Exposure

    repo = night.repo
    det0 = {"instrument": "PachonTestCam", "detector": 0}
    repo.put(Exposure(np.zeros((100, 100), np.float32)), "bias", det0, run="bad/bias")
    repo.register_collection("bad/calib", "CALIBRATION")
    repo.certify("bad/calib", repo.query_datasets("bias", "bad/bias"))
    report = run_pipeline(repo, ISR_YAML, inputs=[RAW, "bad/calib", CALIB], output="isr/badbias",
                          where=SCIENCE)
    (fail,) = report.failures()
    assert "raw {" in fail.error and "bias calibration has shape (100, 100)" in fail.error
    assert not repo.query_datasets("post_isr", "isr/badbias")


CAHA_YAML = """
description: CAHA CAFOS (1024x1024 window, no overscan, no darks)
tasks:
  cpBiasProc: {class: pachon.pipelines.cp_tasks.CpBiasProcTask, config: {isr: {do_overscan: false}}}
  cpBias: pachon.pipelines.cp_tasks.CpBiasTask
  cpFlatProc:
    class: pachon.pipelines.cp_tasks.CpFlatProcTask
    config: {isr: {do_overscan: false, do_dark: false}}
  cpFlat: pachon.pipelines.cp_tasks.CpFlatTask
  isr: {class: pachon.pipelines.isr_task.IsrTask, config: {isr: {do_overscan: false, do_dark: false}}}
subsets:
  bias: [cpBiasProc, cpBias]
  flat: [cpFlatProc, cpFlat]
  isr: [isr]
"""


def test_caha_through_cp_and_isr(shared_data, tmp_path):
    from pachon.algorithms.isr.quality import background_flatness
    from pachon.pipelines.cp_certify import certify_calibrations
    from pachon.repo import Repository

    folder = shared_data / "isr" / "caha-cafos-ngc2420"
    yaml = tmp_path / "caha.yaml"
    yaml.write_text(CAHA_YAML)
    repo = Repository.create(tmp_path / "repo")
    rep = repo.ingest_raws(sorted(folder.glob("*.fits")), transfer="symlink")
    assert not rep.failed, rep.failed
    raw = "CAHA-CAFOS/raw/all"
    repo.register_collection("caha/calib", "CALIBRATION")
    for subset in ("bias", "flat"):
        report = run_pipeline(repo, f"{yaml}#{subset}", inputs=[raw, "caha/calib"], output=f"caha/{subset}",
                              where=f"exposure.observation_type = '{subset}'")
        assert report.ok, report.summary()
        certify_calibrations(repo, f"caha/{subset}", "caha/calib")
    report = run_pipeline(repo, f"{yaml}#isr", inputs=[raw, "caha/calib"], output="caha/isr", where=SCIENCE)
    assert report.ok, report.summary()
    bias = repo.get(repo.query_datasets("bias", "caha/calib")[0])
    refs = repo.query_datasets("post_isr", "caha/isr")
    assert {r.data_id["band"] for r in refs} == {"B", "V"}
    for ref in refs:
        exp = repo.get(ref)
        hdul = repo.get("raw", ref.data_id, collections=[raw])
        before = background_flatness(hdul[0].data.astype(float) - np.median(bias.image) / 1.43)
        after = background_flatness(exp.image, mask=exp.mask.any("BAD", "SAT"))
        log.info("CAHA %s %s via pipeline: background flatness %.4f before, %.4f after",
                 ref.data_id["band"], ref.data_id["exposure"], before, after)
        assert after < 0.6 * before
        assert after < 0.025

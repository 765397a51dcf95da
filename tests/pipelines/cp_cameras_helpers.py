"""Rubin's cameras through the cp pipeline and ISR: one simulated detector of each, full size.

For one detector of LSSTCam (an e2v CCD), LSSTComCam or LATISS (ITL CCDs), 4k x 4k with 16
amplifiers: two biases, one dark, four flat pairs (the photon transfer ramp, also the flat
field) and one science exposure, written with the simulator's signatures; ingested, ``cp.yaml``
run in one go, its products certified and ``isr.yaml`` run on the science exposure.  The truth
(gains, read noise, defects, the expected image) comes from the same :class:`Simulator`.

Frames are few because each costs about 2 s to simulate and 1-2 s to process at this size (see
the timings the fixture logs): two biases are what the PTC's read noise needs, one long dark
keeps the dark's noise in a 30 s science exposure below 2 e-, and the four flat levels are the
fewest the linearity fit (offset, rate, c2) accepts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.time import Time

from pachon.pipe import run_pipeline
from pachon.pipelines.cp_certify import certify_calibrations
from pachon.repo import Repository
from pachon.sim import SimConfig, Simulator
from pachon.sim.astrometry import detector_tan_wcs, pixel_scale_arcsec
from pachon.sim.scene import sky_electrons
from pachon.sim.survey import day_obs_of_mjd
from pachon.sim.writer import RawMetadata, raw_header, write_raw

log = logging.getLogger(__name__)

SEED = 23
CP_YAML = Path(__file__).parents[2] / "src" / "pachon" / "pipelines" / "cp.yaml"
ISR_YAML = CP_YAML.with_name("isr.yaml")
#: camera -> detector simulated (LSSTCam R22_S11 is an e2v CCD; the others are ITL)
CAMERAS = {"LSSTCam": 94, "LSSTComCam": 4, "LATISS": 0}
N_BIAS = 2
DARK_TIME = 120.0
#: flat pairs at 2000 e-/s: 5,000 .. 40,000 e- (x illumination x response)
PTC_TIMES = (2.5, 5.0, 10.0, 20.0)
FLAT_RATE = 2000.0
#: bias, dark and flat frames of the run (cp.yaml's per-input filters)
N_FRAMES = {"bias": N_BIAS, "dark": 1, "flat": 2 * len(PTC_TIMES)}


@dataclass
class CameraRun:
    """One camera's simulated detector after cp, certification and ISR."""

    instrument: str
    root: Path
    repo: Any
    sim: Any
    detector: Any
    visit: Any
    cp_report: Any
    isr_report: Any
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def raw(self) -> str:
        return f"{self.instrument}/raw/all"

    @property
    def calib(self) -> str:
        return f"{self.instrument}/calib"

    def calibration(self, name: str, **extra: Any) -> Any:
        """A certified calibration of the detector."""
        data_id = {"instrument": self.instrument, "detector": self.detector.id, **extra}
        return self.repo.get(name, data_id, collections=[self.calib],
                             time=Time(self.visit.mjd_start, format="mjd", scale="tai"))

    def post_isr(self) -> Any:
        (ref,) = self.repo.query_datasets("post_isr", "isr/science")
        return self.repo.get(ref)


def sim_config(instrument: str) -> SimConfig:
    """One detector, one r-band visit; no cosmic rays, satellites, crosstalk or brighter-fatter,
    which this run makes no calibration for (they are covered on PachonTestCam); a denser star
    field than the default galaxy mix, so every amplifier holds stars for the pixel-by-pixel
    check of the assembly."""
    # LATISS's pixels are 0.1 arcsec, not 0.2: four times the stars per square degree for as many
    # stars per amplifier
    stars = 80000.0 if instrument == "LATISS" else 20000.0
    return SimConfig.from_dict({
        "instrument": instrument, "detectors": [CAMERAS[instrument]],
        "survey": {"n_visits": 1, "bands": ["r"]},
        "sky": {"satellite_probability": 0.0, "star_density": stars, "galaxy_density": 5000.0,
                "n_transients": 0, "n_movers": 0},
        "detector": {"cosmic_ray_rate": 0.0, "brighter_fatter": 0.0, "crosstalk": 0.0}})


def _write(sim: Any, det: Any, raw_dir: Path, meta: RawMetadata, raws: list[np.ndarray],
           wcs: Any = None) -> Path:
    path = raw_dir / f"{sim.instrument.name}_O_{meta.day_obs}_{meta.seq_num:06d}_{det.name}.fits"
    write_raw(path, sim.instrument, det, raws, raw_header(sim.instrument, det, meta, wcs))
    return path


def write_raws(sim: Any, raw_dir: Path) -> list[Path]:
    """Biases, the dark, the flat pairs (taken 0.3 d before the visit) and the science exposure."""
    det, visit = sim.detectors[0], sim.visits[0]
    illum = sim.signatures(det).illumination.astype(np.float64)
    plan = [("bias", 0.0)] * N_BIAS + [("dark", DARK_TIME)]
    plan += [("flat", t) for t in PTC_TIMES for _ in range(2)]
    mjd0 = visit.mjd_start - 0.3
    paths = []
    for k, (kind, t) in enumerate(plan):
        mjd = mjd0 + k / 1440.0
        band = "r" if kind == "flat" else None
        meta = RawMetadata(kind, day_obs_of_mjd(mjd), 5000 + k, mjd, t, t, band=band, seed=SEED)
        expected = FLAT_RATE * t * illum if kind == "flat" else np.zeros(det.bbox.shape)
        raws, _ = sim.expose(expected, det, dark_time=t, rng=np.random.default_rng([SEED, 31, det.id, k]),
                             cosmic_rays=False)
        paths.append(_write(sim, det, raw_dir, meta, raws))
    frame = sim.simulate_detector(visit, det)
    meta = RawMetadata("object", visit.day_obs, visit.seq_num, visit.mjd_start, visit.exposure_time,
                       visit.exposure_time, band=visit.band, ra=visit.ra, dec=visit.dec,
                       rotation_deg=visit.rotation_deg, airmass=visit.airmass, seed=SEED)
    wcs = detector_tan_wcs(sim.instrument, det, visit.ra, visit.dec, visit.rotation_deg)
    paths.append(_write(sim, det, raw_dir, meta, frame.raws, wcs))
    return paths


def build_camera(instrument: str, root: Path) -> CameraRun:
    """Simulate, ingest, run cp.yaml, certify, run isr.yaml; the wall time of each stage in ``timings``."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        timings[name] = now - t0
        t0 = now

    sim = Simulator(sim_config(instrument), seed=SEED)
    paths = write_raws(sim, root / "raw")
    lap("simulate")
    repo = Repository.create(root / "repo")
    report = repo.ingest_raws(paths)
    assert not report.failed, report.failed
    raw, calib = f"{instrument}/raw/all", f"{instrument}/calib"
    repo.register_collection(calib, "CALIBRATION")
    lap("ingest")
    cp_report = run_pipeline(repo, CP_YAML, inputs=[raw, calib], output="cp/all")
    assert cp_report.ok, cp_report.summary()
    certify_calibrations(repo, "cp/all", calib)
    lap("cp")
    isr_report = run_pipeline(repo, ISR_YAML, inputs=[raw, calib], output="isr/science")
    assert isr_report.ok, isr_report.summary()
    lap("isr")
    run = CameraRun(instrument, root, repo, sim, sim.detectors[0], sim.visits[0], cp_report, isr_report,
                    timings)
    log.info("%s %s: %s (total %.1f s)", instrument, run.detector.name,
             ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()), sum(timings.values()))
    return run


def truth_image(run: CameraRun) -> tuple[np.ndarray, np.ndarray]:
    """Expected post-ISR electrons, and the sources' part of them.

    Sky + sources times the mean of illumination x response: what dividing by a flat of mean 1
    leaves of the simulator's expected image (the science raw is that times illumination x
    response, with noise).
    """
    sim, det, visit = run.sim, run.detector, run.visit
    sig = sim.signatures(det)
    image, _, _ = sim.render(visit, det)
    sky = sky_electrons(visit, sim.config.optics, pixel_scale_arcsec(sim.instrument, det))
    norm = float(np.mean(sig.flat * sig.illumination))
    return (image + sky) * norm, image * norm


def calibration_noise(run: CameraRun) -> np.ndarray:
    """Per-amplifier variance (e-^2) that the combined bias and the dark add to a science pixel."""
    read2 = np.array([a.read_noise for a in run.detector.amplifiers]) ** 2
    bias = read2 / N_BIAS
    dark_frame = read2 + bias + run.sim.config.detector.dark_current * DARK_TIME
    return bias + dark_frame * (run.visit.exposure_time / DARK_TIME) ** 2

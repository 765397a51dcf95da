"""Benchmark of the survey simulator: one 4k x 4k LSSTCam CCD and one PachonTestCam visit.

Run by hand: ``.venv/bin/python benchmarks/bench_sim.py``.  Reports the time of each stage
for one LSSTCam science CCD (R22_S11, 4072 x 4000 pixels, every signature on) with the default
source densities (a few thousand stars and galaxies), and of a whole PachonTestCam visit.
"""

from __future__ import annotations

import time

import numpy as np

from pachon.sim.astrometry import pixel_scale_arcsec
from pachon.sim.config import SimConfig
from pachon.sim.engine import Simulator
from pachon.sim.scene import sky_electrons


def bench_lsstcam_ccd(seed: int = 1) -> dict[str, float]:
    """Seconds per stage for one LSSTCam CCD (signatures drawn once, as in a survey)."""
    config = SimConfig.from_dict(
        {"instrument": "LSSTCam", "detectors": [94], "survey": {"n_visits": 2, "bands": ["r"]}}
    )
    sim = Simulator(config, seed=seed)
    det = sim.detectors[0]
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    _ = sim.catalog
    times["sky catalogue"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sim.signatures(det)
    times["fixed signatures (once per CCD)"] = time.perf_counter() - t0
    sim.simulate_detector(sim.visits[0], det)  # warm-up (imports)
    visit = sim.visits[1]
    t0 = time.perf_counter()
    scene = sim.scene(visit)
    image, truth, _ = sim.render(visit, det, scene)
    times["render sources"] = time.perf_counter() - t0
    n_sources = int(np.sum(truth["on_detector"]))
    t0 = time.perf_counter()
    sig = sim.signatures(det)
    expected = (
        image + sky_electrons(visit, config.optics, pixel_scale_arcsec(sim.instrument, det))
    ) * sig.illumination
    sim.expose(expected, det, dark_time=visit.exposure_time, rng=np.random.default_rng(0))
    times["signatures + readout"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sim.simulate_detector(visit, det, scene)
    times["total per CCD visit"] = time.perf_counter() - t0
    times["sources on CCD"] = n_sources
    return times


def bench_testcam_visit(seed: int = 1) -> float:
    """Seconds to simulate all four detectors of one PachonTestCam visit (after warm-up)."""
    sim = Simulator(SimConfig(), seed=seed)
    for det in sim.detectors:
        sim.simulate_detector(sim.visits[0], det)
    t0 = time.perf_counter()
    scene = sim.scene(sim.visits[1])
    for det in sim.detectors:
        sim.simulate_detector(sim.visits[1], det, scene)
    return time.perf_counter() - t0


def main() -> None:
    """Print the measurements."""
    for name, value in bench_lsstcam_ccd().items():
        unit = "" if name == "sources on CCD" else " s"
        print(f"LSSTCam R22_S11: {name:34s} {value:8.2f}{unit}")
    print(f"PachonTestCam: whole visit (4 detectors)         {bench_testcam_visit():8.3f} s")


if __name__ == "__main__":
    main()

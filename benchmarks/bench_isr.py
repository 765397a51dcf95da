"""ISR of one LSSTCam CCD (R22_S11: 4004 x 4096, 16 amplifiers) on one core, against ccdproc.

Run by hand: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_isr.py``.  The raw comes
from the simulator (flat sky of 1000 e- plus the detector signatures); bias, dark and flat are
the simulator's signatures in the units ISR expects.  ccdproc (``pip install ccdproc``; not a
project dependency) does what it can on the same frame: overscan per amplifier (median of the
serial overscan, per row), trim, placement into the detector array, bias, dark (scaled by
exposure time), flat.  Both times are the best of ``REPEAT`` runs.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPEAT = 3


def _best(fn, repeat: int = REPEAT) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    from pachon.algorithms.isr import IsrCalibs, IsrConfig, run_isr
    from pachon.sim import SimConfig, Simulator

    t0 = time.perf_counter()
    cfg = SimConfig.from_dict({"instrument": "LSSTCam", "detectors": [94], "survey": {"n_visits": 1}})
    sim = Simulator(cfg, seed=3)
    det = sim.detectors[0]
    sig = sim.signatures(det)
    raws, _ = sim.expose(np.full(det.bbox.shape, 1000.0), det, dark_time=30.0,
                         rng=np.random.default_rng(1), cosmic_rays=False)
    bias = np.zeros(det.bbox.shape)
    dark = np.full(det.bbox.shape, cfg.detector.dark_current)
    flat = sig.flat * sig.illumination
    flat = flat / flat.mean()
    print(f"simulated {det.name} ({det.bbox.shape[1]}x{det.bbox.shape[0]}, {len(det.amplifiers)} amplifiers) "
          f"in {time.perf_counter() - t0:.1f} s")
    calibs = IsrCalibs(bias=bias, dark=dark, flat=flat)
    same = IsrConfig(do_crosstalk=False, do_linearity=False, do_brighter_fatter=False, do_defects=False,
                     do_interpolate=False, do_saturation=False)
    full = IsrConfig(do_crosstalk=False, do_linearity=False, do_brighter_fatter=False, do_defects=False)
    t_same = _best(lambda: run_isr(raws, det, calibs, same, exposure_time=30.0))
    t_full = _best(lambda: run_isr(raws, det, calibs, full, exposure_time=30.0))
    print(f"pachon ISR, ccdproc's steps (+gain, variance): {t_same:.2f} s")
    print(f"pachon ISR, + saturation flags and interpolation:  {t_full:.2f} s")
    try:
        import ccdproc
        from astropy import units as u
        from astropy.nddata import CCDData
    except ImportError:
        print("ccdproc is not installed (pip install ccdproc): no comparison")
        return

    def with_ccdproc() -> None:
        out = np.empty(det.bbox.shape)
        for amp, raw in zip(det.amplifiers, raws, strict=True):
            os_box, data_box = amp.raw_serial_overscan_bbox, amp.raw_data_bbox
            h = data_box.height  # the rows of the data section (the parallel overscan is not used)
            rows = raw[data_box.y0:data_box.y0 + h].astype(np.float64)
            ccd = CCDData(rows, unit=u.adu)
            os_sec = f"[{os_box.x0 + 1}:{os_box.x0 + os_box.width},1:{h}]"
            data_sec = f"[{data_box.x0 + 1}:{data_box.x0 + data_box.width},1:{h}]"
            ccd = ccdproc.subtract_overscan(ccd, fits_section=os_sec, median=True, overscan_axis=1)
            ccd = ccdproc.trim_image(ccd, fits_section=data_sec)
            ccd = ccdproc.gain_correct(ccd, amp.gain * u.electron / u.adu)
            out[amp.bbox.slices()] = ccd.data
        ccd = CCDData(out, unit=u.electron)
        ccd = ccdproc.subtract_bias(ccd, CCDData(bias, unit=u.electron))
        ccd = ccdproc.subtract_dark(ccd, CCDData(dark, unit=u.electron), dark_exposure=1 * u.s,
                                    data_exposure=30 * u.s, scale=True)
        ccdproc.flat_correct(ccd, CCDData(flat, unit=u.dimensionless_unscaled))

    t_ccd = _best(with_ccdproc)
    print(f"ccdproc {ccdproc.__version__} (overscan, trim, gain, bias, dark, flat): {t_ccd:.2f} s")
    print(f"ratio pachon / ccdproc (same steps): {t_same / t_ccd:.2f}; with saturation + interpolation: "
          f"{t_full / t_ccd:.2f}")


if __name__ == "__main__":
    main()

"""Difference imaging side by side: Pachón AL, Pachón ZOGY, sfft (and properimage if importable).

Usage::

    .venv/bin/python benchmarks/bench_diffim.py [--size 4096] [--threads 2] \\
        [--skip-sim] [--skip-decam] [--timeout 900]

Run it under ``taskset -c 0`` with ``--threads 1`` for one-core figures.

Pairs: a simulated ``size x size`` pair (:func:`pachon.algorithms.diffim.simulate.make_pair`,
with injected transients of known position) and the real DECam pair of
``shared/data/diffim/decam-sfft`` (science ``DEC-OBS04a``, template = coadd of the five
``DEC-OBS18`` references).
For each method: wall time per pair; residual noise = robust std of the difference over
source-free pixels (no star within 4 PSF sigma; 1.48 MAD) divided by
``sqrt(var_science + var_template)`` (the same yardstick for every method; a PSF-matched
difference that convolves the template lies a little below 1, a decorrelated one near 1);
transient recovery = injected transients found within 2 px by the same detector
(:func:`~pachon.algorithms.diffim.detect.detect_dia_sources` at 5 sigma on a matched-filter
score with the science PSF) run on every method's difference.  Ratios are printed against
Pachón AL.  sfft runs its Crowded flavour (SExtractor masking) with the Numpy backend.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pachon.algorithms.diffim.detect import detect_dia_sources, score_image
from pachon.algorithms.diffim.simulate import PairSpec, make_pair
from pachon.algorithms.diffim.subtract import DiffimConfig, subtract_images
from pachon.core.exposure import Exposure

__all__: list[str] = []

DECAM = Path(__file__).resolve().parents[2] / "shared" / "data" / "diffim" / "decam-sfft" / "input_data"


def _source_free(science: Exposure, stars: np.ndarray | None) -> np.ndarray:
    h, w = science.image.shape
    free = np.ones((h, w), bool)
    m = 40
    free[:m] = free[-m:] = False
    free[:, :m] = free[:, -m:] = False
    if stars is not None and len(stars):
        from scipy import ndimage

        hit = np.zeros((h, w), bool)
        ix = np.clip(np.rint(stars[:, 0]).astype(int), 0, w - 1)
        iy = np.clip(np.rint(stars[:, 1]).astype(int), 0, h - 1)
        hit[iy, ix] = True
        free &= ~ndimage.binary_dilation(hit, iterations=10)
    return free


def _noise(diff: np.ndarray, science: Exposure, template: Exposure, free: np.ndarray) -> float:
    z = diff / np.sqrt(science.variance + template.variance)
    z = z[free & np.isfinite(z)]
    return float(1.4826 * np.median(np.abs(z - np.median(z))))


def _recovery(diff: np.ndarray, science: Exposure, free: np.ndarray, truth: np.ndarray | None) -> str:
    if truth is None:
        return "-"
    var = np.full(diff.shape, float(np.nanvar(diff[free])), np.float32)
    exp = Exposure(np.nan_to_num(diff).astype(np.float32), variance=var, psf=science.psf)
    det = detect_dia_sources(exp, score_image(exp), threshold=5.0)
    d = np.hypot(det.x[:, None] - truth[None, :, 0], det.y[:, None] - truth[None, :, 1])
    found = int((d.min(axis=0) < 2.0).sum()) if len(det) else 0
    return f"{found}/{len(truth)}"


def _pachon(science: Exposure, template: Exposure, algorithm: str) -> np.ndarray:
    return subtract_images(science, template, DiffimConfig(algorithm=algorithm)).difference.image


def _sfft(science: Exposure, template: Exposure, threads: int) -> np.ndarray:
    from astropy.io import fits
    from sfft.EasyCrowdedPacket import Easy_CrowdedPacket

    if not hasattr(np, "in1d"):  # sfft 1.7.3 calls np.in1d, removed in numpy 2.4: same as np.isin on 1-D
        np.in1d = lambda a, b, **kw: np.isin(np.ravel(a), b, **kw)  # type: ignore[attr-defined]

    with tempfile.TemporaryDirectory() as tmp:
        import os
        import shutil

        # sfft calls SExtractor as `sex`; Debian installs it as `source-extractor`
        found = shutil.which("sex") or shutil.which("source-extractor")
        if found and not shutil.which("sex"):
            os.symlink(found, Path(tmp) / "sex")
            os.environ["PATH"] = f"{tmp}{os.pathsep}{os.environ['PATH']}"
        ref, sci = Path(tmp) / "ref.fits", Path(tmp) / "sci.fits"
        for path, exp in ((ref, template), (sci, science)):
            hdr = fits.Header()
            hdr["GAIN"], hdr["SATURATE"] = 1.0, 1e9
            fits.PrimaryHDU(exp.image.astype(np.float64), hdr).writeto(path)
        out = Easy_CrowdedPacket.ECP(str(ref), str(sci), BACKEND_4SUBTRACT="Numpy",
                                     NUM_CPU_THREADS_4SUBTRACT=threads, VERBOSE_LEVEL=0)
    return np.asarray(out[0], float)


def _alarm(signum: int, frame: object) -> None:
    raise TimeoutError("over the --timeout limit")


def _run(name: str, science: Exposure, template: Exposure, stars: np.ndarray | None,
         transients: np.ndarray | None, threads: int, timeout: int) -> None:
    import signal

    free = _source_free(science, stars)
    methods = {"pachon_al": lambda: _pachon(science, template, "al"),
               "pachon_zogy": lambda: _pachon(science, template, "zogy"),
               "sfft_1.7.3": lambda: _sfft(science, template, threads)}
    rows = []
    signal.signal(signal.SIGALRM, _alarm)
    for label, fn in methods.items():
        t0 = time.perf_counter()
        signal.alarm(timeout)
        try:
            diff = fn()
        except Exception as exc:  # noqa: BLE001 - a peer failing is a result
            dt = time.perf_counter() - t0
            print(f"{name}: {label} failed after {dt:.0f} s: {type(exc).__name__}: {exc}", flush=True)
            continue
        finally:
            signal.alarm(0)
        dt = time.perf_counter() - t0
        noise = _noise(diff, science, template, free)
        rows.append((label, dt, noise, _recovery(diff, science, free, transients)))
        print(f"{name}: {label} done in {dt:.1f} s", flush=True)
    base = rows[0][1] if rows and rows[0][0] == "pachon_al" else None
    print(f"\n== {name} ({science.image.shape[1]}x{science.image.shape[0]}) ==")
    print(f"{'method':<14} {'time s':>8} {'t/AL':>6} {'noise':>7} {'recovered':>10}")
    for label, dt, noise, rec in rows:
        ratio = f"{dt / base:.2f}" if base else "-"
        print(f"{label:<14} {dt:8.1f} {ratio:>6} {noise:7.3f} {rec:>10}")
    try:
        import properimage  # noqa: F401
    except ImportError as exc:
        print(f"properimage: not importable ({type(exc).__name__}: {exc}); not measured")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-sim", action="store_true")
    p.add_argument("--skip-decam", action="store_true")
    p.add_argument("--timeout", type=int, default=900, help="seconds allowed per method and pair")
    a = p.parse_args(argv)
    if not a.skip_decam and DECAM.is_dir():
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "algorithms" / "diffim"))
        from decam_helpers import load_frame

        from pachon.algorithms.coadd import coadd_exposures

        sci = load_frame(DECAM / "DEC-OBS04a.mini.fits")
        tpl = coadd_exposures([load_frame(DECAM / f"DEC-OBS18{c}.mini.fits") for c in "abcde"])
        _run("decam", sci, tpl, None, None, a.threads, a.timeout)
    if not a.skip_sim:
        n = a.size
        scale = (n / 512) ** 2
        spec = PairSpec(shape=(n, n), n_stars=int(300 * scale),
                        transient_flux=np.full(int(20 * scale), 3000.0))
        sci, tpl, truth = make_pair(spec, seed=1)
        stars = np.stack([truth["stars"]["x"], truth["stars"]["y"]], 1)
        tr = np.stack([truth["transients"]["x"], truth["transients"]["y"]], 1)
        _run(f"simulated {n}", sci, tpl, np.vstack([stars, tr]), tr, a.threads, a.timeout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

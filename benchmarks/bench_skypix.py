"""Benchmark: sky pixel indexing and envelopes, Pachón (astropy-healpix) against lsst-sphgeom.

Run by hand, not by the test suite::

    .venv/bin/python benchmarks/bench_skypix.py [--level 7] [--points 1000000] [--regions 10000]

Peers measured in the same run (each skipped with a message when not installed; lsst-sphgeom
is not a Pachón dependency: ``pip install lsst-sphgeom`` into the virtualenv to compare):

- indexing N points: ``SkyPixelization.index`` (astropy-healpix, vectorized); ``hpgeom``
  (the vectorized HEALPix engine behind ``lsst.sphgeom.HealpixPixelization``); and
  ``lsst.sphgeom.HtmPixelization.index`` (the Rubin butler's default pixelization; one Python
  call per point, timed on N/10 points and scaled);
- envelopes of M detector-sized (0.2 deg, randomly rotated) polygons: ``SkyPixelization.envelope``
  against ``lsst.sphgeom.HealpixPixelization.envelope`` at the same level;
- envelope tightness: pixels returned x pixel area / polygon area (median and 90th percentile).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pachon.core.skypix import SkyPixelization
from pachon.core.sphgeom import ConvexPolygon


def _detector_polygons(rng: np.random.Generator, n: int, size: float = 0.2) -> list[tuple]:
    """Random squares of side ``size`` degrees anywhere on the sky (vertex RA/Dec arrays)."""
    ra0 = rng.uniform(0, 360, n)
    dec0 = np.degrees(np.arcsin(rng.uniform(-0.99, 0.99, n)))
    rot = rng.uniform(0, np.pi / 2, n)
    half = np.tan(np.radians(size / 2))
    out = []
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float) * half
    for a0, d0, r in zip(np.radians(ra0), np.radians(dec0), rot, strict=True):
        rm = np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])
        xi, eta = (corners @ rm.T).T
        c = np.array([np.cos(d0) * np.cos(a0), np.cos(d0) * np.sin(a0), np.sin(d0)])
        east = np.array([-np.sin(a0), np.cos(a0), 0.0])
        north = np.cross(c, east)
        v = c + xi[:, None] * east + eta[:, None] * north
        ra = np.degrees(np.arctan2(v[:, 1], v[:, 0])) % 360
        dec = np.degrees(np.arcsin(v[:, 2] / np.linalg.norm(v, axis=1)))
        out.append((ra, dec))
    return out


def _timed(fn, *args):
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def main() -> None:
    """Run the benchmark and print timings and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", type=int, default=7)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--regions", type=int, default=10_000)
    args = parser.parse_args()
    rng = np.random.default_rng(42)
    ra = rng.uniform(0, 360, args.points)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, args.points)))
    ours = SkyPixelization(args.level)
    ours.index(ra[:10], dec[:10])  # warm up imports

    print(f"== indexing {args.points:,} points at level {args.level} ==")
    t_ours, idx = _timed(ours.index, ra, dec)
    print(f"pachon (astropy-healpix)      {t_ours:8.3f} s")
    try:
        import hpgeom

        t_hpg, idx2 = _timed(lambda: hpgeom.angle_to_pixel(ours.nside, ra, dec, nest=True))
        assert np.array_equal(idx, idx2), "hpgeom and astropy-healpix disagree"
        print(f"hpgeom (sphgeom's HEALPix)    {t_hpg:8.3f} s   ratio ours/hpgeom = {t_ours / t_hpg:.2f}")
    except ImportError:
        print("hpgeom not installed: skipped")
    try:
        import lsst.sphgeom as sg
    except ImportError:
        sg = None
        print("lsst-sphgeom not installed (pip install lsst-sphgeom to compare): peers skipped")
    if sg is not None:
        htm = sg.HtmPixelization(args.level)
        n = args.points // 10

        def htm_index() -> list[int]:
            return [
                htm.index(sg.UnitVector3d(sg.LonLat.fromDegrees(a, d)))
                for a, d in zip(ra[:n], dec[:n], strict=True)
            ]

        t_htm, _ = _timed(htm_index)
        t_htm *= args.points / n
        print(
            f"sphgeom HTM, per-point calls  {t_htm:8.3f} s   (scaled from {n:,}) ratio = {t_ours / t_htm:.3f}"
        )

    print(f"\n== envelopes of {args.regions:,} detector-sized (0.2 deg) polygons ==")
    polys = _detector_polygons(rng, args.regions)
    regions = [ConvexPolygon.from_corners(r, d) for r, d in polys]
    areas = np.array([p.area() for p in regions])
    t_ours, envs = _timed(lambda: [ours.envelope(p) for p in regions])
    tight_ours = np.array([e.size for e in envs]) * ours.pixel_area / areas
    print(f"pachon envelope               {t_ours:8.3f} s")
    print(
        f"  tightness (pixels*area/region): median {np.median(tight_ours):.2f}, "
        f"p90 {np.percentile(tight_ours, 90):.2f}, "
        f"pixels per region median {np.median([e.size for e in envs])}"
    )
    if sg is not None:
        hp = sg.HealpixPixelization(args.level)
        sgpolys = [
            sg.ConvexPolygon(
                [
                    sg.UnitVector3d(v)
                    for v in (sg.LonLat.fromDegrees(a, d) for a, d in zip(r, d_, strict=True))
                ]
            )
            for r, d_ in polys
        ]
        t_sg, envs_sg = _timed(lambda: [hp.envelope(p) for p in sgpolys])
        counts = np.array([sum(b - a for a, b in e) for e in envs_sg])
        tight_sg = counts * ours.pixel_area / areas
        print(f"sphgeom HEALPix envelope      {t_sg:8.3f} s   ratio ours/sphgeom = {t_ours / t_sg:.2f}")
        print(
            f"  tightness: median {np.median(tight_sg):.2f}, p90 {np.percentile(tight_sg, 90):.2f}, "
            f"pixels per region median {np.median(counts)}"
        )
        missing = sum(
            np.setdiff1d(np.concatenate([np.arange(a, b) for a, b in e]), o).size
            for e, o in zip(envs_sg, envs, strict=True)
        )
        print(f"  pixels in sphgeom's envelope but not ours: {missing}")
        htm = sg.HtmPixelization(args.level)
        t_htm, envs_htm = _timed(lambda: [htm.envelope(p) for p in sgpolys])
        counts = np.array([sum(b - a for a, b in e) for e in envs_htm])
        tight_htm = counts * (4 * np.pi / (8 * 4**args.level)) / areas
        print(f"sphgeom HTM envelope          {t_htm:8.3f} s   ratio ours/htm = {t_ours / t_htm:.2f}")
        print(f"  tightness: median {np.median(tight_htm):.2f}, p90 {np.percentile(tight_htm, 90):.2f}")


if __name__ == "__main__":
    main()

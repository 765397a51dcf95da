"""Simulated real and bogus DIA detections for the reliability classifier.

Each pair (:func:`pachon.algorithms.diffim.simulate.make_pair`) holds

* real sources: transients (S/N 5-40 in the difference), variable stars and a trail;
* bogus sources: stars misaligned by 0.3-1 pixel (dipole residuals), stars whose science PSF
  is wider than the PSF model (ring-shaped residuals of a misconvolution), cosmic rays (single
  hot pixels) and bad-column segments, all unmasked.

It is differenced (Alard–Lupton), detected at 5 sigma and measured; a detection within
3 pixels of a real source (or on a trail) is labelled 1, any other detection 0 (bogus
injections and spurious subtraction residuals alike).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from pachon.algorithms.dia.reliability import reliability_features

__all__ = ["label_detections", "simulate_detections"]

_log = logging.getLogger(__name__)


def _inject_bogus(
    science: object, rng: np.random.Generator, stars: dict, sigma: float, sky: float, skip: int
) -> dict:
    from pachon.algorithms.diffim.simulate import draw_points

    img = science.image  # type: ignore[attr-defined]
    h, w = img.shape
    bright = skip + np.flatnonzero(
        (stars["flux"][skip:] > 2e4) & (stars["x"][skip:] > 30) & (stars["x"][skip:] < w - 30)
    )
    bright = bright[(stars["y"][bright] > 30) & (stars["y"][bright] < h - 30)]
    pick = rng.choice(bright, size=min(6, len(bright)), replace=False)
    x, y, f = stars["x"][pick], stars["y"][pick], stars["flux"][pick]
    frac = rng.uniform(0.3, 1.0, len(pick))  # that part of the flux has a 1.3x wider PSF
    wide = np.zeros_like(img, dtype=float)
    draw_points(wide, x, y, f * frac, 1.3 * sigma)
    draw_points(wide, x, y, -f * frac, sigma)
    img += wide.astype(img.dtype)
    n_col = 3
    cx = rng.integers(30, w - 30, n_col)
    cy = rng.integers(30, h - 90, n_col)
    length = rng.integers(15, 60, n_col)
    for x0, y0, n in zip(cx, cy, length, strict=True):
        img[y0 : y0 + n, x0] += rng.uniform(4, 15) * math.sqrt(sky)
    return {"x": np.concatenate([x, cx]), "y": np.concatenate([y, cy + 0.5 * length])}


def label_detections(
    x: np.ndarray, y: np.ndarray, truth: dict[str, dict[str, np.ndarray]], radius: float = 3.0
) -> np.ndarray:
    """1 for a detection within ``radius`` of a transient or variable or on a trail, else 0."""
    real = np.zeros(len(x), bool)
    for kind in ("transients", "variables"):
        if kind in truth:
            d = np.hypot(x[:, None] - truth[kind]["x"][None], y[:, None] - truth[kind]["y"][None])
            real |= (d < radius).any(axis=1)
    if "trails" in truth:
        tr = truth["trails"]
        d = np.hypot(x[:, None] - tr["x"][None], y[:, None] - tr["y"][None])
        real |= (d < 0.5 * tr["length"][None] + radius).any(axis=1)
    return real.astype(int)


def simulate_detections(
    seeds: Sequence[int], shape: tuple[int, int] = (512, 512)
) -> tuple[np.ndarray, np.ndarray]:
    """Features (:func:`reliability_features`) and labels of the detections on simulated pairs."""
    from pachon.algorithms.dia.measure import measure_dia_sources
    from pachon.algorithms.diffim.detect import detect_dia_sources
    from pachon.algorithms.diffim.simulate import PairSpec, double_gaussian_psf, make_pair
    from pachon.algorithms.diffim.subtract import subtract_images

    feats, labels = [], []
    for seed in seeds:
        rng = np.random.default_rng(10_000 + seed)
        spec = PairSpec(shape=shape, n_stars=int(300 * shape[0] * shape[1] / 512**2))
        k = double_gaussian_psf(spec.sigma_science).kernel_image(0, 0)
        unit_snr = math.sqrt((k**2).sum() / (spec.sky * (1 + 1 / spec.template_depth)))
        spec.transient_flux = rng.uniform(5.0, 40.0, 25) / unit_snr
        spec.n_variables = 5
        spec.n_dipoles = 6
        spec.dipole_shift = float(rng.uniform(0.3, 1.0))
        spec.n_cosmic_rays = 10
        spec.trails = [(float(rng.uniform(15, 40)), float(rng.uniform(0, 180)), 3e4)]
        sci, tpl, truth = make_pair(spec, seed=seed)
        # the first stars are the variables and the misaligned ones: leave them alone
        _inject_bogus(sci, rng, truth["stars"], spec.sigma_science, spec.sky, 11)
        res = subtract_images(sci, tpl)
        det = detect_dia_sources(res.difference, res.score, threshold=5.0)
        tab = measure_dia_sources(res.difference, res.score, det, science=sci, template=tpl)
        feats.append(reliability_features(tab))
        labels.append(label_detections(np.asarray(det.x), np.asarray(det.y), truth))
        _log.info("seed %d: %d detections, %d real", seed, len(det), int(labels[-1].sum()))
    return np.concatenate(feats), np.concatenate(labels)

"""Detection: completeness and purity on injected point sources; deblending of a close pair."""

from __future__ import annotations

import numpy as np

from pachon.algorithms.detection import detect_sources

SIGMA = 1.5


def _gauss(shape, xs, ys, fluxes, sigma=SIGMA):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    out = np.zeros(shape)
    for x, y, f in zip(xs, ys, fluxes, strict=False):
        out += f / (2 * np.pi * sigma**2) * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / sigma**2)
    return out


def test_completeness_and_purity_of_bright_point_sources():
    rng = np.random.default_rng(4)
    shape, noise = (200, 200), 10.0
    g = np.stack(np.meshgrid(np.arange(20, 190, 25.0), np.arange(20, 190, 25.0)), -1).reshape(-1, 2)
    xs, ys = g[:, 0] + rng.uniform(-3, 3, len(g)), g[:, 1] + rng.uniform(-3, 3, len(g))
    # flux giving matched-filter S/N ~ 10: f / (noise * sqrt(4 pi sigma^2))
    flux = np.full(len(xs), 10 * noise * np.sqrt(4 * np.pi) * SIGMA)
    image = _gauss(shape, xs, ys, flux) + rng.normal(0, noise, shape)
    det = detect_sources(image, np.full(shape, noise**2), SIGMA, threshold=5.0)
    d = np.hypot(det.x[:, None] - xs[None], det.y[:, None] - ys[None])
    assert (d.min(axis=0) < 2.0).mean() == 1.0  # every injected source found (peak pixel, S/N 10)
    assert len(det) == len(xs) and (d.min(axis=1) < 2.0).all()  # and nothing else
    noise_only = detect_sources(rng.normal(0, noise, shape), np.full(shape, noise**2), SIGMA, threshold=5.0)
    assert len(noise_only) == 0


def test_close_pair_is_deblended_into_two_children():
    shape = (60, 60)
    noise = np.random.default_rng(1).normal(0, 5, shape)
    image = _gauss(shape, [27.0, 33.0], [30.0, 30.0], [5e4, 3e4]) + noise
    det = detect_sources(image, np.full(shape, 25.0), SIGMA, threshold=5.0)
    parents = np.flatnonzero(det.n_child > 0)
    assert len(parents) == 1 and det.n_child[parents[0]] == 2
    kids = np.flatnonzero(det.parent == parents[0])
    xs = np.sort(det.x[kids])
    assert np.allclose(xs, [27.0, 33.0], atol=0.6)

"""Cosmic-ray detection: injected sharp hits found, stars left alone."""

from __future__ import annotations

import numpy as np

from pachon.algorithms.cosmic_rays import find_cosmic_rays


def test_cosmic_rays_found_and_stars_kept():
    rng = np.random.default_rng(3)
    shape, sky, rn = (128, 128), 200.0, 5.0
    yy, xx = np.mgrid[0:128, 0:128]
    stars = np.zeros(shape)
    sxy = rng.uniform(10, 118, (8, 2))
    for x, y in sxy:
        stars += 3e4 / (2 * np.pi * 2.25) * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / 2.25)
    image = sky + stars + rng.normal(0, np.sqrt(sky + stars + rn**2))
    cr = rng.integers(5, 123, (15, 2))
    for y, x in cr:
        image[y, x] += rng.uniform(1000, 5000)
    mask, cleaned = find_cosmic_rays(image, read_noise=rn, sky=sky, psf_fwhm=2.355 * 1.5)
    assert mask[cr[:, 0], cr[:, 1]].mean() >= 0.9
    near_star = np.hypot(xx[..., None] - sxy[:, 0], yy[..., None] - sxy[:, 1]).min(-1) < 2
    assert mask[near_star].sum() <= 2  # star cores are not cosmic rays
    assert np.all(np.abs(cleaned[cr[:, 0], cr[:, 1]] - sky) < 200)

"""Background estimation: a known smooth sky recovered within noise with sources masked."""

from __future__ import annotations

import numpy as np

from pachon.algorithms.background import estimate_background


def _scene(seed: int = 0):
    rng = np.random.default_rng(seed)
    ny, nx = 256, 320
    yy, xx = np.mgrid[0:ny, 0:nx]
    sky = 500.0 + 0.05 * xx - 0.03 * yy + 2e-4 * (xx - 160.0) ** 2
    stars = np.zeros((ny, nx))
    xs, ys = rng.uniform(5, nx - 5, 60), rng.uniform(5, ny - 5, 60)
    for x, y in zip(xs, ys, strict=False):  # 60 bright sources, built once
        stars += 2e4 / (2 * np.pi * 4) * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / 4)
    image = sky + stars + rng.normal(0, 10.0, (ny, nx))
    return image, sky, stars


def test_smooth_background_recovered_with_sources_masked():
    image, sky, stars = _scene()
    mask = stars > 3.0  # source pixels down to 0.3 sigma
    bkg = estimate_background(image, mask=mask, mesh_size=32, statistic="mean")
    resid = bkg.image() - sky
    # mesh noise 10/32 = 0.3 e; interpolation of the quadratic term adds a little
    assert abs(float(resid.mean())) < 0.15
    assert float(resid.std()) < 0.6
    assert abs(bkg.median_rms - 10.0) < 0.3


def test_unmasked_sources_bias_the_mean_more_than_the_mode():
    image, sky, stars = _scene(1)
    mean = estimate_background(image, mesh_size=32, statistic="mean").image() - sky
    mode = estimate_background(image, mesh_size=32, statistic="mode").image() - sky
    assert abs(float(np.median(mode))) < abs(float(np.median(mean))) + 0.05


def test_masked_meshes_are_filled_from_neighbours():
    image, sky, _ = _scene(2)
    mask = np.zeros(image.shape, bool)
    mask[:64, :64] = True  # four whole meshes with no good pixel
    bkg = estimate_background(image, mask=mask, mesh_size=32, filter_size=1)
    assert np.all(np.isfinite(bkg.values))
    assert float(np.abs(bkg.image() - sky)[:64, :64].mean()) < 3.0

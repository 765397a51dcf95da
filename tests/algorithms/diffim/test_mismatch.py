"""Template-mismatch fraction (diffim.mismatch) on simulated star residuals with a known answer."""

from __future__ import annotations

import numpy as np

from pachon.algorithms.diffim.mismatch import template_mismatch
from pachon.core.psf import GaussianPsf


def _scene(residual: np.ndarray, noise: float, seed: int = 1):
    rng = np.random.default_rng(seed)
    n, size = len(residual), 600
    psf = GaussianPsf(2.0).kernel_image(0, 0)
    h = psf.shape[0] // 2
    xs = 30 + (np.arange(n) % 18) * 30
    ys = 30 + (np.arange(n) // 18) * 30
    flux = 10 ** rng.uniform(4.5, 5.5, n)
    tmpl = np.zeros((size, size))
    diff = np.zeros((size, size))
    for x, y, f, r in zip(xs, ys, flux, residual, strict=True):
        tmpl[y - h : y + h + 1, x - h : x + h + 1] += f * psf
        diff[y - h : y + h + 1, x - h : x + h + 1] += r * f * psf
    var = np.full((size, size), noise**2)
    tmpl += rng.normal(0, noise, tmpl.shape)
    diff += rng.normal(0, noise, diff.shape)
    return diff, var, psf, tmpl, xs, ys


def test_recovers_bias_and_scatter_and_ignores_variables() -> None:
    rng = np.random.default_rng(0)
    r = 0.012 + 0.008 * rng.standard_normal(300)
    r[::10] = rng.choice([-1, 1], 30) * rng.uniform(0.1, 0.5, 30)  # a tenth are variables
    diff, var, psf, tmpl, xs, ys = _scene(r, noise=5.0)
    est = template_mismatch(diff, var, psf, tmpl, var, psf, xs, ys, 1.0)
    true = np.hypot(0.012, 0.008)  # RMS about zero of the constant stars' residuals
    assert 0.8 * true < est.fraction < 1.35 * true, est.fraction


def test_zero_when_noise_explains_the_residuals() -> None:
    diff, var, psf, tmpl, xs, ys = _scene(np.zeros(200), noise=50.0)
    est = template_mismatch(diff, var, psf, tmpl, var, psf, xs, ys, 1.0)
    assert est.fraction < 0.003, est.fraction
    assert len(est.ratios) == 200

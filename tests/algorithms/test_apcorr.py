"""Aperture correction: a known ratio (and its gradient) recovered, outliers rejected."""

from __future__ import annotations

import numpy as np
import pytest

from pachon.algorithms.apcorr import ApertureCorrectionError, fit_aperture_correction


def test_known_constant_ratio_with_outliers():
    rng = np.random.default_rng(0)
    n = 60
    x, y = rng.uniform(0, 500, n), rng.uniform(0, 500, n)
    psf = rng.uniform(1e4, 1e6, n)
    err = np.sqrt(psf + 100 * 700)
    ap = 0.987 * psf + rng.normal(0, err)
    ap[:4] *= 1.05  # neighbours' light in four apertures
    ac = fit_aperture_correction(x, y, psf, ap, err)
    assert abs(ac.coefficients[0] - 0.987) < 3 * ac.error
    assert ac.error < 0.001
    assert ac.n_stars <= n - 4
    f, e, c = ac.apply(x, y, psf, np.sqrt(psf))
    assert np.allclose(c, ac.coefficients[0])


def test_linear_gradient_recovered():
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 1000, 200), rng.uniform(0, 1000, 200)
    psf = np.full(200, 1e6)
    ap = psf * (0.98 + 1e-5 * x) * (1 + rng.normal(0, 1e-3, 200))
    ac = fit_aperture_correction(x, y, psf, ap, np.full(200, 1e3), order=1)
    ends = ac.evaluate(np.array([0.0, 1000.0]), np.array([500.0, 500.0]))
    assert np.allclose(ends, [0.98, 0.99], atol=1e-3)


def test_too_few_stars_raise():
    with pytest.raises(ApertureCorrectionError, match="usable star"):
        fit_aperture_correction([1.0], [1.0], [1.0], [1.0], [0.1])

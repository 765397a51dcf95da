"""Brighter-fatter kernel from flat-pair covariances against the simulator's truth kernel."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from pachon.algorithms.cp.bf_kernel import kernel_from_area_coefficients, kernel_sum_weights, laplacian
from pachon.algorithms.cp.covariances import fit_area_coefficients, linearize_covariances, pair_covariances
from pachon.algorithms.isr.brighter_fatter import apply_brighter_fatter
from pachon.sim.charge_bf import apply_charge_bf, area_coefficients, charge_bf_kernel

log = logging.getLogger(__name__)
KERNEL = charge_bf_kernel(4e-6, 0.6)


def test_poisson_solution_inverts_the_laplacian():
    a = area_coefficients(KERNEL)  # 7 x 7: the kernel (5 x 5) grown by one pixel
    n = a.shape[0] // 2
    k = kernel_from_area_coefficients(a[n:, n:])
    # zero beyond the grid: the 5 x 5 truth is recovered inside a 7 x 7 kernel
    assert np.allclose(k[1:-1, 1:-1], KERNEL, rtol=0, atol=1e-12 * KERNEL.max() / 1e-6)
    assert np.allclose(laplacian(k), a / 2.0, atol=1e-18)
    w = kernel_sum_weights(n)
    assert float(np.sum(w * a[n:, n:])) == pytest.approx(k.sum(), rel=1e-9)


def test_sim_operator_matches_isr_operator_and_conserves_charge():
    rng = np.random.default_rng(3)
    img = rng.poisson(5000.0, (40, 50)).astype(float)
    sim = apply_charge_bf(img, KERNEL)
    isr = apply_brighter_fatter(img, KERNEL)
    assert sim.sum() == pytest.approx(img.sum(), rel=1e-12)
    assert np.allclose(sim, isr, atol=1e-6)


def test_pair_covariances_of_a_known_correlated_field():
    # x = n + c (n shifted one column): C_00 = (1 + c^2) s^2, C_01 = c s^2, zero at other lags
    rng = np.random.default_rng(5)
    s2, c = 400.0, 0.3
    pairs = []
    for _ in range(2):
        n = rng.normal(0, np.sqrt(s2), (300, 301))
        pairs.append(1e4 + n[:, 1:] + c * n[:, :-1])
    pc = pair_covariances(*pairs, 3)
    err = (1 + c * c) * s2 / np.sqrt(pc.n_pixels)
    assert pc.cov[0, 0] == pytest.approx((1 + c * c) * s2, abs=4 * np.sqrt(2) * err)
    assert pc.cov[0, 1] == pytest.approx(c * s2, abs=4 * err)
    assert np.all(np.abs(pc.cov[1:, :]) < 4 * err) and abs(pc.cov[0, 2]) < 4 * err


def test_area_coefficients_and_kernel_from_simulated_flats():
    """Flats of 200 x 200 px with BF on their shot noise: a_ij and the kernel within errors of truth."""
    rng = np.random.default_rng(7)
    levels = np.repeat([1000.0, 3000.0, 6000.0, 10000.0, 15000.0, 20000.0], 3)
    means, covs, npix = [], [], []
    c2 = -2e-7
    for mu in levels:
        f1, f2 = (apply_charge_bf(rng.poisson(mu, (200, 200)).astype(float), KERNEL) for _ in range(2))
        f1, f2 = f1 + c2 * f1**2, f2 + c2 * f2**2  # a non-linearity, undone below
        pc = pair_covariances(f1, f2, 3)
        m, c = linearize_covariances(np.array([pc.mean]), pc.cov[None], c2)
        means.append(m[0])
        covs.append(c[0])
        npix.append(pc.n_pixels)
    fit = fit_area_coefficients(means, covs, npix, cubic=False)
    truth = area_coefficients(KERNEL)
    n = truth.shape[0] // 2
    pulls = (fit.a - truth[n:, n:]) / fit.a_err
    log.info("a_00 %.3g +- %.2g (truth %.3g), a_01 %.3g +- %.2g (truth %.3g), a_10 %.3g +- %.2g; "
             "chi2/dof %.2f",
             fit.a[0, 0], fit.a_err[0, 0], truth[n, n], fit.a[0, 1], fit.a_err[0, 1], truth[n, n + 1],
             fit.a[1, 0], fit.a_err[1, 0], fit.chi2_dof)
    assert np.all(np.abs(pulls) < 4) and 0.5 < fit.chi2_dof < 2.0
    kernel = kernel_from_area_coefficients(fit.a[:3, :3], force_zero_sum=True)
    w = kernel_sum_weights(2)
    w = w - w[0, 0] * np.array([[1, 2, 2], [2, 4, 4], [2, 4, 4]])
    sum_err = float(np.sqrt(np.sum((w * fit.a_err[:3, :3]) ** 2)))
    log.info("kernel sum %.3g +- %.2g (truth %.3g), K_00 %.3g (truth %.3g)", kernel.sum(), sum_err,
             KERNEL.sum(), kernel[2, 2], KERNEL[2, 2])
    assert abs(kernel.sum() - KERNEL.sum()) < 3 * sum_err and sum_err < 0.3 * KERNEL.sum()

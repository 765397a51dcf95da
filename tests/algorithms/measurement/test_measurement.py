"""Measurement against known truth: centroids, adaptive moments vs GalSim HSM, fluxes, extendedness."""

from __future__ import annotations

import galsim
import numpy as np
import pytest

from pachon.algorithms.detection import detect_sources
from pachon.algorithms.measurement.measure import measure_sources
from pachon.algorithms.measurement.shapes import adaptive_moments, windowed_centroid
from pachon.core.exposure import Exposure
from pachon.core.psf import GaussianPsf

PSF_SIGMA = 1.8


def _stamp(obj, dx, dy, half=15):
    return obj.drawImage(nx=2 * half + 1, ny=2 * half + 1, scale=1.0, offset=(dx, dy)).array.astype(float)


def test_centroids_and_moments_match_truth_and_hsm():
    rng = np.random.default_rng(0)
    n = 20
    dx, dy = rng.uniform(-0.5, 0.5, n), rng.uniform(-0.5, 0.5, n)
    g1 = rng.uniform(-0.2, 0.2, n)
    objs = [galsim.Gaussian(sigma=2.5).shear(g1=g) for g in g1]
    cube = np.stack([_stamp(o, a, b) for o, a, b in zip(objs, dx, dy, strict=False)]) * 1e4
    cx, cy, ok = windowed_centroid(cube, 2.5)
    assert ok.all()
    assert np.allclose(cx, dx, atol=0.01) and np.allclose(cy, dy, atol=0.01)
    ixx, iyy, ixy, ok = adaptive_moments(cube, cx, cy, 2.5)
    hsm = [galsim.hsm.FindAdaptiveMom(galsim.Image(c, scale=1.0)) for c in cube]
    sig_hsm = np.array([h.moments_sigma for h in hsm])
    e1_hsm = np.array([h.observed_shape.e1 for h in hsm])
    assert np.allclose((ixx * iyy - ixy**2) ** 0.25, sig_hsm, rtol=0.01)
    assert np.allclose((ixx - iyy) / (ixx + iyy), e1_hsm, atol=0.005)


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(1)
    ny = nx = 240
    psf = galsim.Gaussian(sigma=PSF_SIGMA)
    image = galsim.Image(nx, ny, scale=1.0)
    truth = []
    for k in range(36):
        x, y = 20 + (k % 6) * 40 + rng.uniform(-2, 2), 20 + (k // 6) * 40 + rng.uniform(-2, 2)
        galaxy = k % 2 == 1
        obj = galsim.Convolve(galsim.Exponential(half_light_radius=3.0), psf) if galaxy else psf
        flux = 2e5
        stamp = obj.withFlux(flux).drawImage(nx=61, ny=61, scale=1.0, center=galsim.PositionD(x + 1, y + 1))
        b = stamp.bounds & image.bounds
        image[b] += stamp[b]
        truth.append((x, y, flux, galaxy))
    t = np.array(truth)
    var = image.array + 100.0
    data = image.array + rng.normal(0, np.sqrt(var))
    exp = Exposure(data.astype(np.float32), variance=var.astype(np.float32))
    exp.psf = GaussianPsf(float(np.sqrt(PSF_SIGMA**2 + 1 / 12)))  # the pixel-convolved PSF
    det = detect_sources(exp.image, exp.variance, PSF_SIGMA, threshold=5.0)
    return exp, det, measure_sources(exp, det), t


def test_positions_fluxes_and_extendedness(scene):
    exp, det, m, t = scene
    d = np.hypot(m["x"][:, None] - t[:, 0], m["y"][:, None] - t[:, 1])
    j = d.argmin(axis=1)
    prim = det.n_child == 0
    assert len(set(j[prim])) == len(t)
    star, gal = prim & (t[j, 3] == 0), prim & (t[j, 3] == 1)
    assert np.median(d[np.arange(len(j)), j][star]) < 0.03
    # PSF flux of stars (model exact here): unbiased within errors
    pull = (m["psf_instFlux"] - t[j, 2]) / m["psf_instFluxErr"]
    assert abs(np.mean(pull[star])) < 1.0 and np.std(pull[star]) < 2.0
    # big aperture holds nearly everything; Kron flux of galaxies within 10% (it misses wings)
    assert np.allclose(m["ap25_instFlux"][star] / t[j, 2][star], 1.0, atol=0.01)
    assert np.all(np.abs(m["kron_instFlux"][gal] / t[j, 2][gal] - 0.95) < 0.07)
    # extendedness separates the two
    assert np.all(m["sizeExtendedness"][gal] > 0.5) and np.all(m["sizeExtendedness"][star] < 0.5)

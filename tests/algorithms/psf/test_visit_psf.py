"""Full-visit PSF model on a simulated PachonTestCam visit: the optics' field variation recovered.

The simulator's PSF (``pachon.sim.psf.VisitPsf``) is a Kolmogorov atmosphere convolved with an
optical Gaussian whose size and tangential shear grow as r² over the focal plane.  Twelve stars
per detector are drawn with GalSim on the four detectors; the shapes of the noiseless PSF at
held-out positions are the truth.
"""

from __future__ import annotations

import numpy as np
import pytest

from pachon.algorithms.measurement.shapes import adaptive_moments
from pachon.algorithms.psf.fit import fit_pixel_psf
from pachon.algorithms.psf.visit_psf import VisitStars, fit_visit_psf

SIZE, SKY, FLUX = 25, 700.0, 3e5


def _moments(cube):
    z = np.zeros(len(cube))
    ixx, iyy, ixy, ok = adaptive_moments(cube, z, z, 1.7)
    assert ok.all()
    t = ixx + iyy
    return (ixx - iyy) / t, 2 * ixy / t, t


def _draw(gsobj, x, y, shape, scale):
    import galsim

    img = galsim.ImageD(shape[1], shape[0], scale=scale)
    stamp = gsobj.drawImage(
        nx=SIZE + 6, ny=SIZE + 6, scale=scale, offset=(x - np.floor(x + 0.5), y - np.floor(y + 0.5))
    )
    stamp.setCenter(int(np.floor(x + 0.5)) + 1, int(np.floor(y + 0.5)) + 1)  # GalSim is 1-based
    b = stamp.bounds & img.bounds
    img[b] += stamp[b]
    return img.array


@pytest.fixture(scope="module")
def visit():
    from pachon.sim import Simulator
    from pachon.sim.astrometry import pixel_scale_arcsec
    from pachon.sim.config import SimConfig

    cfg = SimConfig.from_dict(
        {"survey": {"n_visits": 1, "bands": ["r"], "seeing_fwhm": [0.7, 0.7]}, "detectors": [0, 1, 2, 3]}
    )
    sim = Simulator(cfg, seed=5)
    vpsf = sim.visit_psf(sim.visits[0])
    rng = np.random.default_rng(4)
    stars, truth = [], []
    for det in sim.detectors:
        shape = (det.bbox.height, det.bbox.width)
        scale = pixel_scale_arcsec(sim.instrument, det)
        gx, gy = np.meshgrid(np.linspace(40, shape[1] - 40, 4), np.linspace(40, shape[0] - 40, 3))
        x = gx.ravel() + rng.uniform(-15, 15, gx.size)
        y = gy.ravel() + rng.uniform(-15, 15, gy.size)
        expected = np.full(shape, SKY)
        for xi, yi in zip(x, y, strict=True):  # twelve stars per detector
            fx, fy = det.pixel_to_focal_plane(np.array([xi]), np.array([yi]))
            expected += FLUX * _draw(vpsf.at(float(fx[0]), float(fy[0])), xi, yi, shape, scale)
        image = expected + rng.standard_normal(shape) * np.sqrt(expected)
        stars.append(VisitStars(det, image - SKY, expected, x, y))
        # held-out truth: the noiseless PSF at 25 other positions of this detector
        tx, ty = rng.uniform(30, shape[1] - 30, 25), rng.uniform(30, shape[0] - 30, 25)
        fx, fy = det.pixel_to_focal_plane(tx, ty)
        cube = []
        for a, b in zip(fx, fy, strict=True):
            c = vpsf.at(float(a), float(b)).drawImage(nx=SIZE, ny=SIZE, scale=scale).array
            cube.append(c / c.sum())
        truth.append((tx, ty, fx, fy, np.array(cube)))
    return sim, stars, truth


def test_visit_model_predicts_star_shapes_better_than_per_detector_fits(visit):
    sim, stars, truth = visit
    model = fit_visit_psf(stars, size=SIZE, order=2)
    assert model.order == 2  # the r² optics demand the quadratic terms
    assert model.n_stars >= 44
    res_visit, res_det, signal, size_visit, size_det = [], [], [], [], []
    for s, (tx, ty, fx, fy, cube) in zip(stars, truth, strict=True):
        e1, e2, t = _moments(cube)
        v1, v2, vt = _moments(model.kernels(fx, fy))
        per = fit_pixel_psf(s.image, s.variance, s.x, s.y, size=SIZE, order=2).psf
        d1, d2, dt = _moments(per.kernels(tx, ty))
        res_visit.append(np.hypot(v1 - e1, v2 - e2))
        res_det.append(np.hypot(d1 - e1, d2 - e2))
        signal.append(np.hypot(e1 - np.mean(e1), e2 - np.mean(e2)))
        size_visit.append(vt / t - 1)
        size_det.append(dt / t - 1)
        # the detector view of the visit model is the same PSF in pixel coordinates
        view = model.for_detector(s.detector, s.image.shape[1], s.image.shape[0])
        np.testing.assert_allclose(view.kernels(tx, ty), model.kernels(fx, fy), atol=2e-5)
    rv, rd, sig = (float(np.sqrt(np.mean(np.concatenate(a) ** 2))) for a in (res_visit, res_det, signal))
    sv, sd = (float(np.sqrt(np.mean(np.concatenate(a) ** 2))) for a in (size_visit, size_det))
    print(f"ellipticity residual rms: visit model {rv:.4f}, per-detector {rd:.4f}; field signal {sig:.4f}")
    print(f"size (ixx + iyy) residual rms: visit model {sv:.4f}, per-detector {sd:.4f}")
    # ~12 stars at S/N ~500 per detector: a visit fit pools 48; its residual is at the noise level
    assert rv < 0.75 * rd
    assert sv < 0.5 * sd and sv < 0.01
    assert rv < 0.005
    assert sig > 2 * rv  # the field variation is real and resolved


def test_atmosphere_is_the_field_constant_part(visit):
    _, stars, _ = visit
    model = fit_visit_psf(stars, size=SIZE, order=2)
    atm = model.atmosphere
    assert atm.shape == (SIZE, SIZE) and abs(atm.sum() - 1) < 1e-12
    # the optical terms vanish at the optical axis: the model there is the constant term
    np.testing.assert_allclose(model.kernels(np.array([0.0]), np.array([0.0]))[0], atm, atol=1e-12)
    assert model.optical.shape[0] == 5

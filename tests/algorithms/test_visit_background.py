"""Full-visit background: one focal-plane model fitted to the meshes of all four PachonTestCam detectors."""

from __future__ import annotations

import numpy as np
import pytest

from pachon.algorithms.background import estimate_background, fit_visit_background


def _sky(fx, fy):
    """A known focal-plane sky (e-/px, positions in mm): a gradient and a twist across the visit."""
    return 700.0 + 4.0 * fx - 3.0 * fy + 0.3 * fx * fy


@pytest.fixture(scope="module")
def visit():
    from pachon.sim import Simulator
    from pachon.sim.config import SimConfig

    sim = Simulator(SimConfig.from_dict({"survey": {"n_visits": 1}, "detectors": [0, 1, 2, 3]}), seed=2)
    rng = np.random.default_rng(9)
    out = []
    for det in sim.detectors:
        ny, nx = det.bbox.height, det.bbox.width
        yy, xx = np.mgrid[0:ny, 0:nx]
        fx, fy = det.pixel_to_focal_plane(xx.ravel().astype(float), yy.ravel().astype(float))
        sky = _sky(fx, fy).reshape(ny, nx)
        stars = np.zeros((ny, nx))
        for x, y in rng.uniform(10, nx - 10, (40, 2)):  # forty stars per detector
            stars += 2e4 / (2 * np.pi * 3.0) * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / 3.0)
        image = sky + stars + rng.normal(0.0, np.sqrt(sky + stars))
        out.append((det, image, sky, stars > 2.0))
    return out


def test_visit_background_recovers_the_focal_plane_sky(visit):
    mesh_fx, mesh_fy, values, per_det = [], [], [], []
    for det, image, sky, mask in visit:
        bkg = estimate_background(image, mask=mask, mesh_size=64, statistic="mean")
        gx, gy = np.meshgrid(bkg.mesh_x, bkg.mesh_y)
        fx, fy = det.pixel_to_focal_plane(gx.ravel(), gy.ravel())
        mesh_fx.append(fx)
        mesh_fy.append(fy)
        values.append(bkg.values.ravel())
        per_det.append(bkg.image() - sky)
    model = fit_visit_background(
        np.concatenate(mesh_fx), np.concatenate(mesh_fy), np.concatenate(values), order=2
    )
    resid_visit = []
    for det, image, _sky_image, _ in visit:
        ny, nx = image.shape
        yy, xx = np.mgrid[0:ny:8, 0:nx:8]
        fx, fy = det.pixel_to_focal_plane(xx.ravel().astype(float), yy.ravel().astype(float))
        resid_visit.append(model.evaluate(fx, fy) - _sky(fx, fy))
    rv = float(np.sqrt(np.mean(np.concatenate(resid_visit) ** 2)))
    rd = float(np.sqrt(np.mean(np.concatenate([r.ravel() for r in per_det]) ** 2)))
    print(f"sky residual rms: visit model {rv:.3f} e-/px, per-detector meshes {rd:.3f} e-/px")
    # 256 meshes of 4096 pixels at sigma ~27: the pooled fit is good to ~0.1 e-
    assert rv < 0.15
    assert rv < 0.5 * rd
    # the detectors share one sky: the model is continuous across the gaps by construction,
    # and its gradient is the true one
    g = model.evaluate(np.array([1.0]), np.array([0.0])) - model.evaluate(np.array([-1.0]), np.array([0.0]))
    assert abs(float(g[0]) / 2.0 - 4.0) < 0.05

"""The delta-function kernel basis on simulated truth."""

from __future__ import annotations

import numpy as np

from pachon.algorithms.diffim.al import AlConfig
from pachon.algorithms.diffim.detect import detect_dia_sources
from pachon.algorithms.diffim.simulate import PairSpec, make_pair
from pachon.algorithms.diffim.subtract import DiffimConfig, residual_noise_ratio, subtract_images


def test_delta_basis_matches_gaussian() -> None:
    spec = PairSpec(shape=(256, 256), n_stars=120, transient_flux=np.full(6, 6000.0))
    sci, tpl, truth = make_pair(spec, seed=21)
    cfg = DiffimConfig(al=AlConfig(basis="delta", spatial_order=0, max_stars=40, n_iter=1))
    res = subtract_images(sci, tpl, cfg)
    assert res.kernel is not None and not res.kernel.from_psf
    assert res.kernel.basis.shape[0] == res.kernel.basis.shape[-1] ** 2
    assert abs(res.kernel.kernel_sum(128.0, 128.0) - 1.0) < 0.02  # same photometric scale
    ref = subtract_images(sci, tpl)
    assert abs(residual_noise_ratio(res.difference) - 1.0) < 0.10
    assert abs(residual_noise_ratio(res.difference) - residual_noise_ratio(ref.difference)) < 0.05
    tx, ty = truth["transients"]["x"], truth["transients"]["y"]
    found = []
    for r in (res, ref):
        det = detect_dia_sources(r.difference, r.score)
        d = np.hypot(det.x[None] - tx[:, None], det.y[None] - ty[:, None])
        found.append(d.min(axis=1) < 2)
        assert (d.min(axis=0) > 5).sum() <= 1  # at most one spurious detection
    assert found[0].sum() >= 4 and np.array_equal(found[0], found[1])

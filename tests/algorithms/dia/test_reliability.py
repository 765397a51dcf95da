"""Reliability classifier: the fitter against known coefficients; the packaged model on held-out data."""

from __future__ import annotations

import numpy as np
import pytest

from pachon.algorithms.dia.reliability import (
    FEATURES,
    ReliabilityModel,
    auc,
    fit_logistic,
    load_model,
    score_reliability,
)
from pachon.core.errors import ConfigError


def test_fit_logistic_recovers_coefficients() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 3))
    true_w, true_b = np.array([1.5, -2.0, 0.0]), 0.5
    p = 1 / (1 + np.exp(-(true_b + x @ true_w)))
    y = (rng.uniform(size=len(p)) < p).astype(int)
    m = fit_logistic(x, y, l2=0.0)
    w = m.weights / m.scale  # back to unstandardized units
    b = m.bias - (m.weights * m.mean / m.scale).sum()
    np.testing.assert_allclose(w, true_w, atol=0.08)
    assert abs(b - true_b) < 0.08
    assert auc(m.predict(x), y) > 0.8
    with pytest.raises(ConfigError, match="both classes"):
        fit_logistic(x, np.zeros(len(x)))


def test_auc_known_values() -> None:
    assert auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert auc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1])) == 0.0
    assert auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5


def test_model_roundtrip_and_feature_check() -> None:
    m = load_model()
    assert m.features == FEATURES and len(m.weights) == len(FEATURES)
    again = ReliabilityModel.from_dict(m.to_dict())
    np.testing.assert_array_equal(again.weights, m.weights)
    bad = m.to_dict() | {"features": ["snr"]}
    with pytest.raises(ConfigError, match="retrain"):
        ReliabilityModel.from_dict(bad)


def test_packaged_model_separates_heldout_detections() -> None:
    """AUC > 0.9 on simulated pairs the model was not trained on (trained: seeds 0-15; here 2000+)."""
    from pachon.algorithms.dia.reliability_training import simulate_detections

    x, y = simulate_detections([2000, 2001], shape=(384, 384))
    assert y.sum() >= 20 and (1 - y).sum() >= 10
    p = load_model().predict(x)
    assert auc(p, y) > 0.9
    assert p[y == 1].mean() > 0.7 > 0.4 > p[y == 0].mean()


def test_measure_fills_reliability() -> None:
    from pachon.algorithms.dia.measure import measure_dia_sources
    from pachon.algorithms.diffim.detect import detect_dia_sources
    from pachon.algorithms.diffim.simulate import PairSpec, make_pair
    from pachon.algorithms.diffim.subtract import subtract_images

    sci, tpl, truth = make_pair(
        PairSpec(shape=(256, 256), n_stars=80, transient_flux=np.full(5, 8000.0), n_cosmic_rays=5), seed=5
    )
    res = subtract_images(sci, tpl)
    det = detect_dia_sources(res.difference, res.score)
    tab = measure_dia_sources(res.difference, res.score, det, science=sci, template=tpl)
    rel = tab["reliability"].to_numpy(zero_copy_only=False)
    np.testing.assert_allclose(rel, score_reliability(tab))
    tx, ty = truth["transients"]["x"], truth["transients"]["y"]
    real = np.hypot(det.x[:, None] - tx[None], det.y[:, None] - ty[None]).min(axis=1) < 2
    cx, cy = truth["cosmic_rays"]["x"], truth["cosmic_rays"]["y"]
    cosmic = np.hypot(det.x[:, None] - cx[None], det.y[:, None] - cy[None]).min(axis=1) < 2
    assert real.sum() == 5 and cosmic.sum() >= 3
    assert rel[real].min() > 0.8 and rel[cosmic].max() < 0.3

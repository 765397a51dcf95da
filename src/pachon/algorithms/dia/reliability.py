"""Real/bogus reliability of DIA sources: a logistic regression on DiaSource-derived features.

The score is ``P(real) = 1 / (1 + exp(-(b + w . z)))`` with ``z`` the standardized features
(:data:`FEATURES`, computed by :func:`reliability_features` from DiaSource columns only, so it
works on stored tables as well):

``log_snr``
    ``log10(snr)``: faint detections are more often noise or residuals.
``log_chi2``
    ``log10`` of the PSF-fit reduced ``chi^2`` (``psfChi2 / psfNdata``): a residual of a
    mis-subtracted star or a cosmic ray is not PSF-shaped.
``log_size``
    ``log10`` of the moment trace over the PSF's (``(ixx + iyy) / (ixxPSF + iyyPSF)``):
    cosmic rays and bad columns are sharper or narrower than the PSF.
``dipole``
    1 for ``isDipole``: a positive and a negative lobe, the signature of misalignment.
``negative``
    1 for ``isNegative``.
``trailed``
    1 where a trail was fitted (finite ``trailLength``): real moving objects.
``log_template``
    ``log10(1 + |templateFlux| / |psfFlux|)``: a small difference flux on a bright template
    star is more often a subtraction residual (the stand-in for "distance to a bright star").

Missing values (no moments, no forced flux) take neutral fills.  The coefficients are fitted
by :func:`fit_logistic` (Newton iterations with an L2 penalty) on simulated detections labelled
real (transients, variables, trails) or bogus (misaligned and misconvolved stars, cosmic rays,
bad columns) — see :mod:`pachon.algorithms.dia.reliability_training` and
``benchmarks/train_reliability.py``, which writes the packaged ``reliability_model.json``
(package data, read by :func:`load_model`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pachon.core.errors import ConfigError

__all__ = [
    "FEATURES",
    "MODEL_RESOURCE",
    "ReliabilityModel",
    "auc",
    "fit_logistic",
    "load_model",
    "reliability_features",
    "score_reliability",
]

_log = logging.getLogger(__name__)

FEATURES = ("log_snr", "log_chi2", "log_size", "dipole", "negative", "trailed", "log_template")
#: Package resource holding the fitted model.
MODEL_RESOURCE = "reliability_model.json"


def _col(table: Mapping[str, Any] | Any, name: str) -> np.ndarray:
    value = table[name]
    if hasattr(value, "to_numpy"):  # pyarrow column
        value = value.to_numpy(zero_copy_only=False)
    return np.asarray(value, float)


def reliability_features(table: Mapping[str, Any] | Any) -> np.ndarray:
    """Feature matrix ``(n, len(FEATURES))`` from DiaSource columns (dict of arrays or table)."""
    snr = np.nan_to_num(_col(table, "snr"), nan=0.0)
    ndata = np.maximum(np.nan_to_num(_col(table, "psfNdata"), nan=1.0), 1.0)
    chi2 = np.nan_to_num(_col(table, "psfChi2") / ndata, nan=1.0, posinf=1e6)
    trace = _col(table, "ixx") + _col(table, "iyy")
    trace_psf = _col(table, "ixxPSF") + _col(table, "iyyPSF")
    with np.errstate(invalid="ignore", divide="ignore"):
        size = np.log10(trace / trace_psf)
        tmpl = np.log10(1.0 + np.abs(_col(table, "templateFlux")) / np.abs(_col(table, "psfFlux")))
    return np.stack(
        [
            np.log10(np.clip(snr, 1.0, 1e5)),
            np.log10(np.clip(chi2, 1e-2, 1e6)),
            np.clip(np.nan_to_num(size, nan=-1.0, posinf=2.0, neginf=-1.0), -1.0, 2.0),
            np.nan_to_num(_col(table, "isDipole"), nan=0.0),
            np.nan_to_num(_col(table, "isNegative"), nan=0.0),
            np.isfinite(_col(table, "trailLength")).astype(float),
            np.clip(np.nan_to_num(tmpl, nan=0.0, posinf=4.0), 0.0, 4.0),
        ],
        axis=1,
    )


@dataclass
class ReliabilityModel:
    """Standardization and logistic coefficients (see the module docstring)."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    features: tuple[str, ...] = FEATURES

    def predict(self, features: np.ndarray) -> np.ndarray:
        """``P(real)`` for a feature matrix ``(n, n_features)``."""
        z = (np.asarray(features, float) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-np.clip(self.bias + z @ self.weights, -50, 50)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "features": list(self.features),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "bias": float(self.bias),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "model") -> ReliabilityModel:
        """Inverse of :meth:`to_dict`; ``ConfigError`` when the features differ from :data:`FEATURES`."""
        if tuple(data.get("features", ())) != FEATURES:
            raise ConfigError(
                f"{source}: reliability features {data.get('features')} differ from {list(FEATURES)}; "
                "retrain with benchmarks/train_reliability.py"
            )
        return cls(
            np.asarray(data["mean"], float),
            np.asarray(data["scale"], float),
            np.asarray(data["weights"], float),
            float(data["bias"]),
        )


def fit_logistic(
    features: np.ndarray, labels: np.ndarray, *, l2: float = 1e-2, n_iter: int = 50
) -> ReliabilityModel:
    """Penalized maximum-likelihood logistic regression (Newton / IRLS) on standardized features.

    Parameters
    ----------
    features
        ``(n, n_features)`` matrix.
    labels
        1 for real, 0 for bogus.
    l2
        Ridge penalty on the weights (not the bias), per sample.
    n_iter
        Maximum number of Newton iterations.
    """
    x = np.asarray(features, float)
    y = np.asarray(labels, float)
    if len(np.unique(y)) < 2:
        raise ConfigError("fit_logistic: labels must hold both classes (1 real, 0 bogus)")
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = np.column_stack([np.ones(len(x)), (x - mean) / scale])
    beta = np.zeros(z.shape[1])
    pen = np.full(z.shape[1], l2 * len(x))
    pen[0] = 0.0
    for _ in range(n_iter):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ beta, -50, 50)))
        grad = z.T @ (y - p) - pen * beta
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(pen) + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hess, grad)
        beta += step
        if np.abs(step).max() < 1e-8:
            break
    return ReliabilityModel(mean, scale, beta[1:], float(beta[0]))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney statistic, ties counted half)."""
    from scipy.stats import rankdata

    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        raise ConfigError("auc: need both real and bogus samples")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


_MODEL: ReliabilityModel | None = None


def load_model() -> ReliabilityModel:
    """The packaged model (``pachon/algorithms/dia/reliability_model.json``), cached."""
    global _MODEL  # noqa: PLW0603 - read-only package data, loaded once
    if _MODEL is None:
        from importlib import resources

        text = resources.files(__package__).joinpath(MODEL_RESOURCE).read_text()
        _MODEL = ReliabilityModel.from_dict(json.loads(text), source=MODEL_RESOURCE)
    return _MODEL


def score_reliability(table: Mapping[str, Any] | Any, model: ReliabilityModel | None = None) -> np.ndarray:
    """``P(real)`` per DiaSource (empty array for an empty table)."""
    feats = reliability_features(table)
    if len(feats) == 0:
        return np.zeros(0)
    return (model or load_model()).predict(feats)

"""Overscan subtraction: serial (one value per row) and parallel (one value per column).

The overscan level is estimated per row of the serial overscan (per column of the parallel
overscan) with a median or mean, optionally smoothed by a polynomial in the row (column)
index, or reduced to one constant.  Outliers (cosmic rays in the overscan) are clipped before
the mean.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pachon.core.errors import ConfigError

__all__ = ["OverscanConfig", "overscan_profile", "subtract_overscan"]

log = logging.getLogger(__name__)

_METHODS = ("median", "mean", "poly", "constant")


@dataclass
class OverscanConfig:
    """How to estimate the overscan level.

    Attributes
    ----------
    method
        ``median`` / ``mean``: per row (serial) or column (parallel); ``poly``: per-row medians
        smoothed by a polynomial of degree ``order``; ``constant``: one median for the amplifier.
    order
        Polynomial degree for ``poly``.
    skip
        Columns (rows) of the overscan next to the data to ignore (charge-transfer tail).
    parallel
        Also subtract the parallel overscan (per-column medians, smoothed by the polynomial of
        degree ``order`` so that few overscan rows add no column noise) where there is one.
    clip_sigma
        Clip pixels further than this many robust sigma from the row median before ``mean``.
    """

    method: Literal["median", "mean", "poly", "constant"] = "median"
    order: int = 3
    skip: int = 1
    parallel: bool = False
    clip_sigma: float = 4.0

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ConfigError(f"overscan.method must be one of {_METHODS}, got {self.method!r}")
        if self.order < 0 or self.skip < 0:
            raise ConfigError(f"overscan.order and overscan.skip must be >= 0, got {self.order}, {self.skip}")


def overscan_profile(overscan: np.ndarray, config: OverscanConfig, *, axis: int = 1) -> np.ndarray:
    """The overscan level along the other axis (per row for ``axis=1``, per column for ``axis=0``)."""
    ov = np.asarray(overscan, dtype=np.float64)
    if config.method == "constant":
        return np.full(ov.shape[1 - axis], np.median(ov))
    med = np.median(ov, axis=axis)
    if config.method == "median":
        return med
    if config.method == "mean":
        dev = ov - np.expand_dims(med, axis)
        sigma = 1.4826 * np.median(np.abs(dev), axis=axis, keepdims=True)
        keep = np.abs(dev) <= config.clip_sigma * np.maximum(sigma, 1e-12)
        n = np.maximum(keep.sum(axis=axis), 1)
        return np.where(keep, ov, 0.0).sum(axis=axis) / n
    t = np.linspace(-1.0, 1.0, med.size)
    coef = np.polynomial.legendre.legfit(t, med, min(config.order, max(med.size - 1, 0)))
    return np.polynomial.legendre.legval(t, coef)


def subtract_overscan(
    array: np.ndarray, amp: Any, config: OverscanConfig
) -> tuple[np.ndarray, dict[str, float]]:
    """Subtract the serial (and parallel) overscan from one amplifier's raw array.

    Returns the corrected whole raw array (same shape, float64) and statistics: the mean
    overscan level and the noise in the overscan after subtraction (ADU).
    """
    out = np.asarray(array, dtype=np.float64).copy()
    origin = (amp.raw_bbox.x0, amp.raw_bbox.y0)
    stats = {"overscan_level": 0.0, "overscan_noise": float("nan")}
    box = amp.raw_serial_overscan_bbox
    if box is not None:
        rs, cs = box.slices(origin=origin)
        near_data_left = box.x0 < amp.raw_data_bbox.x0
        cols = np.arange(cs.start, cs.stop)
        cols = cols[: -config.skip] if (config.skip and near_data_left) else cols[config.skip :]
        if cols.size == 0:
            cols = np.arange(cs.start, cs.stop)
        ov = out[rs][:, cols]
        level = overscan_profile(ov, config, axis=1)
        stats["overscan_level"] = float(np.mean(level))
        out[rs, :] -= level[:, None]
        resid = out[rs][:, cols]
        stats["overscan_noise"] = float(1.4826 * np.median(np.abs(resid - np.median(resid))))
    pbox = amp.raw_parallel_overscan_bbox
    if config.parallel and pbox is not None:
        rs, cs = pbox.slices(origin=origin)
        rows = (
            np.arange(rs.start, rs.stop)[config.skip :]
            if rs.stop - rs.start > config.skip
            else np.arange(rs.start, rs.stop)
        )
        level = overscan_profile(out[rows][:, cs], OverscanConfig(method="poly", order=config.order), axis=0)
        out[:, cs] -= level[None, :]
    return out, stats

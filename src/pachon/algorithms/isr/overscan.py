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

__all__ = ["OverscanConfig", "overscan_profile", "overscan_levels", "subtract_overscan"]

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
    ov = np.asarray(overscan)  # integer raws keep their type: the median partitions them faster
    if config.method == "mean" or not np.issubdtype(ov.dtype, np.number):
        ov = ov.astype(np.float64)
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


def _serial_columns(amp: Any, config: OverscanConfig, cs: slice) -> slice:
    """The serial-overscan columns used: ``config.skip`` columns next to the data dropped."""
    n = cs.stop - cs.start
    if not config.skip or n <= config.skip:
        return cs
    if amp.raw_serial_overscan_bbox.x0 < amp.raw_data_bbox.x0:  # overscan left of the data
        return slice(cs.start, cs.stop - config.skip)
    return slice(cs.start + config.skip, cs.stop)


def _robust_sigma(values: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def overscan_levels(
    array: np.ndarray, amp: Any, config: OverscanConfig, *, noise_sample: int | None = None
) -> tuple[np.ndarray | None, np.ndarray | None, dict[str, float]]:
    """The overscan levels of one amplifier, without touching its pixels.

    Parameters
    ----------
    array
        The amplifier's raw array (``amp.raw_bbox``, readout orientation, any numeric dtype).
    amp
        The amplifier.
    config
        The estimator.
    noise_sample
        Estimate the overscan noise from at most about this many overscan pixels (a regular
        subsample of rows); None uses them all.

    Returns
    -------
    rows, columns, stats
        The serial level for every row of the raw array (None without a serial overscan), the
        parallel level for every column (None unless ``config.parallel`` and there is a
        parallel overscan), and the statistics of :func:`subtract_overscan` (ADU).
    """
    origin = (amp.raw_bbox.x0, amp.raw_bbox.y0)
    stats = {"overscan_level": 0.0, "overscan_noise": float("nan")}
    rows_level = cols_level = None
    box = amp.raw_serial_overscan_bbox
    if box is not None:
        rs, cs = box.slices(origin=origin)
        ov = array[rs, _serial_columns(amp, config, cs)]
        level = overscan_profile(ov, config, axis=1)
        rows_level = np.zeros(array.shape[0])
        rows_level[rs] = level
        stats["overscan_level"] = float(np.mean(level))
        step = 1 if noise_sample is None else max(1, ov.size // max(int(noise_sample), 1))
        resid = ov[::step] - level[::step, None]
        stats["overscan_noise"] = _robust_sigma(resid)
    pbox = amp.raw_parallel_overscan_bbox
    if config.parallel and pbox is not None:
        rs, cs = pbox.slices(origin=origin)
        first = rs.start + config.skip if rs.stop - rs.start > config.skip else rs.start
        pov = np.asarray(array[first : rs.stop, cs], dtype=np.float64)
        if rows_level is not None:
            pov = pov - rows_level[first : rs.stop, None]
        cols_level = np.zeros(array.shape[1])
        cols_level[cs] = overscan_profile(pov, OverscanConfig(method="poly", order=config.order), axis=0)
    return rows_level, cols_level, stats


def subtract_overscan(
    array: np.ndarray, amp: Any, config: OverscanConfig
) -> tuple[np.ndarray, dict[str, float]]:
    """Subtract the serial (and parallel) overscan from one amplifier's raw array.

    Returns the corrected whole raw array (same shape, float64) and statistics: the mean
    overscan level and the noise in the overscan after subtraction (ADU).
    """
    out = np.array(array, dtype=np.float64)  # one copy, whatever the raw type
    rows_level, cols_level, stats = overscan_levels(array, amp, config)
    if rows_level is not None:
        box = amp.raw_serial_overscan_bbox
        rs, _ = box.slices(origin=(amp.raw_bbox.x0, amp.raw_bbox.y0))
        out[rs, :] -= rows_level[rs, None]
    if cols_level is not None:
        out -= cols_level[None, :]
    return out, stats

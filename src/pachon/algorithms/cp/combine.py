"""Combining calibration frames: per-pixel sigma clipping and the variance of the result."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pachon.core.errors import ConfigError

__all__ = ["CombineConfig", "combine_frames"]

log = logging.getLogger(__name__)


@dataclass
class CombineConfig:
    """How frames are combined: clipped mean (default) or median, ``n_iter`` clipping passes."""

    method: Literal["mean", "median"] = "mean"
    sigma: float = 3.0
    n_iter: int = 2

    def __post_init__(self) -> None:
        if self.method not in ("mean", "median"):
            raise ConfigError(f"combine.method must be 'mean' or 'median', got {self.method!r}")
        if self.sigma <= 0:
            raise ConfigError(f"combine.sigma must be positive, got {self.sigma!r}")


def _nanmedian(a: np.ndarray, axis: int = 0) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels give NaN, handled below
        return np.nanmedian(a, axis=axis)


def combine_frames(
    frames: Sequence[np.ndarray],
    config: CombineConfig | None = None,
    *,
    variances: Sequence[np.ndarray] | None = None,
    scales: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Combine frames pixel by pixel with sigma clipping.

    Parameters
    ----------
    frames
        Images of one shape.
    config
        Method and clipping.
    variances
        Per-frame variance planes; without them the variance comes from the scatter of the
        frames (which needs at least two).
    scales
        Divide each frame (and its variance by the square) by this first (e.g. the flat level).

    Returns
    -------
    combined, variance, n_used
        The combined image, its variance, and how many frames each pixel kept.
    """
    config = config or CombineConfig()
    if len(frames) == 0:
        raise ConfigError("combine_frames needs at least one frame")
    shapes = {np.shape(f) for f in frames}
    if len(shapes) != 1:
        raise ConfigError(f"combine_frames: frames of different shapes {sorted(shapes)}")
    stack = np.stack([np.asarray(f, dtype=np.float64) for f in frames])
    var = None if variances is None else np.stack([np.asarray(v, dtype=np.float64) for v in variances])
    if scales is not None:
        s = np.asarray(scales, dtype=np.float64)[:, None, None]
        stack = stack / s
        var = None if var is None else var / (s * s)
    n = stack.shape[0]
    keep = np.isfinite(stack)
    if n >= 3:
        for _ in range(config.n_iter):
            data = np.where(keep, stack, np.nan)
            med = _nanmedian(data, axis=0)
            mad = 1.4826 * _nanmedian(np.abs(data - med), axis=0)
            sigma = np.sqrt(var.mean(axis=0)) if var is not None else mad
            sigma = np.where(sigma > 0, sigma, np.inf)
            new = keep & (np.abs(stack - med) <= config.sigma * sigma)
            if np.array_equal(new, keep):
                break
            keep = new
    n_used = keep.sum(axis=0)
    safe_n = np.maximum(n_used, 1)
    data = np.where(keep, stack, 0.0)
    if config.method == "median":
        combined = _nanmedian(np.where(keep, stack, np.nan), axis=0) if n > 1 else stack[0]
        factor = np.pi / 2  # variance of a median of Gaussian samples
    else:
        combined = data.sum(axis=0) / safe_n
        factor = 1.0
    if var is not None:
        variance = np.where(keep, var, 0.0).sum(axis=0) / safe_n**2 * factor
    elif n > 1:
        resid = np.where(keep, stack - combined, 0.0)
        variance = (resid**2).sum(axis=0) / np.maximum(n_used - 1, 1) / safe_n * factor
    else:
        raise ConfigError("combine_frames: one frame and no variance; give variances or more frames")
    combined = np.where(n_used > 0, combined, np.nan)
    return combined, variance, n_used

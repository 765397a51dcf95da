"""Crosstalk correction between the amplifiers of a detector, and between detectors.

Model (readout order, ADU, overscan subtracted): ``observed[v] = true[v] + sum_s C[v, s] *
true[s]`` at the same readout pixel, with ``C[v, v] = 0``.  The correction solves
``(I + C) true = observed`` exactly for all pixels at once (one small matrix, one matrix
product).  Between detectors the same model holds with one coefficient per source detector
applied to whole assembled images.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from pachon.core.errors import ConfigError

__all__ = [
    "correct_crosstalk",
    "correct_crosstalk_in_place",
    "apply_crosstalk",
    "correct_inter_detector_crosstalk",
]

log = logging.getLogger(__name__)


def _check(matrix: np.ndarray, n: int) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (n, n):
        raise ConfigError(
            f"crosstalk matrix has shape {m.shape}, the detector has {n} amplifiers; "
            "use the crosstalk calibration of this detector"
        )
    return m


def apply_crosstalk(segments: Sequence[np.ndarray], matrix: np.ndarray) -> list[np.ndarray]:
    """Add crosstalk to readout-oriented segments (the forward model; used by tests and fits)."""
    stack = np.stack([np.asarray(s, dtype=np.float64) for s in segments])
    m = _check(matrix, len(segments))
    flat = stack.reshape(len(segments), -1)
    return list((flat + m @ flat).reshape(stack.shape))


def correct_crosstalk(segments: Sequence[np.ndarray], matrix: np.ndarray) -> list[np.ndarray]:
    """Remove crosstalk from overscan-subtracted, readout-oriented data segments (ADU).

    All segments must share one shape (amplifiers of one detector); returns new arrays.
    """
    shapes = {np.shape(s) for s in segments}
    if len(shapes) != 1:
        raise ConfigError(f"crosstalk correction needs amplifier segments of one shape, got {sorted(shapes)}")
    m = _check(matrix, len(segments))
    stack = np.stack([np.asarray(s, dtype=np.float64) for s in segments])
    flat = stack.reshape(len(segments), -1)
    fixed = np.linalg.solve(np.eye(len(segments)) + m, flat)
    return list(fixed.reshape(stack.shape))


def correct_crosstalk_in_place(
    views: Sequence[np.ndarray], matrix: np.ndarray, *, block_rows: int = 64
) -> None:
    """Remove crosstalk from readout-oriented views of one assembled image, in place.

    The same model as :func:`correct_crosstalk`; the inverse of ``I + C`` is applied to
    blocks of ``block_rows`` rows of every amplifier at once (one small matrix product per
    block, in the views' precision), so no copy of the whole image is made.
    """
    shapes = {v.shape for v in views}
    if len(shapes) != 1:
        raise ConfigError(f"crosstalk correction needs amplifier segments of one shape, got {sorted(shapes)}")
    n = len(views)
    inv = np.linalg.inv(np.eye(n) + _check(matrix, n)).astype(views[0].dtype)
    height = views[0].shape[0]
    for r0 in range(0, height, block_rows):  # loop over blocks of rows (a few dozen)
        block = np.stack([v[r0 : r0 + block_rows] for v in views])
        fixed = (inv @ block.reshape(n, -1)).reshape(block.shape)
        for v, f in zip(views, fixed, strict=True):
            v[r0 : r0 + block_rows] = f


def correct_inter_detector_crosstalk(
    image: np.ndarray, sources: Sequence[np.ndarray], coefficients: Sequence[float]
) -> np.ndarray:
    """Subtract ``sum_k coefficients[k] * sources[k]`` (assembled images of other detectors)."""
    if len(sources) != len(coefficients):
        raise ConfigError(f"{len(sources)} source detectors but {len(coefficients)} coefficients")
    out = np.asarray(image, dtype=np.float64).copy()
    for src, c in zip(sources, coefficients, strict=True):
        if np.shape(src) != out.shape:
            raise ConfigError(
                f"inter-detector crosstalk source of shape {np.shape(src)} does not match "
                f"the image {out.shape}"
            )
        out -= float(c) * np.asarray(src, dtype=np.float64)
    return out

"""Stamp cubes: the pixels around many sources at once, as one ``(n, size, size)`` array.

Every per-source measurement in :mod:`pachon.algorithms.measurement` works on such cubes, so
the arithmetic is vectorized over sources and pixels alike.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["extract_stamps", "psf_stamps", "render_psf_models", "stamp_offsets"]

_log = logging.getLogger(__name__)


def stamp_offsets(half: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets ``(dx, dy)`` of a ``(2 half + 1)``-square stamp from its central pixel."""
    r = np.arange(-half, half + 1, dtype=float)
    return r[None, :], r[:, None]


def extract_stamps(
    array: np.ndarray, ix: np.ndarray, iy: np.ndarray, half: int, *, fill: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``(2 half + 1)``-square stamps centred on integer pixels ``(ix, iy)``.

    Returns
    -------
    cube
        ``(n, size, size)`` array (float64 for float input, the input dtype otherwise).
    inside
        ``(n, size, size)`` bool: True where the stamp pixel lies on the image (elsewhere the
        cube holds ``fill``).
    """
    ix = np.asarray(ix, dtype=np.int64)
    iy = np.asarray(iy, dtype=np.int64)
    ny, nx = array.shape
    r = np.arange(-half, half + 1)
    rows = iy[:, None, None] + r[None, :, None]
    cols = ix[:, None, None] + r[None, None, :]
    inside = (rows >= 0) & (rows < ny) & (cols >= 0) & (cols < nx)
    cube = array[np.clip(rows, 0, ny - 1), np.clip(cols, 0, nx - 1)]
    if np.issubdtype(cube.dtype, np.floating):
        cube = cube.astype(np.float64)
    cube = np.where(inside, cube, np.asarray(fill, dtype=cube.dtype))
    return cube, inside


def psf_stamps(psf: Any, x: np.ndarray, y: np.ndarray, half: int) -> np.ndarray:
    """PSF images realised at ``(x, y)`` on stamps centred on the nearest pixels, ``(n, s, s)``.

    Uses the model's batched ``images(x, y, half)`` when it has one (the pixel-basis models of
    :mod:`pachon.algorithms.psf` do), otherwise calls ``psf.image`` per source.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    batched = getattr(psf, "images", None)
    if batched is not None:
        return batched(x, y, half)
    size = 2 * half + 1
    out = np.zeros((len(x), size, size))
    for k in range(len(x)):  # generic models: one call per source
        img, box = psf.image(float(x[k]), float(y[k]))
        s = img.shape[0]
        h = s // 2
        if h >= half:
            out[k] = img[h - half : h + half + 1, h - half : h + half + 1]
        else:
            out[k, half - h : half + h + 1, half - h : half + h + 1] = img
    return out


def render_psf_models(
    shape: tuple[int, int], psf: Any, x: np.ndarray, y: np.ndarray, flux: np.ndarray, half: int,
    xy0: tuple[int, int] = (0, 0),
) -> np.ndarray:  # fmt: skip
    """An image of ``shape`` holding ``flux``-scaled PSF models at parent positions ``(x, y)``.

    Used to remove neighbours' light before aperture sums (one scatter-add for all sources).
    """
    x, y, flux = (np.asarray(a, float) for a in (x, y, flux))
    out = np.zeros(shape)
    if len(x) == 0:
        return out
    cube = psf_stamps(psf, x, y, half) * flux[:, None, None]
    ix = np.floor(x - xy0[0] + 0.5).astype(np.int64)
    iy = np.floor(y - xy0[1] + 0.5).astype(np.int64)
    r = np.arange(-half, half + 1)
    rows = np.broadcast_to(iy[:, None, None] + r[None, :, None], cube.shape)
    cols = np.broadcast_to(ix[:, None, None] + r[None, None, :], cube.shape)
    on = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    np.add.at(out, (rows[on], cols[on]), cube[on])
    return out

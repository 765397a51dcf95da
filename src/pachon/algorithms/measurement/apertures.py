"""Circular-aperture sums of many sources from row cumulative sums (large radii at O(r) cost).

An exact pixel/circle overlap (SEP) costs ``O(r²)`` per source, which dominates measurement
for Rubin's large apertures (35, 50, 70 px) on dense fields.  :func:`row_circle_sums` cuts the
circle into its pixel rows: each row ``j`` holds the chord ``|x - xc| <= sqrt(r² - (j - yc)²)``,
whose sum is a difference of the row's cumulative sum, interpolated linearly inside the end
pixels (exact in x, midpoint rule in y).  For ``r`` of several PSF widths the light near the rim
is negligible and the result agrees with the exact overlap to well below the noise.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["RowCumsum", "row_circle_sums"]

_log = logging.getLogger(__name__)


class RowCumsum:
    """Per-row cumulative sums of one or more same-shaped images, with a leading zero column.

    ``cum[j, i, k] = sum(images[k][j, :i])``; the images are interleaved so that one gather
    serves all of them (the image and its variance, typically).
    """

    def __init__(self, *images: np.ndarray) -> None:
        data = np.stack([np.asarray(a, np.float64) for a in images], axis=-1)
        self.shape = data.shape[:2]
        self.cum = np.zeros((data.shape[0], data.shape[1] + 1, data.shape[2]))
        np.cumsum(data, axis=1, out=self.cum[:, 1:])

    def chord(self, row: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Integrals over ``[left, right]`` (pixel-constant rows, array x), shape ``row.shape + (k,)``."""
        nx = self.shape[1]

        def at(t: np.ndarray) -> np.ndarray:
            u = np.clip(t + 0.5, 0.0, float(nx))
            i = np.minimum(u.astype(np.int64), nx - 1)
            lo, hi = self.cum[row, i], self.cum[row, i + 1]
            return lo + (u - i)[..., None] * (hi - lo)

        return at(right) - at(left)


def row_circle_sums(
    cum: RowCumsum, x: np.ndarray, y: np.ndarray, radius: float, *, chunk: int = 200_000
) -> np.ndarray:
    """Sums of the images of ``cum`` inside circles of ``radius`` at ``(x, y)`` (array pixels): ``(n, k)``.

    Rows outside the image contribute nothing (the caller flags truncated apertures).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    out = np.zeros((n, cum.cum.shape[2]))
    r = float(radius)
    offs = np.arange(-int(np.ceil(r)) - 1, int(np.ceil(r)) + 2)
    per = max(1, chunk // len(offs))
    ny = cum.shape[0]
    for s in range(0, n, per):  # chunks bound the (sources x rows) temporaries
        xs, ys = x[s : s + per], y[s : s + per]
        rows = np.floor(ys + 0.5)[:, None].astype(np.int64) + offs[None, :]
        dy = rows - ys[:, None]
        w2 = r * r - dy * dy
        use = (w2 > 0) & (rows >= 0) & (rows < ny)
        w = np.sqrt(np.where(use, w2, 0.0))
        seg = cum.chord(np.clip(rows, 0, ny - 1), xs[:, None] - w, xs[:, None] + w)
        out[s : s + per] = np.where(use[..., None], seg, 0.0).sum(axis=1)
    return out

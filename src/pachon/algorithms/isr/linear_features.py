"""Masking of satellite trails and other straight linear features with a Hough transform.

The image is binned, thresholded in units of its robust noise, and compact blobs (stars,
galaxies) are dropped by their shape (connected components whose second-moment axis ratio is
small).  The remaining pixels vote in a (theta, rho) accumulator (``np.bincount`` over all
pixel x angle pairs); peaks with at least ``min_length`` pixels of support are trails.  Each
trail's width comes from its mean perpendicular profile, and the band is masked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

__all__ = ["LinearFeatureConfig", "find_linear_features", "line_mask"]

log = logging.getLogger(__name__)


@dataclass
class LinearFeatureConfig:
    """Parameters of the trail finder (lengths in unbinned pixels)."""

    bin_factor: int = 4
    threshold: float = 3.0
    min_length: float = 150.0
    min_elongation: float = 4.0
    n_theta: int = 360
    max_lines: int = 4
    max_half_width: float = 40.0


def _bin(image: np.ndarray, b: int) -> np.ndarray:
    ny, nx = (image.shape[0] // b) * b, (image.shape[1] // b) * b
    return image[:ny, :nx].reshape(ny // b, b, nx // b, b).mean(axis=(1, 3))


def _elongated(hot: np.ndarray, min_elongation: float, min_size: float) -> np.ndarray:
    from scipy import ndimage

    labels, n = ndimage.label(hot, structure=np.ones((3, 3)))
    if n == 0:
        return hot
    yy, xx = np.nonzero(labels)
    lab = labels[yy, xx]
    cnt = np.bincount(lab, minlength=n + 1).astype(float)
    mx = np.bincount(lab, xx, n + 1) / np.maximum(cnt, 1)
    my = np.bincount(lab, yy, n + 1) / np.maximum(cnt, 1)
    dx, dy = xx - mx[lab], yy - my[lab]
    sxx = np.bincount(lab, dx * dx, n + 1) / np.maximum(cnt, 1) + 1 / 12
    syy = np.bincount(lab, dy * dy, n + 1) / np.maximum(cnt, 1) + 1 / 12
    sxy = np.bincount(lab, dx * dy, n + 1) / np.maximum(cnt, 1)
    tr, det = sxx + syy, sxx * syy - sxy * sxy
    disc = np.sqrt(np.maximum(tr * tr / 4 - det, 0))
    major, minor = tr / 2 + disc, np.maximum(tr / 2 - disc, 1e-3)
    ratio = np.sqrt(major / minor)
    length = np.sqrt(12 * major)
    keep = (ratio >= min_elongation) | (length >= min_size)
    keep[0] = False
    return keep[labels]


def find_linear_features(
    image: np.ndarray, config: LinearFeatureConfig, *, bad: np.ndarray | None = None
) -> list[tuple[float, float, float]]:
    """Trails in ``image`` as ``(theta, rho, half_width)`` in unbinned pixels.

    The line is ``x cos(theta) + y sin(theta) = rho`` (pixel centres at integers).
    """
    img = np.asarray(image, dtype=np.float64)
    if bad is not None:
        img = np.where(bad, np.nan, img)
    b = max(1, int(config.bin_factor))
    binned = _bin(np.nan_to_num(img - np.nanmedian(img)), b)
    sigma = 1.4826 * np.median(np.abs(binned - np.median(binned)))
    hot = binned > config.threshold * max(sigma, 1e-12)
    hot = _elongated(hot, config.min_elongation, config.min_length / b)
    lines: list[tuple[float, float, float]] = []
    thetas = np.linspace(0, np.pi, config.n_theta, endpoint=False)
    cos, sin = np.cos(thetas), np.sin(thetas)
    for _ in range(config.max_lines):
        yy, xx = np.nonzero(hot)
        if yy.size < config.min_length / b:
            break
        rho = np.rint(xx[:, None] * cos[None, :] + yy[:, None] * sin[None, :]).astype(np.int64)
        r_max = int(np.hypot(*hot.shape)) + 1
        acc = np.bincount(
            (np.arange(thetas.size)[None, :] * (2 * r_max + 1) + rho + r_max).ravel(),
            minlength=thetas.size * (2 * r_max + 1),
        )
        peak = int(np.argmax(acc))
        if acc[peak] < config.min_length / b:
            break
        t_idx, r_idx = divmod(peak, 2 * r_max + 1)
        theta, rho_b = float(thetas[t_idx]), float(r_idx - r_max)
        # refine in unbinned pixels: binned pixel (i) covers pixels b*i .. b*i+b-1, centre b*i+(b-1)/2
        rho_full = rho_b * b + (b - 1) / 2 * (np.cos(theta) + np.sin(theta))
        half = _half_width(img, theta, rho_full, config.max_half_width)
        lines.append((theta, rho_full, half))
        d = np.abs(xx * np.cos(theta) + yy * np.sin(theta) - rho_b)
        hot[yy[d <= half / b + 1.5], xx[d <= half / b + 1.5]] = False
    return lines


def _half_width(img: np.ndarray, theta: float, rho: float, max_half: float) -> float:
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    d = xx * np.cos(theta) + yy * np.sin(theta) - rho
    near = np.abs(d) < 3 * max_half
    vals, dist = img[near], np.abs(d[near])
    ok = np.isfinite(vals)
    vals, dist = vals[ok], dist[ok]
    bg = np.median(vals[dist > 2 * max_half]) if np.any(dist > 2 * max_half) else np.median(vals)
    bins = np.minimum(dist.astype(int), int(3 * max_half))
    cnt = np.bincount(bins)
    prof = np.bincount(bins, vals - bg) / np.maximum(cnt, 1)
    noise = 1.4826 * np.median(np.abs(vals - np.median(vals))) / np.sqrt(np.maximum(cnt, 1))
    above = np.flatnonzero(prof > 3 * noise)
    signal_edge = int(above[np.argmax(np.diff(np.r_[above, 10**9]) > 2)]) if above.size else 1
    return float(min(signal_edge + 2.0, max_half))


def line_mask(shape: tuple[int, int], lines: list[tuple[float, float, float]]) -> np.ndarray:
    """Boolean mask of the pixels within each line's half-width."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    out = np.zeros(shape, dtype=bool)
    for theta, rho, half in lines:
        out |= np.abs(xx * np.cos(theta) + yy * np.sin(theta) - rho) <= half
    return out

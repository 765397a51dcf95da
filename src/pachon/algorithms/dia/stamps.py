"""Vectorized stamp photometry on difference images: PSF and aperture fluxes, centroids, moments.

Every function works on a stack of sources at once: stamps are gathered with one fancy index
from a padded image, PSF models are shifted to the sub-pixel positions with one batched FFT.
"""

from __future__ import annotations

import logging
import math

import numpy as np

__all__ = [
    "adaptive_moments",
    "aperture_flux",
    "gather",
    "kernel_moments",
    "peak_centroid",
    "psf_fit",
    "shifted_psfs",
]

_log = logging.getLogger(__name__)


def gather(array: np.ndarray, x: np.ndarray, y: np.ndarray, half: int, fill: float = np.nan) -> np.ndarray:
    """Stamps ``(n, 2 half + 1, 2 half + 1)`` centred on integer array pixels ``(x, y)``; ``fill`` outside."""
    pad = np.pad(array, half + 1, mode="constant", constant_values=fill)
    off = np.arange(-half, half + 1)
    xi = np.asarray(x, int) + half + 1
    yi = np.asarray(y, int) + half + 1
    return pad[yi[:, None, None] + off[None, :, None], xi[:, None, None] + off[None, None, :]]


def shifted_psfs(kernel: np.ndarray, dx: np.ndarray, dy: np.ndarray, half: int) -> np.ndarray:
    """The PSF ``kernel`` shifted by ``(dx, dy)`` and cut (or padded) to ``2 half + 1``: ``(n, s, s)``."""
    k = kernel.shape[0]
    size = 2 * max(k, 2 * half + 1)
    pad = np.zeros((size, size))
    pad[:k, :k] = kernel
    pad = np.roll(pad, (-(k // 2), -(k // 2)), axis=(0, 1))
    f = np.fft.rfft2(pad)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    ramp = np.exp(
        -2j * np.pi * (fx[None] * np.asarray(dx)[:, None, None] + fy[None] * np.asarray(dy)[:, None, None])
    )
    img = np.fft.irfft2(f[None] * ramp, s=(size, size))
    img = np.roll(img, (half, half), axis=(1, 2))[:, : 2 * half + 1, : 2 * half + 1]
    return img


def psf_fit(
    stamps: np.ndarray, var: np.ndarray, psfs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Linear PSF flux fit per stamp: ``(flux, flux_err, chi2, n_data)``; NaN pixels are skipped."""
    good = np.isfinite(stamps) & np.isfinite(var) & (var > 0)
    w = np.where(good, 1.0 / np.where(good, var, 1.0), 0.0)
    d = np.where(good, stamps, 0.0)
    ppw = (psfs**2 * w).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        flux = (psfs * d * w).sum(axis=(1, 2)) / ppw
        err = 1.0 / np.sqrt(ppw)
        chi2 = ((d - flux[:, None, None] * psfs) ** 2 * w).sum(axis=(1, 2))
    return flux, err, chi2, good.sum(axis=(1, 2))


def aperture_flux(
    stamps: np.ndarray, var: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum within ``radius`` of the stamp centre: ``(flux, err, truncated)`` (NaN pixels: truncated)."""
    half = stamps.shape[-1] // 2
    off = np.arange(-half, half + 1)
    inside = (off[:, None] ** 2 + off[None, :] ** 2) <= radius**2
    good = np.isfinite(stamps) & np.isfinite(var)
    flux = np.where(good & inside, stamps, 0.0).sum(axis=(1, 2))
    err = np.sqrt(np.where(good & inside, var, 0.0).sum(axis=(1, 2)))
    truncated = (~good & inside).any(axis=(1, 2))
    return flux, err, truncated


def peak_centroid(score: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel peak of ``|score|`` by a 1-D parabola through 3 pixels on each axis (array pixels)."""
    s = np.abs(gather(score, x, y, 1, fill=0.0))
    c = s[:, 1, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = 0.5 * (s[:, 1, 2] - s[:, 1, 0]) / (2 * c - s[:, 1, 2] - s[:, 1, 0])
        dy = 0.5 * (s[:, 2, 1] - s[:, 0, 1]) / (2 * c - s[:, 2, 1] - s[:, 0, 1])
    dx = np.clip(np.nan_to_num(dx), -0.5, 0.5)
    dy = np.clip(np.nan_to_num(dy), -0.5, 0.5)
    return np.asarray(x) + dx, np.asarray(y) + dy


def adaptive_moments(
    stamps: np.ndarray, sigma0: float, n_iter: int = 12
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian-weighted (adaptive) second moments about the stamp centre: ``(ixx, iyy, ixy, ok)``.

    The weight is re-matched to the measured moments each iteration (Bernstein & Jarvis);
    the returned moments are twice the weighted ones (those of the object for a Gaussian).
    """
    n, s, _ = stamps.shape
    half = s // 2
    off = np.arange(-half, half + 1, dtype=float)
    yy, xx = np.meshgrid(off, off, indexing="ij")
    d = np.nan_to_num(stamps)
    ixx = np.full(n, sigma0**2)
    iyy = np.full(n, sigma0**2)
    ixy = np.zeros(n)
    ok = np.ones(n, bool)
    for _ in range(n_iter):
        det = ixx * iyy - ixy**2
        bad = ~(det > 1e-6)
        ok &= ~bad
        det = np.where(bad, sigma0**4, det)
        a, b, c = (
            np.where(bad, sigma0**2, iyy) / det,
            -np.where(bad, 0, ixy) / det,
            np.where(bad, sigma0**2, ixx) / det,
        )
        wgt = np.exp(
            -0.5 * (a[:, None, None] * xx**2 + 2 * b[:, None, None] * xx * yy + c[:, None, None] * yy**2)
        )
        norm = (wgt * d).sum(axis=(1, 2))
        ok &= norm > 0
        norm = np.where(norm > 0, norm, 1.0)
        mxx = 2 * (wgt * d * xx**2).sum(axis=(1, 2)) / norm
        myy = 2 * (wgt * d * yy**2).sum(axis=(1, 2)) / norm
        mxy = 2 * (wgt * d * xx * yy).sum(axis=(1, 2)) / norm
        ixx = np.clip(mxx, 0.1, (half / 1.5) ** 2)
        iyy = np.clip(myy, 0.1, (half / 1.5) ** 2)
        ixy = np.clip(mxy, -np.sqrt(ixx * iyy) * 0.95, np.sqrt(ixx * iyy) * 0.95)
    return ixx, iyy, ixy, ok


def kernel_moments(kernel: np.ndarray) -> tuple[float, float, float]:
    """Adaptive moments of a PSF kernel image."""
    sig = math.sqrt(0.5 * float(((np.indices(kernel.shape) - kernel.shape[0] // 2) ** 2 * kernel).sum()))
    ixx, iyy, ixy, _ = adaptive_moments(kernel[None], max(sig, 0.5))
    return float(ixx[0]), float(iyy[0]), float(ixy[0])

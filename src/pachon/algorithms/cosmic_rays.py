"""Cosmic-ray detection and repair: L.A.Cosmic (van Dokkum 2001) evaluated only where it can fire.

Cosmic rays are sharper than the PSF.  L.A.Cosmic finds them in the positive part of the
Laplacian of the 2x-subsampled image, normalized by the local noise (``S``), with the
large-scale structure removed (``S' = S - med5(S)``) and a fine-structure test
(the PSF-matched-filtered image minus its 7 x 7 median, as astroscrappy's
``fsmode='convolve'``) that protects undersampled star cores.  Evaluated over every pixel
(astroscrappy) the median filters dominate; here the Laplacian (a few array shifts) is computed
everywhere, but the medians and the matched filter only on small stamps around the pixels
whose ``S`` could pass with the *lowest* possible noise (a few percent of the image): the same
decisions, many times faster.  Flagged pixels get the ``CR`` mask plane and are replaced by the median of
their non-CR ``5 x 5`` neighbours (``INTRP`` plane too).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pachon.core.exposure import Exposure

__all__ = ["find_cosmic_rays", "laplacian_plus", "repair_cosmic_rays"]

_log = logging.getLogger(__name__)


def laplacian_plus(data: np.ndarray) -> np.ndarray:
    """L.A.Cosmic's Laplacian: of the 2x-subsampled image, negatives clipped, block-averaged back.

    A subsampled pixel in a corner of its block sees two neighbours of its own value and two
    from the adjacent pixels, so the result is the mean over the four corners of
    ``max(0, 2 v - v_vertical - v_horizontal)``.
    """
    p = np.pad(np.asarray(data, np.float32), 1, mode="edge")
    v = 2.0 * p[1:-1, 1:-1]
    up, down, left, right = p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]
    out = np.maximum(v - up - left, 0.0)
    out += np.maximum(v - up - right, 0.0)
    out += np.maximum(v - down - left, 0.0)
    out += np.maximum(v - down - right, 0.0)
    out *= 0.25
    return out


def _stamps(padded: np.ndarray, iy: np.ndarray, ix: np.ndarray, pad: int, h: int) -> np.ndarray:
    r = np.arange(-h, h + 1)
    return padded[iy[:, None, None] + pad + r[None, :, None], ix[:, None, None] + pad + r[None, None, :]]


def _sprime(
    padded: np.ndarray,
    lap_padded: np.ndarray,
    iy: np.ndarray,
    ix: np.ndarray,
    pad: int,
    gain: float,
    rn: float,
) -> tuple[np.ndarray, np.ndarray]:
    """L.A.Cosmic's ``S'`` and the local noise at pixels ``(iy, ix)`` (unpadded indices)."""
    n = len(iy)
    med5 = np.median(_stamps(padded, iy, ix, pad, 2).reshape(n, -1), axis=1)
    noise = np.sqrt(np.maximum(gain * med5, 0.0) + rn * rn) / gain
    lap = _stamps(lap_padded, iy, ix, pad, 2).reshape(n, -1)
    return (lap[:, 12] - np.median(lap, axis=1)) / (2.0 * noise), noise


def _fine_structure(
    padded: np.ndarray, iy: np.ndarray, ix: np.ndarray, pad: int, kernel: np.ndarray, noise: np.ndarray
) -> np.ndarray:
    """astroscrappy's matched-filter fine structure: PSF-filtered image minus its 7 x 7 median, / noise."""
    n, size = len(iy), len(kernel)
    if n == 0:
        return np.zeros(0)
    st = _stamps(padded, iy, ix, pad, 3 + size // 2)
    conv = sum(kernel[t] * st[:, :, t : t + 7] for t in range(size))  # along x: (n, S, 7)
    conv = sum(kernel[t] * conv[:, t : t + 7, :] for t in range(size))  # along y: (n, 7, 7)
    return (conv[:, 3, 3] - np.median(conv.reshape(n, -1), axis=1)) / noise


def _laplacian_at(padded: np.ndarray, iy: np.ndarray, ix: np.ndarray, pad: int) -> np.ndarray:
    """:func:`laplacian_plus` at pixels ``(iy, ix)`` only."""
    y, x = iy + pad, ix + pad
    v = 2.0 * padded[y, x]
    up, down, left, right = padded[y - 1, x], padded[y + 1, x], padded[y, x - 1], padded[y, x + 1]
    return 0.25 * (
        np.maximum(v - up - left, 0) + np.maximum(v - up - right, 0)
        + np.maximum(v - down - left, 0) + np.maximum(v - down - right, 0)
    )  # fmt: skip


def _neighbours(
    py: np.ndarray, px: np.ndarray, shape: tuple[int, int], reach: int
) -> tuple[np.ndarray, np.ndarray]:
    """Unique pixels within ``reach`` (Chebyshev distance) of ``(py, px)``, inside ``shape``."""
    r = np.arange(-reach, reach + 1)
    gy = (py[:, None, None] + r[None, :, None]).repeat(len(r), axis=2).ravel()
    gx = (px[:, None, None] + r[None, None, :]).repeat(len(r), axis=1).ravel()
    on = (gy >= 0) & (gy < shape[0]) & (gx >= 0) & (gx < shape[1])
    return np.divmod(np.unique(gy[on] * shape[1] + gx[on]), shape[1])


def find_cosmic_rays(
    image: np.ndarray,
    *,
    read_noise: float,
    gain: float = 1.0,
    sky: float = 0.0,
    psf_fwhm: float = 2.5,
    sigclip: float = 4.5,
    sigfrac: float = 0.3,
    objlim: float = 3.0,
    bad: np.ndarray | None = None,
    saturation: float = np.inf,
    n_iter: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean cosmic-ray mask and the cleaned image.

    Parameters
    ----------
    image
        Pixels (counts).
    sky
        The background already subtracted from the pixels, if any (the noise model needs the
        full level).
    read_noise, gain
        Read noise (e-) and gain (e-/count).
    psf_fwhm
        PSF FWHM (pixels): the Gaussian of the matched-filter fine-structure test.
    sigclip, sigfrac, objlim
        L.A.Cosmic's Laplacian threshold, the fraction of it for neighbouring pixels and the
        Laplacian-to-fine-structure contrast.
    bad
        Pixels never flagged (and never used to clean).
    saturation
        Saturation level (counts): pixels at or next to it are never flagged.
    n_iter
        Passes (the second finds pixels hidden by their neighbours' Laplacian).
    """
    data = np.asarray(image, np.float32) + np.float32(sky)
    shape = data.shape
    mask = np.zeros(shape, bool)
    protect = np.zeros(shape, bool) if bad is None else np.asarray(bad, bool).copy()
    if np.isfinite(saturation):
        from scipy import ndimage

        protect |= ndimage.binary_dilation(data >= saturation, iterations=1)
    sample = data[:: max(1, shape[0] // 64), :: max(1, shape[1] // 64)]
    floor_level = max(float(np.percentile(sample, 2.0)), 0.0)
    min_noise = np.sqrt(gain * floor_level + read_noise**2) / gain
    size = int(2 * round(1.5 * psf_fwhm) + 1) | 1
    g = np.exp(-0.5 * (np.arange(size) - size // 2) ** 2 / (psf_fwhm / 2.3548) ** 2)
    kernel = (g / g.sum()).astype(np.float32)
    pad = 3 + size // 2
    clean = data
    lap = laplacian_plus(clean)
    padded = np.pad(clean, pad, mode="reflect")
    lap_padded = np.pad(lap, pad, mode="reflect")
    # pass 1 looks everywhere; later passes only next to what was found (the only place a
    # Laplacian changes after cleaning)
    iy, ix = np.nonzero((lap > sigclip * 2.0 * min_noise) & ~protect)
    for it in range(n_iter):
        if len(iy) == 0:
            break
        sprime, noise = _sprime(padded, lap_padded, iy, ix, pad, gain, read_noise)
        sel = sprime > sigclip
        iy, ix, sprime, noise = iy[sel], ix[sel], sprime[sel], noise[sel]
        ratio = sprime / np.maximum(_fine_structure(padded, iy, ix, pad, kernel, noise), 0.01)
        new = np.zeros(shape, bool)
        new[iy[ratio > objlim], ix[ratio > objlim]] = True
        # grow: neighbours above sigclip, then their neighbours above sigfrac * sigclip
        for level in (sigclip, sigfrac * sigclip):
            gy, gx = _neighbours(*np.nonzero(new), shape, 1)
            lv = lap_padded[gy + pad, gx + pad]
            keep = ~new[gy, gx] & ~mask[gy, gx] & ~protect[gy, gx] & (lv > level * 2.0 * min_noise)
            gy, gx = gy[keep], gx[keep]
            if len(gy):
                sp, _ = _sprime(padded, lap_padded, gy, gx, pad, gain, read_noise)
                new[gy[sp > level], gx[sp > level]] = True
        n_new = int(new.sum())
        _log.debug("cosmic rays pass %d: %d candidates, %d pixels", it, len(iy), n_new)
        if n_new == 0:
            break
        mask |= new
        clean = _clean(clean, mask | protect, new)
        # refresh the padded image and the Laplacian around the cleaned pixels
        cy, cx = _neighbours(*np.nonzero(new), shape, 1)
        padded[cy + pad, cx + pad] = clean[cy, cx]
        ly, lx = _neighbours(cy, cx, shape, 1)
        lap_padded[ly + pad, lx + pad] = _laplacian_at(padded, ly, lx, pad)
        ny_, nx_ = _neighbours(ly, lx, shape, 2)
        above = lap_padded[ny_ + pad, nx_ + pad] > sigclip * 2.0 * min_noise
        keep = ~mask[ny_, nx_] & ~protect[ny_, nx_] & above
        iy, ix = ny_[keep], nx_[keep]
    return mask, clean - np.float32(sky)


def _clean(data: np.ndarray, excluded: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Replace ``targets`` by the median of the non-excluded pixels of their 5 x 5 neighbourhood."""
    out = data.copy()
    ty, tx = np.nonzero(targets)
    if len(ty) == 0:
        return out
    vals = np.pad(np.where(excluded, np.nan, data), 2, mode="constant", constant_values=np.nan)
    r = np.arange(-2, 3)
    st = vals[ty[:, None, None] + 2 + r[None, :, None], tx[:, None, None] + 2 + r[None, None, :]]
    st = st.reshape(len(ty), -1)
    n_ok = np.isfinite(st).sum(axis=1)
    st = np.sort(np.where(np.isfinite(st), st, np.inf), axis=1)
    rr = np.arange(len(ty))
    lo, hi = np.maximum((n_ok - 1) // 2, 0), np.maximum(n_ok // 2, 0)
    med = 0.5 * (st[rr, lo] + st[rr, hi])
    out[ty, tx] = np.where(n_ok > 0, med, data[ty, tx])
    return out


def repair_cosmic_rays(
    exposure: Exposure, *, read_noise: float, sky: float = 0.0, psf_fwhm: float = 2.5
) -> int:
    """Find cosmic rays on ``exposure`` (electrons), mask (CR, INTRP) and replace them; return the count."""
    known = [p for p in ("BAD", "SAT", "NO_DATA") if p in exposure.mask.planes]
    bad = exposure.mask.any(*known) if known else None
    mask, clean = find_cosmic_rays(exposure.image, read_noise=read_noise, sky=sky, psf_fwhm=psf_fwhm, bad=bad)
    exposure.mask.set("CR", mask)
    exposure.mask.set("INTRP", mask)
    exposure.image[mask] = clean[mask]
    from scipy import ndimage

    n = int(ndimage.label(mask, structure=np.ones((3, 3), bool))[1])
    _log.info("cosmic rays: %d events, %d pixels", n, int(mask.sum()))
    return n

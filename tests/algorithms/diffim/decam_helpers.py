"""Load the real DECam sfft pairs as Exposures (variance from gain and sky, PSF fitted on stars)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pachon.algorithms.dia.stamps import gather
from pachon.algorithms.diffim.al import find_kernel_candidates
from pachon.core.exposure import Exposure
from pachon.core.psf import ImagePsf
from pachon.core.wcs import wcs_from_header


def load_frame(path: Path) -> Exposure:
    from astropy.io import fits

    with fits.open(path) as hdus:
        image = hdus[0].data.astype(np.float64)
        header = hdus[0].header
    gain = float(header.get("GAIN", 4.0))
    mad = 1.4826 * np.median(np.abs(image - np.median(image)))
    variance = mad**2 + np.clip(image, 0, None) / gain
    exp = Exposure(image, variance=variance, wcs=wcs_from_header(header, name=path.name))
    exp.psf = estimate_psf(image, variance, sigma=float(header.get("FWHM", 4.0)) / 2.3548)
    return exp


def estimate_psf(image: np.ndarray, variance: np.ndarray, sigma: float, half: int = 12) -> ImagePsf:
    """Median of normalized, re-centred stamps of bright isolated stars."""
    bad = np.zeros(image.shape, bool)
    xs, ys = find_kernel_candidates(image, variance, bad, sigma, half, snr_min=30.0, max_stars=30)
    stamps = gather(image, xs, ys, half + 2, fill=0.0)
    yy, xx = np.mgrid[-half - 2 : half + 3, -half - 2 : half + 3]
    w = np.exp(-0.5 * (xx**2 + yy**2) / (2 * sigma) ** 2)
    tot = (stamps * w).sum(axis=(1, 2))
    cx = (stamps * w * xx).sum(axis=(1, 2)) / tot
    cy = (stamps * w * yy).sum(axis=(1, 2)) / tot
    from pachon.core.psf import shift_kernel

    shifted = np.array(
        [shift_kernel(s / s.sum(), -dx, -dy) for s, dx, dy in zip(stamps, cx, cy, strict=True)]
    )
    kernel = np.median(shifted, axis=0)[2:-2, 2:-2]
    return ImagePsf(np.clip(kernel, 0, None))

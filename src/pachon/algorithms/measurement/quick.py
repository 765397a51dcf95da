"""A bright-source catalogue of a bare image (no PSF, no variance plane yet): for blind astrometry.

Background, noise from the background meshes, matched-filter detection with a guessed PSF
width, windowed centroids and aperture fluxes, vectorized like the full measurement.
"""

from __future__ import annotations

import logging

import numpy as np

from pachon.algorithms.background import estimate_background
from pachon.algorithms.detection import detect_sources
from pachon.algorithms.measurement.shapes import windowed_centroid
from pachon.algorithms.measurement.stamps import extract_stamps

__all__ = ["quick_sources"]

_log = logging.getLogger(__name__)


def quick_sources(
    image: np.ndarray,
    *,
    psf_sigma: float = 1.5,
    threshold: float = 5.0,
    mesh_size: int = 64,
    saturation: float | None = None,
) -> dict[str, np.ndarray]:
    """Detect and centroid the sources of a bare image.

    Returns
    -------
    dict
        ``x, y`` (0-based pixels), ``flux`` (sum in a 3-sigma box, background-subtracted),
        ``significance`` and ``saturated``; brightest first.
    """
    data = np.asarray(image, dtype=np.float64)
    bkg = estimate_background(data, mesh_size=mesh_size)
    sub = data - bkg.image()
    variance = np.broadcast_to(np.asarray(bkg.rms, float).mean() ** 2, data.shape)
    det = detect_sources(sub, np.asarray(variance), psf_sigma, threshold=threshold, deblend=False)
    # refine the background with the sources masked
    bkg = estimate_background(data, mask=det.footprints > 0, mesh_size=mesh_size)
    sub = data - bkg.image()
    half = max(3, int(np.ceil(3 * psf_sigma)))
    ix, iy = det.x.astype(int), det.y.astype(int)
    cube, inside = extract_stamps(sub, ix, iy, half)
    dx, dy, ok = windowed_centroid(cube, psf_sigma, valid=inside)
    flux = np.where(inside, cube, 0.0).sum(axis=(1, 2))
    sat = np.zeros(len(ix), bool)
    if saturation is not None:
        sat = (extract_stamps(data, ix, iy, 1)[0] >= saturation).any(axis=(1, 2))
    order = np.argsort(-flux)
    keep = order[ok[order]]
    return {
        "x": (ix + dx)[keep],
        "y": (iy + dy)[keep],
        "flux": flux[keep],
        "significance": det.peak_significance[keep],
        "saturated": sat[keep],
    }

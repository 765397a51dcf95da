"""Cosmic-ray detection and repair with astroscrappy (van Dokkum's L.A.Cosmic, C implementation).

Cosmic rays are sharper than the PSF: L.A.Cosmic finds them in the Laplacian of the
subsampled image, with a fine-structure test that protects stars.  Flagged pixels get the
``CR`` mask plane and are replaced by the cleaned values (median of the neighbours), flagged
``INTRP`` too.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pachon.core.exposure import Exposure

__all__ = ["find_cosmic_rays", "repair_cosmic_rays"]

_log = logging.getLogger(__name__)


def find_cosmic_rays(
    image: np.ndarray,
    *,
    read_noise: float,
    gain: float = 1.0,
    sky: float = 0.0,
    psf_fwhm: float = 2.5,
    sigclip: float = 4.5,
    objlim: float = 3.0,
    bad: np.ndarray | None = None,
    saturation: float = np.inf,
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean cosmic-ray mask and the cleaned image.

    Parameters
    ----------
    image
        Pixels (counts).
    sky
        The background already subtracted from the pixels, if any (the
        noise model needs the full level).
    read_noise, gain
        Read noise (e-) and gain (e-/count).
    psf_fwhm
        PSF FWHM (pixels): the fine-structure kernel.
    sigclip, objlim
        L.A.Cosmic's Laplacian and fine-structure contrast thresholds.
    bad
        Pixels to ignore.
    saturation
        Saturation level (counts).
    """
    import astroscrappy

    data = np.ascontiguousarray(image, dtype=np.float32) + np.float32(sky)
    mask, clean = astroscrappy.detect_cosmics(
        data,
        inmask=None if bad is None else np.ascontiguousarray(bad, dtype=bool),
        sigclip=sigclip,
        objlim=objlim,
        gain=gain,
        readnoise=read_noise,
        satlevel=float(min(saturation, 1e30)),
        fsmode="convolve",
        psfmodel="gauss",
        psffwhm=psf_fwhm,
        psfsize=int(2 * round(1.5 * psf_fwhm) + 1) | 1,
        sepmed=True,
        cleantype="medmask",
        niter=3,
    )
    return np.asarray(mask, bool), np.asarray(clean, np.float32) - np.float32(sky)


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

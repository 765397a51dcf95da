"""Differential chromatic refraction (DCR): predicted dipoles of sources of extreme colour.

The atmosphere displaces a source towards the zenith by ``R = (n(lambda) - 1) tan z``
(plane-parallel atmosphere, Filippenko 1982), with ``z`` the zenith distance
(``sec z`` = airmass) and ``n - 1`` the refractivity of dry air at the effective wavelength
of the source in the band.  The refractivity is Edlén's (1953) formula for standard air
(15 C, 1013.25 hPa) scaled by ``(P / 1013.25) (288.15 / T)``; the defaults are Cerro Pachón
(744 hPa, 10 C); water vapour is neglected (a < 1 % change of the *differential* term).

PSF matching aligns the typical (kernel) star, so what is left in a difference image is the
refraction of a source *relative to the kernel stars*: with a source's effective wavelength
modelled as linear in colour, ``lambda_eff = lambda_0 + s (colour - colour_ref)`` (per-band
``lambda_0`` and slope ``s`` in :data:`BANDS`; colour is g - i),

``dR = [n(lambda_eff(colour)) - n(lambda_eff(colour_ref))] tan z``

along the bearing of the zenith, the parallactic angle ``q`` (east of north).  Between a
science exposure and a template (each with its airmass and parallactic angle; a coadded
template is described by the mean of its inputs, or airmass 1 for a DCR-free template) the
predicted offset of the source is ``d = dR_s (sin q_s, cos q_s) - dR_t (sin q_t, cos q_t)``
(east, north) in arcsec: a dipole from the template position (negative lobe) to the science
position (positive lobe).

:func:`measure_offset` measures that offset on a difference image (a dipole model
``D = F (P(x - d) - P(x))``) and :func:`shift_template_source` corrects it, moving the
source's PSF model in the template by the predicted offset before differencing.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from pachon.core.errors import ConfigError
from pachon.core.exposure import Exposure

__all__ = [
    "BANDS",
    "Observation",
    "dcr_offset",
    "dcr_shift",
    "effective_wavelength",
    "measure_offset",
    "offset_to_pixels",
    "refraction",
    "refractivity",
    "shift_template_source",
]

_log = logging.getLogger(__name__)

#: Per band: effective wavelength (nm) of a source of the reference colour, and its change
#: per magnitude of g - i colour (nm / mag): redder sources weigh the red side of the band.
BANDS: dict[str, tuple[float, float]] = {
    "u": (367.0, 4.0),
    "g": (482.0, 14.0),
    "r": (622.0, 9.0),
    "i": (755.0, 7.0),
    "z": (869.0, 5.0),
    "y": (971.0, 3.0),
}
#: Reference g - i colour: that of the typical kernel star.
COLOUR_REF = 1.0
_ARCSEC = 180.0 * 3600.0 / math.pi


@dataclass(frozen=True)
class Observation:
    """Where the atmosphere was for one exposure: ``airmass`` (sec z) and parallactic angle (deg)."""

    airmass: float
    parallactic_angle: float
    pressure_hpa: float = 744.0
    temperature_c: float = 10.0


def refractivity(
    wavelength_nm: np.ndarray | float, pressure_hpa: float = 744.0, temperature_c: float = 10.0
) -> np.ndarray:
    """``n - 1`` of dry air (Edlén 1953, scaled from 1013.25 hPa and 15 C)."""
    sigma2 = (1e3 / np.asarray(wavelength_nm, float)) ** 2  # (1/micron)^2
    n_std = 1e-6 * (64.328 + 29498.1 / (146.0 - sigma2) + 255.4 / (41.0 - sigma2))
    return n_std * (pressure_hpa / 1013.25) * (288.15 / (273.15 + temperature_c))


def refraction(wavelength_nm: np.ndarray | float, obs: Observation) -> np.ndarray:
    """Refraction ``(n - 1) tan z`` in arcsec (towards the zenith)."""
    if obs.airmass < 1.0:
        raise ConfigError(f"dcr: airmass must be >= 1, got {obs.airmass}")
    tan_z = math.tan(math.acos(1.0 / obs.airmass))
    return refractivity(wavelength_nm, obs.pressure_hpa, obs.temperature_c) * tan_z * _ARCSEC


def effective_wavelength(band: str, colour: np.ndarray | float) -> np.ndarray:
    """``lambda_0 + s (colour - COLOUR_REF)`` (nm) for ``band`` (a key of :data:`BANDS`)."""
    if band not in BANDS:
        raise ConfigError(f"dcr: no DCR coefficients for band {band!r}; known: {sorted(BANDS)}")
    lam0, slope = BANDS[band]
    return lam0 + slope * (np.asarray(colour, float) - COLOUR_REF)


def dcr_shift(band: str, colour: np.ndarray | float, obs: Observation) -> tuple[np.ndarray, np.ndarray]:
    """Refraction of a source relative to the reference colour: (east, north) arcsec."""
    d = refraction(effective_wavelength(band, colour), obs) - refraction(
        effective_wavelength(band, COLOUR_REF), obs
    )
    q = math.radians(obs.parallactic_angle)
    return d * math.sin(q), d * math.cos(q)


def dcr_offset(
    band: str, colour: np.ndarray | float, science: Observation, template: Observation
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted science-minus-template position of a source (east, north) in arcsec."""
    se, sn = dcr_shift(band, colour, science)
    te, tn = dcr_shift(band, colour, template)
    return se - te, sn - tn


def offset_to_pixels(
    exposure: Exposure, x: float, y: float, east: float, north: float
) -> tuple[float, float]:
    """Pixel offset at ``(x, y)`` of a sky offset (arcsec east, north), through the exposure's WCS."""
    if exposure.wcs is None:
        raise ConfigError("dcr.offset_to_pixels: the exposure has no WCS")
    ra, dec = exposure.pixel_to_sky(x, y)
    ra1 = ra + east / 3600.0 / math.cos(math.radians(float(dec)))
    x1, y1 = exposure.sky_to_pixel(ra1, dec + north / 3600.0)
    return float(x1) - x, float(y1) - y


def _psf_stamp(exposure: Exposure, half: int) -> np.ndarray:
    b = exposure.bbox
    k = exposure.psf.kernel_image(b.x0 + 0.5 * b.width, b.y0 + 0.5 * b.height)
    c = k.shape[0] // 2
    out = np.zeros((2 * half + 1, 2 * half + 1))
    h = min(c, half)
    out[half - h : half + h + 1, half - h : half + h + 1] = k[c - h : c + h + 1, c - h : c + h + 1]
    return out / out.sum()


def measure_offset(
    difference: Exposure, x: float, y: float, flux: float, *, half: int = 8
) -> tuple[float, float]:
    """Science-minus-template offset (pixels) of a source of ``flux`` from its dipole on ``difference``.

    Fits ``D = flux (P(x - d) - P(x))`` (``P`` the difference's PSF, shifted in Fourier space)
    for ``d`` by Gauss-Newton iterations on a stamp around ``(x, y)``, weighted by the variance.
    """
    if difference.psf is None:
        raise ConfigError("dcr.measure_offset: the difference exposure has no PSF")
    ix, iy = int(round(x)) - difference.xy0[0], int(round(y)) - difference.xy0[1]
    big = 2 * half
    p = _psf_stamp(difference, big)
    sl = np.s_[iy - half : iy + half + 1, ix - half : ix + half + 1]
    d, v = difference.image[sl].astype(float), difference.variance[sl].astype(float)
    ok = np.isfinite(d) & (v > 0)
    w = 1.0 / np.sqrt(v[ok])
    cut = np.s_[big - half : big + half + 1, big - half : big + half + 1]
    fp = np.fft.fft2(np.fft.ifftshift(p))
    ky = np.fft.fftfreq(p.shape[0])[:, None]
    kx = np.fft.fftfreq(p.shape[1])[None, :]
    p0 = p[cut]
    off = np.zeros(2)
    for _ in range(8):
        ph = fp * np.exp(-2j * np.pi * (kx * off[0] + ky * off[1]))
        ps = np.fft.fftshift(np.fft.ifft2(ph).real)
        gx = np.fft.fftshift(np.fft.ifft2(ph * 2j * np.pi * kx).real)  # d P(x - d) / d dx
        gy = np.fft.fftshift(np.fft.ifft2(ph * 2j * np.pi * ky).real)
        r = (d - flux * (ps[cut] - p0))[ok] * w
        jac = flux * np.stack([-gx[cut][ok], -gy[cut][ok]], axis=1) * w[:, None]
        step = np.linalg.lstsq(jac, r, rcond=None)[0]
        off += step
        if np.abs(step).max() < 1e-4:
            break
    return float(off[0]), float(off[1])


def _shifted_kernel(kernel: np.ndarray, dx: float, dy: float) -> np.ndarray:
    ky = np.fft.fftfreq(kernel.shape[0])[:, None]
    kx = np.fft.fftfreq(kernel.shape[1])[None, :]
    return np.fft.ifft2(np.fft.fft2(kernel) * np.exp(-2j * np.pi * (kx * dx + ky * dy))).real


def shift_template_source(
    template: Exposure, x: float, y: float, dx: float, dy: float, flux: float
) -> Exposure:
    """A copy of ``template`` with the source of ``flux`` at ``(x, y)`` moved by ``(dx, dy)`` pixels.

    The source's PSF model (the template's PSF, Fourier-shifted to the sub-pixel positions)
    is subtracted at ``(x, y)`` and added at ``(x + dx, y + dy)``: only the source moves, not
    its neighbours or the noise.  ``flux`` is its template flux (e.g. the DiaSource
    ``templateFlux`` in image counts).
    """
    if template.psf is None:
        raise ConfigError("dcr.shift_template_source: the template has no PSF")
    b = template.bbox
    kernel = np.pad(np.asarray(template.psf.kernel_image(x, y), float), 4)  # room for the shift
    half = kernel.shape[0] // 2
    ix, iy = int(round(x)) - b.x0, int(round(y)) - b.y0
    fx, fy = x - b.x0 - ix, y - b.y0 - iy
    model = flux * (_shifted_kernel(kernel, fx + dx, fy + dy) - _shifted_kernel(kernel, fx, fy))
    y0, y1, x0, x1 = iy - half, iy + half + 1, ix - half, ix + half + 1
    if y0 < 0 or x0 < 0 or y1 > b.height or x1 > b.width:
        raise ConfigError(f"dcr.shift_template_source: ({x}, {y}) is within {half} pixels of the edge")
    out = template.copy()
    out.image[y0:y1, x0:x1] += model.astype(out.image.dtype)
    return out

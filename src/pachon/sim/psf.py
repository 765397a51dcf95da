"""The PSF of a simulated visit: atmosphere (Kolmogorov or von Kármán) ⊗ a field-dependent optical term.

The optical term is a Gaussian whose width grows and whose tangential shear grows as the
square of the focal-plane radius (a simple stand-in for astigmatism and coma at the field
edge).  Profiles are GalSim objects in arcseconds along the detector's pixel axes.
"""

from __future__ import annotations

import logging
import math
from functools import cached_property
from typing import Any

import numpy as np

from pachon.sim.config import OpticsConfig

__all__ = ["VisitPsf", "BAND_WAVELENGTH_NM"]

log = logging.getLogger(__name__)

BAND_WAVELENGTH_NM = {"u": 367.0, "g": 482.0, "r": 622.0, "i": 755.0, "z": 869.0, "y": 971.0}


def _gsparams() -> Any:
    import galsim

    return galsim.GSParams(folding_threshold=5e-3, maxk_threshold=2e-3)


class VisitPsf:
    """PSF model of one visit over the focal plane.

    Parameters
    ----------
    seeing_fwhm
        Atmospheric FWHM (arcsec) of the visit.
    band
        Band (sets the wavelength of the von Kármán model).
    optics
        Optical-term parameters.
    field_radius_mm
        Focal-plane radius at which the optical term reaches its "edge" values.
    """

    def __init__(self, seeing_fwhm: float, band: str, optics: OpticsConfig, field_radius_mm: float) -> None:
        self.seeing_fwhm = float(seeing_fwhm)
        self.band = band
        self.optics = optics
        self.field_radius_mm = max(float(field_radius_mm), 1e-6)

    @cached_property
    def gsparams(self) -> Any:
        """GalSim accuracy parameters (relaxed a little for speed)."""
        return _gsparams()

    @cached_property
    def atmosphere(self) -> Any:
        """The atmospheric profile (GalSim object, unit flux)."""
        import galsim

        if self.optics.psf_model == "vonkarman":
            lam = BAND_WAVELENGTH_NM[self.band]
            r0 = 0.976 * lam * 1e-9 / math.radians(self.seeing_fwhm / 3600.0)
            return galsim.VonKarman(lam=lam, r0=r0, L0=self.optics.outer_scale_m, gsparams=self.gsparams)
        return galsim.Kolmogorov(fwhm=self.seeing_fwhm, gsparams=self.gsparams)

    def optical_terms(self, fx: float, fy: float) -> tuple[float, float, float]:
        """Optical Gaussian ``(sigma_arcsec, g1, g2)`` at focal-plane position ``(fx, fy)`` mm."""
        rho2 = (fx * fx + fy * fy) / self.field_radius_mm**2
        sigma = self.optics.optical_sigma_arcsec + self.optics.optical_sigma_edge_arcsec * rho2
        phi = math.atan2(fy, fx)
        g = self.optics.optical_shear_edge * rho2
        return sigma, -g * math.cos(2 * phi), -g * math.sin(2 * phi)

    def at(self, fx: float, fy: float) -> Any:
        """The PSF (GalSim object, unit flux, arcsec) at focal-plane position ``(fx, fy)`` mm."""
        import galsim

        sigma, g1, g2 = self.optical_terms(fx, fy)
        if sigma <= 0:
            return self.atmosphere
        optical = galsim.Gaussian(sigma=sigma, gsparams=self.gsparams).shear(g1=g1, g2=g2)
        return galsim.Convolve(self.atmosphere, optical, gsparams=self.gsparams)

    def fwhm_estimate(self, fx: float = 0.0, fy: float = 0.0) -> float:
        """Approximate total FWHM (arcsec) at a focal-plane position (quadrature sum)."""
        sigma, _, _ = self.optical_terms(fx, fy)
        return float(np.hypot(self.seeing_fwhm, 2.3548 * sigma))

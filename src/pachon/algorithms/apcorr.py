"""Aperture corrections: the ratio of a large-aperture flux to the PSF flux of stars.

PSF fluxes measure the light under the (finite) PSF model; a large aperture holds nearly all
of a star's light.  The ratio, fitted over the image as a low-order polynomial of position
with sigma clipping, scales PSF fluxes so that the two agree for stars.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from pachon.algorithms.psf.pixel_psf import poly_design
from pachon.core.errors import PachonError

__all__ = ["ApertureCorrection", "ApertureCorrectionError", "fit_aperture_correction"]

_log = logging.getLogger(__name__)


class ApertureCorrectionError(PachonError, RuntimeError):
    """Too few bright stars to measure an aperture correction."""


@dataclass
class ApertureCorrection:
    """A smooth aperture correction ``ap_flux / psf_flux`` over the image."""

    coefficients: np.ndarray
    order: int
    centre: tuple[float, float]
    scale: tuple[float, float]
    error: float
    n_stars: int

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The correction at positions ``(x, y)``."""
        u = (np.asarray(x, float) - self.centre[0]) / self.scale[0]
        v = (np.asarray(y, float) - self.centre[1]) / self.scale[1]
        return poly_design(u, v, self.order) @ self.coefficients

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (`from_dict` reads it back)."""
        return {"coefficients": [float(c) for c in self.coefficients], "order": int(self.order),
                "centre": [float(c) for c in self.centre], "scale": [float(c) for c in self.scale],
                "error": float(self.error), "n_stars": int(self.n_stars)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ApertureCorrection:
        """The correction written by `to_dict`."""
        return cls(np.asarray(d["coefficients"], float), int(d["order"]), (float(d["centre"][0]),
                   float(d["centre"][1])), (float(d["scale"][0]), float(d["scale"][1])), float(d["error"]),
                   int(d["n_stars"]))

    def apply(
        self, x: np.ndarray, y: np.ndarray, flux: np.ndarray, flux_err: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Corrected flux and error (the correction's own error added), and the correction."""
        c = self.evaluate(x, y)
        f = flux * c
        err = np.hypot(flux_err * c, flux * self.error)
        return f, err, c


def fit_aperture_correction(
    x: np.ndarray,
    y: np.ndarray,
    psf_flux: np.ndarray,
    ap_flux: np.ndarray,
    ap_flux_err: np.ndarray,
    *,
    order: int = 0,
    nsigma: float = 3.0,
    min_stars: int = 3,
    floor: float = 1e-3,
) -> ApertureCorrection:
    """Fit ``ap_flux / psf_flux`` of stars (pass only stars) as a polynomial of position.

    Parameters
    ----------
    x, y
        Star positions (pixels).
    psf_flux, ap_flux, ap_flux_err
        PSF flux, calibration-aperture flux and its error of each star.
    order
        Polynomial order in position (lowered when stars are few).
    nsigma
        Clipping threshold on error-normalized residuals.
    min_stars
        Fewest usable stars.
    floor
        Fractional error added in quadrature to every star's ratio, so that the brightest
        stars (tiny photon errors, but PSF-model and neighbour systematics) do not dominate.
    """
    x, y, pf, af, ae = (np.asarray(a, float) for a in (x, y, psf_flux, ap_flux, ap_flux_err))
    ok = (pf > 0) & (af > 0) & np.isfinite(ae)
    if ok.sum() < min_stars:
        raise ApertureCorrectionError(
            f"aperture correction: {int(ok.sum())} usable star(s), need {min_stars}; lower the S/N cut"
        )
    while order > 0 and ok.sum() < 4 * len(poly_design(np.zeros(1), np.zeros(1), order)[0]):
        order -= 1
    ratio = np.where(ok, af / np.where(pf > 0, pf, 1.0), np.nan)
    sig = np.where(ok, ae / np.where(pf > 0, pf, 1.0), np.inf)
    sig = np.hypot(sig, floor)
    w = 1.0 / sig**2
    centre = (float(np.mean(x[ok])), float(np.mean(y[ok])))
    scale = (max(float(np.ptp(x[ok])) / 2, 1.0), max(float(np.ptp(y[ok])) / 2, 1.0))
    design = poly_design((x - centre[0]) / scale[0], (y - centre[1]) / scale[1], order)
    # start from the median ratio so that one bright outlier cannot drag the first fit
    coef = np.zeros(design.shape[1])
    coef[0] = float(np.median(ratio[ok]))
    used = ok.copy()
    stretch = 1.0
    for _ in range(10):
        z = (ratio - design @ coef) / sig
        # clip on normalized residuals, widened when the stars scatter more than their errors
        stretch = max(1.0, 1.4826 * float(np.median(np.abs(z[used]))))
        new = ok & (np.abs(z) < nsigma * stretch)
        if new.sum() < min_stars:
            break
        used = new
        sw = np.sqrt(w[used])
        coef = np.linalg.lstsq(design[used] * sw[:, None], ratio[used] * sw, rcond=None)[0]
    err = float(stretch / np.sqrt(np.sum(w[used])))
    _log.info("aperture correction: %.4f (order %d, %d stars)", float(coef[0]), order, int(used.sum()))
    return ApertureCorrection(coef, order, centre, scale, err, int(used.sum()))

"""A full-visit PSF model: an atmospheric part common to the focal plane and an optical part varying over it.

Per detector, a PSF model fitted from a few dozen stars cannot follow the optics' variation
(the PSF of a wide-field camera grows and shears towards the field edge); the atmosphere, on
the other hand, is the same for every detector of a visit.  :func:`fit_visit_psf` therefore
fits the stars of *all* detectors of a visit at once, as a pixel basis whose every pixel is a
polynomial in focal-plane position (mm, through each detector's pixel → focal-plane transform):

* the **atmospheric** component is the field-constant kernel (the polynomial's constant term,
  the PSF at the optical axis);
* the **optical** component is the field-dependent remainder (the higher terms: an order-2
  polynomial in focal-plane position holds the ``r²`` growth of size, ``u² - v²`` and ``2uv``
  shears of astigmatism).

The order kept is decided by the same χ² test as the per-detector fit.  :meth:`VisitPsfModel.
for_detector` turns the model into a :class:`PixelBasisPsf` in one detector's pixel
coordinates (exact for an affine pixel → focal-plane map), which is what measurement uses and
what persists with the calexp.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pachon.algorithms.psf.fit import PsfFitError, fit_psf_stamps, star_stamps
from pachon.algorithms.psf.pixel_psf import PixelBasisPsf, monomials, poly_design

__all__ = ["VisitPsfModel", "VisitStars", "fit_visit_psf"]

_log = logging.getLogger(__name__)


@dataclass
class VisitStars:
    """The PSF stars of one detector of a visit (array pixel coordinates of ``image``)."""

    detector: Any
    image: np.ndarray
    variance: np.ndarray
    x: np.ndarray
    y: np.ndarray
    bad: np.ndarray | None = None
    xy0: tuple[int, int] = (0, 0)


@dataclass
class VisitPsfModel:
    """Pixel-basis PSF over a visit's focal plane.

    Attributes
    ----------
    coefficients
        ``(n_terms, size, size)``: the polynomial terms in ``u = fx / half_size``,
        ``v = fy / half_size`` (focal-plane mm about ``centre``).
    order
        Polynomial order kept by the fit.
    centre, half_size
        Focal-plane normalization (mm).
    n_stars
        Stars used, over all detectors.
    """

    coefficients: np.ndarray
    order: int
    centre: tuple[float, float]
    half_size: float
    n_stars: int = 0

    @property
    def atmosphere(self) -> np.ndarray:
        """The field-constant component (normalized kernel at the focal-plane centre)."""
        k = self.coefficients[0]
        return k / k.sum()

    @property
    def optical(self) -> np.ndarray:
        """The field-dependent terms ``(n_terms - 1, size, size)`` (the optics' variation)."""
        return self.coefficients[1:]

    def kernels(self, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
        """Normalized kernels ``(n, size, size)`` at focal-plane positions ``(fx, fy)`` (mm)."""
        u = (np.asarray(fx, float) - self.centre[0]) / self.half_size
        v = (np.asarray(fy, float) - self.centre[1]) / self.half_size
        k = np.einsum("nt,tij->nij", poly_design(u, v, self.order), self.coefficients)
        return k / k.sum(axis=(1, 2), keepdims=True)

    def for_detector(
        self, detector: Any, width: int, height: int, xy0: tuple[int, int] = (0, 0)
    ) -> PixelBasisPsf:
        """The model on one detector as a :class:`PixelBasisPsf` in its parent pixel coordinates.

        The kernels on a grid of the detector's pixels are refitted as a polynomial of the same
        order in pixel position (exact when the pixel → focal-plane map is affine).
        """
        gx, gy = np.meshgrid(np.linspace(0, width - 1, 7), np.linspace(0, height - 1, 7))
        gx, gy = gx.ravel() + xy0[0], gy.ravel() + xy0[1]
        fx, fy = detector.pixel_to_focal_plane(gx - xy0[0], gy - xy0[1])
        k = self.kernels(fx, fy)
        centre = (xy0[0] + (width - 1) / 2.0, xy0[1] + (height - 1) / 2.0)
        scale = (max((width - 1) / 2.0, 1.0), max((height - 1) / 2.0, 1.0))
        design = poly_design((gx - centre[0]) / scale[0], (gy - centre[1]) / scale[1], self.order)
        coef, *_ = np.linalg.lstsq(design, k.reshape(len(gx), -1), rcond=None)
        return PixelBasisPsf(
            coef.reshape(len(monomials(self.order)), *k.shape[1:]), self.order, centre, scale
        )


def fit_visit_psf(
    stars: Sequence[VisitStars], *, size: int = 25, order: int = 2, n_iter: int = 3, reject: float = 4.0
) -> VisitPsfModel:
    """Fit one PSF model to the stars of every detector of a visit.

    Parameters
    ----------
    stars
        One :class:`VisitStars` per detector (its pixels, variance, star centroids and the
        instrument ``Detector`` whose ``pixel_to_focal_plane`` places them).
    size
        Kernel width (odd pixels).
    order
        Highest polynomial order in focal-plane position (the fit keeps a lower one when the
        stars do not demand it).
    n_iter, reject
        Star rejection passes and threshold (robust sigma of the stars' χ²).

    Raises
    ------
    PsfFitError
        Fewer than three usable stars over the whole visit.
    """
    parts = [s for s in stars if len(s.x)]
    if sum(len(s.x) for s in parts) < 3:
        raise PsfFitError(
            f"fit_visit_psf: {sum(len(s.x) for s in parts)} PSF star(s) over {len(stars)} detector(s); "
            "need at least 3 (check the detections of this visit)"
        )
    shifted, pix_var, flux, fx, fy = [], [], [], [], []
    for s in parts:
        sh, pv, fl = star_stamps(s.image, s.variance, s.x, s.y, size, s.bad)
        f = s.detector.pixel_to_focal_plane(np.asarray(s.x, float), np.asarray(s.y, float))
        shifted.append(sh)
        pix_var.append(pv)
        flux.append(fl)
        fx.append(np.asarray(f[0], float))
        fy.append(np.asarray(f[1], float))
    sh, pv, fl = np.concatenate(shifted), np.concatenate(pix_var), np.concatenate(flux)
    fxa, fya = np.concatenate(fx), np.concatenate(fy)
    centre = (0.0, 0.0)  # the optical axis: the optics' terms are polynomials about it
    half = max(float(np.max(np.hypot(fxa, fya))), 1e-6)
    used = (fl > 0) & np.isfinite(pv).all(axis=(1, 2))
    coef, order_used, used, _, _ = fit_psf_stamps(
        sh, pv, fl, used, fxa, fya, centre, (half, half), order=order, n_iter=n_iter, reject=reject
    )
    _log.info("visit PSF: %d stars on %d detectors, order %d", int(used.sum()), len(parts), order_used)
    return VisitPsfModel(coef, order_used, centre, half, int(used.sum()))

"""The Digitized Sky Survey (DSS) plate solution: a plate polynomial that astropy/WCSLIB cannot read.

A DSS scan header carries the plate centre (``PLTRAH/PLTRAM/PLTRAS``, ``PLTDECSN/PLTDECD/
PLTDECM/PLTDECS``), the scan geometry (``CNPIX1/2``: the corner of the extracted image in
plate pixels; ``XPIXELSZ/YPIXELSZ``: the pixel size in microns; ``PPO3/PPO6``: the plate
centre in microns) and two polynomials ``AMDX1..20`` and ``AMDY1..20`` that give the standard
coordinates (arcsec) about the plate centre as functions of the plate position in mm.

With ``(x, y)`` the 0-based pixel of the extracted image, the plate position in mm is
``X = (PPO3 - XPIXELSZ (x + CNPIX1 + 0.5)) / 1000`` and ``Y = (YPIXELSZ (y + CNPIX2 + 0.5) -
PPO6) / 1000`` (the ``+ 0.5`` puts plate pixel ``i`` at the centre of its scan cell; plate x
runs against RA, hence the sign).  With ``r2 = X^2 + Y^2``::

    xi  = A1 X + A2 Y + A3 + A4 X^2 + A5 X Y + A6 Y^2 + A7 r2 + A8 X^3 + A9 X^2 Y
          + A10 X Y^2 + A11 Y^3 + A12 X r2 + A13 X r2^2
    eta = B1 Y + B2 X + B3 + B4 Y^2 + B5 X Y + B6 X^2 + B7 r2 + B8 Y^3 + B9 Y^2 X
          + B10 Y X^2 + B11 X^3 + B12 Y r2 + B13 Y r2^2

(coefficients 14-20 are magnitude and colour terms, zero for astrometry of an image).  The
standard coordinates are deprojected gnomonically about the plate centre.  The inverse
(sky to pixel) is solved by Newton iteration.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pachon.algorithms.astrometry.sip import fit_tan_sip, gnomonic, inverse_gnomonic
from pachon.core.errors import AlgorithmError

if TYPE_CHECKING:
    from astropy.wcs import WCS

__all__ = ["DssPlateSolution", "DssHeaderError", "dss_to_tan_sip"]

_log = logging.getLogger(__name__)

_N_GEOM = 13  # position terms of each polynomial (14-20: magnitude and colour)


class DssHeaderError(AlgorithmError):
    """A header lacks (or has unusable) DSS plate-solution keywords."""


def _terms(xmm: np.ndarray, ymm: np.ndarray) -> np.ndarray:
    """The 13 position terms of the xi polynomial ``(13, ...)``; eta uses them with X and Y swapped."""
    r2 = xmm * xmm + ymm * ymm
    one = np.ones_like(xmm)
    return np.stack(
        [
            xmm, ymm, one, xmm**2, xmm * ymm, ymm**2, r2, xmm**3, xmm**2 * ymm, xmm * ymm**2,
            ymm**3, xmm * r2, xmm * r2 * r2,
        ]
    )  # fmt: skip


@dataclass(frozen=True)
class DssPlateSolution:
    """A DSS plate solution (see the module docstring for the model).

    Attributes
    ----------
    ra0, dec0
        Plate centre (deg).
    amdx, amdy
        The 13 position coefficients of each polynomial (arcsec per mm^k).
    ppo3, ppo6
        Plate centre on the scan (microns).
    pixel_size
        ``(XPIXELSZ, YPIXELSZ)`` in microns.
    corner
        ``(CNPIX1, CNPIX2)``: plate pixel of this image's first pixel.
    """

    ra0: float
    dec0: float
    amdx: np.ndarray
    amdy: np.ndarray
    ppo3: float
    ppo6: float
    pixel_size: tuple[float, float]
    corner: tuple[float, float]

    @classmethod
    def from_header(cls, header: Mapping[str, Any], *, name: str = "header") -> DssPlateSolution:
        """Read the plate solution from a DSS FITS header (``name`` appears in errors)."""
        needed = ["PLTRAH", "PLTRAM", "PLTRAS", "PLTDECD", "PLTDECM", "PLTDECS", "PPO3", "PPO6",
                  "XPIXELSZ", "YPIXELSZ", "AMDX1", "AMDY1"]  # fmt: skip
        missing = [k for k in needed if k not in header]
        if missing:
            raise DssHeaderError(
                f"{name}: not a DSS plate solution, missing {', '.join(missing)}; use a FITS WCS instead"
            )
        ra0 = 15.0 * (float(header["PLTRAH"]) + float(header["PLTRAM"]) / 60 + float(header["PLTRAS"]) / 3600)
        sign = -1.0 if str(header.get("PLTDECSN", "+")).strip().startswith("-") else 1.0
        dec0 = sign * (
            abs(float(header["PLTDECD"])) + float(header["PLTDECM"]) / 60 + float(header["PLTDECS"]) / 3600
        )
        amdx = np.array([float(header.get(f"AMDX{k}", 0.0)) for k in range(1, _N_GEOM + 1)])
        amdy = np.array([float(header.get(f"AMDY{k}", 0.0)) for k in range(1, _N_GEOM + 1)])
        if amdx[0] * amdy[0] - amdx[1] * amdy[1] == 0.0:
            raise DssHeaderError(f"{name}: AMDX1/AMDX2/AMDY1/AMDY2 give a singular plate solution")
        colour = [k for k in range(_N_GEOM + 1, 21) for p in "XY" if float(header.get(f"AMD{p}{k}", 0.0))]
        if colour:
            _log.info("%s: DSS magnitude/colour terms ignored (evaluated at zero)", name)
        sx, sy = float(header["XPIXELSZ"]), float(header["YPIXELSZ"])
        corner = (float(header.get("CNPIX1", 0.0)), float(header.get("CNPIX2", 0.0)))
        return cls(ra0, dec0, amdx, amdy, float(header["PPO3"]), float(header["PPO6"]), (sx, sy), corner)

    # -- plate geometry ---------------------------------------------------------------------
    def pixel_to_plate(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Plate position (mm from the plate centre) of 0-based image pixels."""
        px = np.asarray(x, float) + self.corner[0] + 0.5
        py = np.asarray(y, float) + self.corner[1] + 0.5
        return (self.ppo3 - self.pixel_size[0] * px) / 1000.0, (self.pixel_size[1] * py - self.ppo6) / 1000.0

    def plate_to_pixel(self, xmm: np.ndarray, ymm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """0-based image pixels of plate positions (mm)."""
        px = (self.ppo3 - 1000.0 * np.asarray(xmm, float)) / self.pixel_size[0]
        py = (1000.0 * np.asarray(ymm, float) + self.ppo6) / self.pixel_size[1]
        return px - self.corner[0] - 0.5, py - self.corner[1] - 0.5

    def plate_to_standard(self, xmm: np.ndarray, ymm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Standard coordinates ``(xi, eta)`` in arcsec of plate positions (mm)."""
        xmm, ymm = np.asarray(xmm, float), np.asarray(ymm, float)
        xi = np.tensordot(self.amdx, _terms(xmm, ymm), axes=1)
        eta = np.tensordot(self.amdy, _terms(ymm, xmm), axes=1)
        return xi, eta

    # -- pixel <-> sky ----------------------------------------------------------------------
    def pixel_to_world(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(ra, dec)`` in deg of 0-based pixel positions."""
        xi, eta = self.plate_to_standard(*self.pixel_to_plate(x, y))
        return inverse_gnomonic(xi / 3600.0, eta / 3600.0, self.ra0, self.dec0)

    def world_to_pixel(
        self, ra: np.ndarray, dec: np.ndarray, *, tolerance: float = 1e-6, max_iter: int = 20
    ) -> tuple[np.ndarray, np.ndarray]:
        """0-based pixel positions of ``(ra, dec)`` (deg), by Newton iteration on the plate polynomial.

        ``tolerance`` is in mm on the plate (1e-6 mm is ~4e-5 pixel).
        """
        xi, eta = gnomonic(ra, dec, self.ra0, self.dec0)
        xi, eta = np.asarray(xi, float) * 3600.0, np.asarray(eta, float) * 3600.0
        # start from the linear terms
        lin = np.array([[self.amdx[0], self.amdx[1]], [self.amdy[1], self.amdy[0]]])
        rhs = np.stack([xi - self.amdx[2], eta - self.amdy[2]])
        sol = np.linalg.solve(lin, rhs.reshape(2, -1)).reshape(rhs.shape)
        xmm, ymm = sol[0], sol[1]
        h = 1e-4
        for _ in range(max_iter):
            f_xi, f_eta = self.plate_to_standard(xmm, ymm)
            dx_xi, dx_eta = self.plate_to_standard(xmm + h, ymm)
            dy_xi, dy_eta = self.plate_to_standard(xmm, ymm + h)
            j11, j12 = (dx_xi - f_xi) / h, (dy_xi - f_xi) / h
            j21, j22 = (dx_eta - f_eta) / h, (dy_eta - f_eta) / h
            r1, r2 = xi - f_xi, eta - f_eta
            det = j11 * j22 - j12 * j21
            step_x = (j22 * r1 - j12 * r2) / det
            step_y = (j11 * r2 - j21 * r1) / det
            xmm, ymm = xmm + step_x, ymm + step_y
            biggest = np.nanmax(np.abs(np.concatenate([np.ravel(step_x), np.ravel(step_y)])), initial=0.0)
            if biggest < tolerance:
                break
        return self.plate_to_pixel(xmm, ymm)


def dss_to_tan_sip(solution: DssPlateSolution, shape: tuple[int, int], *, order: int = 3) -> WCS:
    """A FITS TAN-SIP WCS (0-based pixels, astropy) approximating ``solution`` over an image of ``shape``.

    Fitted on a 30 x 30 grid of pixels; at ``order`` 3 the approximation error is far below
    the plate solution's own accuracy for a DSS extraction of a few thousand pixels.
    """
    ny, nx = shape
    gy, gx = np.mgrid[0 : ny - 1 : 30j, 0 : nx - 1 : 30j]
    ra, dec = solution.pixel_to_world(gx.ravel(), gy.ravel())
    return fit_tan_sip(
        gx.ravel(), gy.ravel(), ra, dec, crpix=((nx - 1) / 2.0, (ny - 1) / 2.0), order=order, shape=shape
    )

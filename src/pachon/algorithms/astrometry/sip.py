"""Fitting a TAN-SIP WCS to matched pixel and sky positions.

Sky positions are projected gnomonically about ``CRVAL`` to standard coordinates
``(xi, eta)`` (deg); each is fitted as a polynomial of the pixel offsets from ``CRPIX``.  The
constant terms move ``CRVAL`` (iterated), the linear terms are the CD matrix and the higher
terms, through ``CD^-1``, the SIP ``A``/``B`` coefficients.  The inverse ``AP``/``BP`` are fitted
on a grid over the image so that ``world_to_pixel`` is accurate too.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from pachon.algorithms.astrometry.matching import AstrometryError
from pachon.algorithms.psf.pixel_psf import monomials, poly_design

if TYPE_CHECKING:
    from astropy.wcs import WCS

__all__ = ["fit_tan_sip", "gnomonic", "inverse_gnomonic"]

_log = logging.getLogger(__name__)


def gnomonic(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """Standard coordinates ``(xi, eta)`` (deg) of ``(ra, dec)`` about ``(ra0, dec0)``."""
    ra, dec = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    a0, d0 = np.radians(ra0), np.radians(dec0)
    cosc = np.sin(d0) * np.sin(dec) + np.cos(d0) * np.cos(dec) * np.cos(ra - a0)
    xi = np.cos(dec) * np.sin(ra - a0) / cosc
    eta = (np.cos(d0) * np.sin(dec) - np.sin(d0) * np.cos(dec) * np.cos(ra - a0)) / cosc
    return np.degrees(xi), np.degrees(eta)


def inverse_gnomonic(
    xi: np.ndarray, eta: np.ndarray, ra0: float, dec0: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sky position (deg) of standard coordinates ``(xi, eta)`` (deg) about ``(ra0, dec0)``."""
    x, y = np.radians(np.asarray(xi, float)), np.radians(np.asarray(eta, float))
    a0, d0 = np.radians(ra0), np.radians(dec0)
    rho = np.hypot(x, y)
    c = np.arctan(rho)
    with np.errstate(invalid="ignore", divide="ignore"):
        dec = np.arcsin(
            np.cos(c) * np.sin(d0)
            + np.where(rho > 0, y * np.sin(c) * np.cos(d0) / np.where(rho > 0, rho, 1), 0)
        )
    ra = a0 + np.arctan2(x * np.sin(c), rho * np.cos(d0) * np.cos(c) - y * np.sin(d0) * np.sin(c))
    return np.degrees(ra) % 360.0, np.degrees(dec)


def fit_tan_sip(
    x: np.ndarray,
    y: np.ndarray,
    ra: np.ndarray,
    dec: np.ndarray,
    *,
    crpix: tuple[float, float],
    order: int = 2,
    shape: tuple[int, int] | None = None,
    weights: np.ndarray | None = None,
) -> WCS:
    """Fit a TAN (``order`` 1) or TAN-SIP WCS, in 0-based pixel coordinates.

    Parameters
    ----------
    x, y
        Pixel positions of the matched sources.
    ra, dec
        Their reference sky positions (deg).
    crpix
        Reference pixel (0-based), usually the image centre.
    order
        Total polynomial order (1: pure TAN; 2-4: with SIP distortion).
    shape
        Image shape ``(ny, nx)``, for the inverse SIP grid (defaults to the sources' extent).
    weights
        Relative weights of the pairs.
    """
    from astropy.wcs import WCS, Sip

    x, y, ra, dec = (np.asarray(a, float) for a in (x, y, ra, dec))
    n_terms = len(monomials(order))
    if len(x) < n_terms + 2:
        raise AstrometryError(
            f"fit_tan_sip: {len(x)} matched stars cannot constrain an order-{order} fit ({n_terms} "
            "terms per axis); lower sip_order or match more stars"
        )
    w = np.ones(len(x)) if weights is None else np.asarray(weights, float)
    u, v = x - crpix[0], y - crpix[1]
    scale = max(np.max(np.abs(u)), np.max(np.abs(v)), 1.0)
    design = poly_design(u / scale, v / scale, order)
    sw = np.sqrt(w)[:, None]
    ra0 = float(np.degrees(np.arctan2(np.mean(np.sin(np.radians(ra))), np.mean(np.cos(np.radians(ra))))))
    dec0 = float(np.mean(dec))
    for _ in range(4):
        xi, eta = gnomonic(ra, dec, ra0, dec0)
        cx = np.linalg.lstsq(design * sw, xi * sw[:, 0], rcond=None)[0]
        cy = np.linalg.lstsq(design * sw, eta * sw[:, 0], rcond=None)[0]
        ra0, dec0 = (float(c) for c in inverse_gnomonic(cx[0], cy[0], ra0, dec0))
    xi, eta = gnomonic(ra, dec, ra0, dec0)
    cx = np.linalg.lstsq(design * sw, xi * sw[:, 0], rcond=None)[0]
    cy = np.linalg.lstsq(design * sw, eta * sw[:, 0], rcond=None)[0]
    terms = monomials(order)
    # unscale: coefficient of u^i v^j is c / scale^(i+j)
    fac = np.array([scale ** -(i + j) for i, j in terms])
    cx, cy = cx * fac, cy * fac
    cd = np.array([[cx[1], cx[2]], [cy[1], cy[2]]])  # terms[1] = (1, 0), terms[2] = (0, 1)
    wcs = WCS(naxis=2)
    wcs.wcs.crpix = [crpix[0] + 1.0, crpix[1] + 1.0]
    wcs.wcs.cd = cd
    wcs.wcs.radesys = "ICRS"
    if order < 2:
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [float(c) for c in inverse_gnomonic(cx[0], cy[0], ra0, dec0)]
        wcs.wcs.set()
        return wcs
    cdinv = np.linalg.inv(cd)
    a = np.zeros((order + 1, order + 1))
    b = np.zeros((order + 1, order + 1))
    for k, (i, j) in enumerate(terms):
        if i + j >= 2:
            a[i, j], b[i, j] = cdinv @ np.array([cx[k], cy[k]])
    # the iteration above drove the constant terms to ~0: CRVAL is the tangent point
    crval = inverse_gnomonic(cx[0], cy[0], ra0, dec0)
    ny, nx = shape if shape is not None else (int(np.ptp(y)) + 1, int(np.ptp(x)) + 1)
    gy, gx = np.mgrid[0 : ny : complex(0, 25), 0 : nx : complex(0, 25)]
    gu, gv = gx.ravel() - crpix[0], gy.ravel() - crpix[1]
    f = sum(a[i, j] * gu**i * gv**j for i, j in terms if i + j >= 2)
    g = sum(b[i, j] * gu**i * gv**j for i, j in terms if i + j >= 2)
    uu, vv = gu + f, gv + g
    inv_order = order + 1
    iterms = monomials(inv_order)
    iscale = max(np.max(np.abs(uu)), np.max(np.abs(vv)), 1.0)
    idesign = poly_design(uu / iscale, vv / iscale, inv_order)
    pa = np.linalg.lstsq(idesign, gu - uu, rcond=None)[0]
    pb = np.linalg.lstsq(idesign, gv - vv, rcond=None)[0]
    ap = np.zeros((inv_order + 1, inv_order + 1))
    bp = np.zeros((inv_order + 1, inv_order + 1))
    for k, (i, j) in enumerate(iterms):
        ap[i, j] = pa[k] / iscale ** (i + j)
        bp[i, j] = pb[k] / iscale ** (i + j)
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    wcs.wcs.crval = [float(crval[0]) % 360.0, float(crval[1])]
    wcs.sip = Sip(a, b, ap, bp, wcs.wcs.crpix)
    wcs.wcs.set()
    return wcs

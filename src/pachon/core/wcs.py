"""Helpers for celestial WCSs (FITS TAN and TAN-SIP through ``astropy.wcs``).

Pachón WCSs are expressed in *parent* pixel coordinates, 0-based, as ``astropy.wcs.WCS``
``pixel_to_world`` uses them.  A FITS file stores the WCS of its own pixel grid, so writers
shift the WCS by the array origin (``xy0``) and readers shift it back: :func:`shift_wcs`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from pachon.core.errors import ConfigError, FormatError

if TYPE_CHECKING:
    from astropy.io import fits
    from astropy.wcs import WCS, Sip

__all__ = ["make_tan_wcs", "shift_wcs", "wcs_from_header", "wcs_to_header"]

_log = logging.getLogger(__name__)


def _make_sip(sip: Sip | Mapping[str, Any], crpix: np.ndarray) -> Sip:
    from astropy.wcs import Sip

    if isinstance(sip, Sip):
        a, b, ap, bp = sip.a, sip.b, sip.ap, sip.bp
    else:
        unknown = set(sip) - {"a", "b", "ap", "bp"}
        if unknown or "a" not in sip or "b" not in sip:
            raise ConfigError(
                "sip must hold 'a' and 'b' (and optionally 'ap', 'bp') coefficient arrays, "
                f"got keys {sorted(sip)}"
            )
        a, b, ap, bp = (
            None if sip.get(k) is None else np.asarray(sip[k], float) for k in ("a", "b", "ap", "bp")
        )
    for name, arr in (("a", a), ("b", b), ("ap", ap), ("bp", bp)):
        if arr is not None and (arr.ndim != 2 or arr.shape[0] != arr.shape[1]):
            raise ConfigError(f"SIP {name!r} coefficients must be a square (order+1)x(order+1) array")
    return Sip(a, b, ap, bp, np.asarray(crpix, float))


def make_tan_wcs(
    ra: float,
    dec: float,
    pixel_scale_arcsec: float,
    rotation_deg: float = 0.0,
    crpix: tuple[float, float] = (0.0, 0.0),
    sip: Sip | Mapping[str, Any] | None = None,
) -> WCS:
    """Build a gnomonic (TAN or TAN-SIP) WCS.

    Parameters
    ----------
    ra, dec
        Sky position (deg, ICRS) of the reference pixel.
    pixel_scale_arcsec
        Pixel size (arcsec) at the reference pixel.
    rotation_deg
        Position angle of the pixel +y axis, from North through East (deg).  At 0, North is
        +y and East is -x (the usual sky orientation, as on the sky seen from below).
    crpix
        0-based pixel position ``(x, y)`` of the reference pixel, in parent coordinates.
    sip
        Optional SIP distortion: an ``astropy.wcs.Sip`` or a mapping with ``"a"``, ``"b"``
        (and optionally ``"ap"``, ``"bp"``) square coefficient arrays as in the SIP convention.

    Returns
    -------
    wcs
        An ``astropy.wcs.WCS`` with a CD matrix.
    """
    from astropy.wcs import WCS

    if not np.isfinite(pixel_scale_arcsec) or pixel_scale_arcsec <= 0:
        raise ConfigError(f"pixel_scale_arcsec must be positive, got {pixel_scale_arcsec!r}")
    if not -90.0 <= dec <= 90.0:
        raise ConfigError(f"dec must lie in [-90, 90] deg, got {dec!r}")
    wcs = WCS(naxis=2)
    suffix = "-SIP" if sip is not None else ""
    wcs.wcs.ctype = ["RA---TAN" + suffix, "DEC--TAN" + suffix]
    wcs.wcs.crval = [float(ra) % 360.0, float(dec)]
    wcs.wcs.crpix = [float(crpix[0]) + 1.0, float(crpix[1]) + 1.0]
    scale = pixel_scale_arcsec / 3600.0
    theta = np.deg2rad(rotation_deg)
    c, s = np.cos(theta), np.sin(theta)
    wcs.wcs.cd = scale * np.array([[-c, s], [s, c]])
    wcs.wcs.radesys = "ICRS"
    if sip is not None:
        wcs.sip = _make_sip(sip, wcs.wcs.crpix)
    wcs.wcs.set()
    return wcs


def shift_wcs(wcs: WCS, dx: float, dy: float) -> WCS:
    """A copy of ``wcs`` for a pixel grid whose origin lies at ``(dx, dy)`` of the original.

    ``shift_wcs(w, dx, dy).pixel_to_world(x, y) == w.pixel_to_world(x + dx, y + dy)``, SIP
    distortion included.
    """
    out = wcs.deepcopy()
    out.wcs.crpix = np.asarray(wcs.wcs.crpix, float) - np.array([dx, dy], float)
    if wcs.sip is not None:
        out.sip = _make_sip(wcs.sip, out.wcs.crpix)
    out.wcs.set()
    return out


def wcs_to_header(wcs: WCS) -> fits.Header:
    """FITS header cards of a celestial WCS, SIP coefficients included."""
    if wcs.naxis != 2 or not wcs.has_celestial:
        raise ConfigError(
            f"only 2-D celestial WCSs can be written, got {wcs.naxis} axes {list(wcs.wcs.ctype)}"
        )
    header = wcs.to_header(relax=True)
    for key in ("DATEREF", "MJDREFI", "MJDREFF", "MJDREF"):
        header.remove(key, ignore_missing=True)
    return header


def wcs_from_header(header: fits.Header | Mapping[str, Any], *, name: str = "header") -> WCS:
    """The celestial WCS of a FITS header (TAN, TAN-SIP or any other that wcslib reads).

    Parameters
    ----------
    header
        FITS header holding ``CTYPE1``/``CTYPE2`` and the other WCS cards.
    name
        What the header belongs to, for error messages (a file name and extension).
    """
    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning

    if not isinstance(header, fits.Header):
        header = fits.Header(dict(header))
    if "CTYPE1" not in header or "CTYPE2" not in header:
        raise FormatError(f"{name}: no celestial WCS (CTYPE1/CTYPE2 missing)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, naxis=2)
    except Exception as exc:  # wcslib raises several unrelated exception types
        raise FormatError(f"{name}: cannot read the WCS: {exc}") from exc
    if not wcs.has_celestial:
        raise FormatError(f"{name}: WCS axes {list(wcs.wcs.ctype)} are not celestial")
    return wcs

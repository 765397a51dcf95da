"""Photometric calibration: the zero point (and optional colour term) against a reference catalogue.

``ref_flux (nJy) = C * inst_flux * 10**(-0.4 * k * colour)``: the calibration ``C`` (nJy per
count, what :class:`pachon.core.photocalib.PhotoCalib` holds) and the colour coefficient ``k``
are fitted in magnitudes by iteratively sigma-clipped weighted least squares.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from pachon.core.errors import AlgorithmError
from pachon.core.photocalib import PhotoCalib

__all__ = ["PhotometryError", "ZeroPointFit", "fit_zero_point"]

_log = logging.getLogger(__name__)


class PhotometryError(AlgorithmError):
    """Too few matched reference stars with usable fluxes to calibrate."""


@dataclass
class ZeroPointFit:
    """The fitted calibration.

    Attributes
    ----------
    photo_calib
        nJy per instrumental count (with its statistical error).
    colour_term
        Fitted (or fixed) colour coefficient ``k`` (mag per mag of colour).
    used
        Pairs kept after clipping.
    scatter_mag
        Robust scatter of the kept residuals (mag).
    """

    photo_calib: PhotoCalib
    colour_term: float
    used: np.ndarray
    scatter_mag: float

    @property
    def zero_point(self) -> float:
        """AB magnitude of one count."""
        return self.photo_calib.zero_point

    @property
    def zero_point_err(self) -> float:
        """Statistical error of :attr:`zero_point` (mag)."""
        pc = self.photo_calib
        return 1.0857362 * pc.calibration_err / pc.calibration_mean


def fit_zero_point(
    inst_flux: np.ndarray,
    inst_flux_err: np.ndarray,
    ref_flux: np.ndarray,
    ref_flux_err: np.ndarray,
    *,
    colour: np.ndarray | None = None,
    colour_term: float | None = 0.0,
    nsigma: float = 3.0,
    n_iter: int = 5,
    min_stars: int = 3,
    data_id: str = "",
) -> ZeroPointFit:
    """Fit the zero point of matched stars.

    Parameters
    ----------
    inst_flux, inst_flux_err
        Instrumental fluxes (counts) of the matched sources.
    ref_flux, ref_flux_err
        Reference fluxes (nJy) of the same stars in the exposure's band.
    colour
        Reference colour of each star (mag), needed for a colour term.
    colour_term
        Fixed colour coefficient, or ``None`` to fit it (needs ``colour``).
    nsigma, n_iter
        Clipping.
    min_stars
        Fewest stars accepted.
    data_id
        Named in error messages.
    """
    where = f" for {data_id}" if data_id else ""
    f, fe, r, re_ = (np.asarray(a, float) for a in (inst_flux, inst_flux_err, ref_flux, ref_flux_err))
    col = np.zeros_like(f) if colour is None else np.asarray(colour, float)
    ok = (f > 0) & (r > 0) & np.isfinite(fe) & np.isfinite(re_) & np.isfinite(col)
    if ok.sum() < min_stars:
        raise PhotometryError(
            f"photometric calibration{where}: {int(ok.sum())} usable reference star(s), need {min_stars}; "
            "check the astrometric match and the reference catalogue's band"
        )
    if colour_term is None and colour is None:
        raise PhotometryError("fit_zero_point: fitting a colour term needs the reference colours")
    with np.errstate(invalid="ignore", divide="ignore"):
        dm = -2.5 * np.log10(np.where(ok, r / f, 1.0))  # m_ref - m_inst(=-2.5log f) offset: log C
        sig = 1.0857 * np.hypot(fe / f, re_ / r)
    w = 1.0 / np.maximum(sig, 0.002) ** 2  # a floor so a handful of stars does not dominate
    used = ok.copy()
    k = 0.0 if colour_term is None else float(colour_term)
    zp = 0.0
    for _ in range(n_iter):
        if colour_term is None:
            design = np.column_stack([np.ones(used.sum()), col[used]])
            sw = np.sqrt(w[used])
            sol = np.linalg.lstsq(design * sw[:, None], dm[used] * sw, rcond=None)[0]
            zp, k = float(sol[0]), float(sol[1]) / 1.0
        else:
            zp = float(np.sum(w[used] * (dm[used] - k * col[used])) / np.sum(w[used]))
        resid = dm - zp - k * col
        scatter = 1.4826 * float(np.median(np.abs(resid[used])))
        new = ok & (np.abs(resid) < nsigma * np.hypot(scatter, sig))
        if new.sum() < min_stars or np.array_equal(new, used):
            break
        used = new
    err = float(np.sqrt(1.0 / np.sum(w[used]))) if used.any() else float("nan")
    err = max(err, scatter / np.sqrt(max(int(used.sum()), 1)))
    # dm = -2.5 log10(C) + k * colour: C = 10**(-0.4 * zp)
    c = 10 ** (-0.4 * zp)
    calib = PhotoCalib(c, c * err / 1.0857)
    _log.info(
        "zero point%s: %.4f mag (%d stars, scatter %.4f)", where, calib.zero_point, int(used.sum()), scatter
    )
    return ZeroPointFit(calib, k, used, scatter)

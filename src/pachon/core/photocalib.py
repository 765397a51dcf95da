"""Photometric calibration: instrumental counts to nanojansky and AB magnitudes.

AB magnitudes follow Oke & Gunn (1983): ``m = -2.5 log10(f_nu / (erg s^-1 cm^-2 Hz^-1)) - 48.60``.
One nanojansky is ``1e-32 erg s^-1 cm^-2 Hz^-1``, so a source of 1 nJy has ``m = 80 - 48.6 = 31.4``
exactly (the often quoted "3631 Jy" is this zero point rounded).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pachon.core.errors import ConfigError, FormatError

if TYPE_CHECKING:
    from astropy.io import fits

__all__ = ["AB_MAG_OF_1_NJY", "PhotoCalib"]

_log = logging.getLogger(__name__)

#: AB magnitude of a source of 1 nJy.
AB_MAG_OF_1_NJY = 31.4
_MAG_PER_LN = 2.5 / math.log(10.0)

ArrayLike = float | np.ndarray


def _out(value: np.ndarray) -> Any:
    return float(value) if np.ndim(value) == 0 else value


@dataclass(frozen=True)
class PhotoCalib:
    """A spatially constant photometric calibration.

    Parameters
    ----------
    calibration_mean
        nJy per instrumental count (ADU or electrons of the calibrated exposure).
    calibration_err
        1-sigma uncertainty of ``calibration_mean`` (nJy per count).
    """

    calibration_mean: float
    calibration_err: float = 0.0

    def __post_init__(self) -> None:
        mean, err = float(self.calibration_mean), float(self.calibration_err)
        if not math.isfinite(mean) or mean <= 0:
            raise ConfigError(f"calibration_mean must be a positive number (nJy/count), got {mean!r}")
        if not math.isfinite(err) or err < 0:
            raise ConfigError(f"calibration_err must be a number >= 0, got {err!r}")
        object.__setattr__(self, "calibration_mean", mean)
        object.__setattr__(self, "calibration_err", err)

    @classmethod
    def from_zero_point(cls, zero_point: float, zero_point_err: float = 0.0) -> PhotoCalib:
        """The calibration whose one count has AB magnitude ``zero_point`` (error in mag)."""
        mean = 10.0 ** (-0.4 * (zero_point - AB_MAG_OF_1_NJY))
        return cls(mean, mean * zero_point_err / _MAG_PER_LN)

    @property
    def zero_point(self) -> float:
        """AB magnitude of one instrumental count: ``31.4 - 2.5 log10(calibration_mean)``."""
        return AB_MAG_OF_1_NJY - 2.5 * math.log10(self.calibration_mean)

    def to_njy(self, flux: ArrayLike, flux_err: ArrayLike | None = None) -> tuple[Any, Any]:
        """Convert instrumental fluxes (counts) to nJy.

        Parameters
        ----------
        flux
            Instrumental flux(es).
        flux_err
            1-sigma error(s) of ``flux``; zero when None.

        Returns
        -------
        flux_njy, flux_njy_err
            Calibrated flux(es) and errors, with the calibration error added in quadrature:
            ``sqrt((flux_err * c)^2 + (flux * c_err)^2)``.  Floats for scalar input.
        """
        f = np.asarray(flux, dtype=float)
        e = np.zeros_like(f) if flux_err is None else np.asarray(flux_err, dtype=float)
        njy = f * self.calibration_mean
        err = np.hypot(e * self.calibration_mean, f * self.calibration_err)
        return _out(njy), _out(err)

    def to_counts(self, flux_njy: ArrayLike) -> Any:
        """Convert nJy to instrumental counts (no error propagation)."""
        return _out(np.asarray(flux_njy, dtype=float) / self.calibration_mean)

    def to_ab_mag(self, flux: ArrayLike, flux_err: ArrayLike | None = None) -> tuple[Any, Any]:
        """Convert instrumental fluxes to AB magnitudes.

        Parameters
        ----------
        flux
            Instrumental flux(es); non-positive fluxes give NaN magnitudes.
        flux_err
            1-sigma error(s) of ``flux``; zero when None.

        Returns
        -------
        mag, mag_err
            AB magnitude(s) and error(s) ``2.5 / ln(10) * sigma_nJy / nJy``, the calibration
            error included.  Floats for scalar input.
        """
        njy, err = self.to_njy(flux, flux_err)
        njy, err = np.asarray(njy), np.asarray(err)
        with np.errstate(divide="ignore", invalid="ignore"):
            positive = njy > 0
            mag = np.where(positive, AB_MAG_OF_1_NJY - 2.5 * np.log10(np.where(positive, njy, 1.0)), np.nan)
            mag_err = np.where(positive, _MAG_PER_LN * err / np.where(positive, njy, 1.0), np.nan)
        return _out(mag), _out(mag_err)

    def to_hdu(self) -> fits.BinTableHDU:
        """A one-row FITS binary table (``EXTNAME = PHOTOCALIB``), exact in float64."""
        from astropy.io import fits

        cols = [
            fits.Column(name="calibration_mean", format="D", unit="nJy/count", array=[self.calibration_mean]),
            fits.Column(name="calibration_err", format="D", unit="nJy/count", array=[self.calibration_err]),
        ]
        hdu = fits.BinTableHDU.from_columns(cols, name="PHOTOCALIB")
        hdu.header["ZEROPT"] = (self.zero_point, "[mag] AB magnitude of one count")
        return hdu

    @classmethod
    def from_hdu(cls, hdu: Any) -> PhotoCalib:
        """Read a calibration written by :meth:`to_hdu`."""
        try:
            row = hdu.data[0]
            return cls(float(row["calibration_mean"]), float(row["calibration_err"]))
        except (KeyError, IndexError, TypeError) as exc:
            raise FormatError(f"PHOTOCALIB HDU is malformed ({exc}); it must hold one row") from None

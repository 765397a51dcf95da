"""Observing conditions of an exposure: exposure time, time, filter, pointing, airmass, ids.

In a FITS header the fields are stored under keywords starting with ``VI`` (``VIEXPT``,
``VIMJDMID``, ...), so they never collide with an instrument's own ``EXPTIME`` or ``FILTER``
cards kept in the exposure metadata.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pachon.core.errors import ConfigError, FormatError

if TYPE_CHECKING:
    from astropy.io import fits

__all__ = ["VISIT_INFO_KEYS", "VisitInfo"]

_log = logging.getLogger(__name__)

# field -> (FITS keyword, type, comment)
_FIELDS: dict[str, tuple[str, type, str]] = {
    "exposure_time": ("VIEXPT", float, "[s] exposure time"),
    "dark_time": ("VIDARKT", float, "[s] dark time"),
    "mjd_tai_mid": ("VIMJDMID", float, "[d] MJD (TAI) of the exposure midpoint"),
    "physical_filter": ("VIPHYFLT", str, "physical filter"),
    "band": ("VIBAND", str, "abstract filter band"),
    "airmass": ("VIAIRMAS", float, "airmass at midpoint"),
    "boresight_ra": ("VIBORRA", float, "[deg] boresight right ascension"),
    "boresight_dec": ("VIBORDEC", float, "[deg] boresight declination"),
    "rotation_angle": ("VIROTANG", float, "[deg] sky position angle of focal plane"),
    "instrument": ("VIINSTRU", str, "instrument name"),
    "exposure_id": ("VIEXPID", int, "exposure id"),
    "visit_id": ("VIVISIT", int, "visit id"),
    "detector": ("VIDETECT", int, "detector id"),
}
_OBSERVATORY_KEYS = (
    ("VIOBSLON", "[deg] observatory east longitude"),
    ("VIOBSLAT", "[deg] observatory latitude"),
    ("VIOBSHGT", "[m] observatory height"),
)

#: Every FITS keyword :meth:`VisitInfo.to_header` may write.
VISIT_INFO_KEYS: frozenset[str] = frozenset(
    [key for key, _, _ in _FIELDS.values()] + [key for key, _ in _OBSERVATORY_KEYS]
)


@dataclass(frozen=True)
class VisitInfo:
    """What is known about how an exposure was taken; None means unknown.

    Attributes
    ----------
    exposure_time
        Shutter-open time (s); 0 when not applicable.
    dark_time
        Time since the detector was cleared (s).
    mjd_tai_mid
        Modified Julian Date (TAI) of the exposure midpoint.
    physical_filter, band
        Filter name as the instrument knows it, and the abstract band (``"r"``).
    airmass
        Airmass at the midpoint.
    boresight_ra, boresight_dec
        Pointing of the optical axis (deg, ICRS).
    rotation_angle
        Sky position angle of the focal plane (deg).
    instrument, exposure_id, visit_id, detector
        Identifiers.
    observatory
        ``(east longitude deg, latitude deg, height m)``.
    """

    exposure_time: float = 0.0
    dark_time: float | None = None
    mjd_tai_mid: float | None = None
    physical_filter: str | None = None
    band: str | None = None
    airmass: float | None = None
    boresight_ra: float | None = None
    boresight_dec: float | None = None
    rotation_angle: float | None = None
    instrument: str | None = None
    exposure_id: int | None = None
    visit_id: int | None = None
    detector: int | None = None
    observatory: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        for name, (_, kind, _) in _FIELDS.items():
            value = getattr(self, name)
            if value is None:
                continue
            try:
                converted = kind(value)
            except (TypeError, ValueError):
                raise ConfigError(f"VisitInfo.{name} must be {kind.__name__}, got {value!r}") from None
            if kind is int and isinstance(value, float) and not value.is_integer():
                raise ConfigError(f"VisitInfo.{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, converted)
        if self.exposure_time is None or not self.exposure_time >= 0:
            raise ConfigError(f"VisitInfo.exposure_time must be >= 0 s, got {self.exposure_time!r}")
        if self.boresight_dec is not None and not -90.0 <= self.boresight_dec <= 90.0:
            raise ConfigError(f"VisitInfo.boresight_dec must be in [-90, 90] deg, got {self.boresight_dec!r}")
        if self.airmass is not None and math.isfinite(self.airmass) and self.airmass < 1.0:
            raise ConfigError(f"VisitInfo.airmass must be >= 1, got {self.airmass!r}")
        if self.observatory is not None:
            obs = tuple(float(v) for v in self.observatory)
            if len(obs) != 3:
                raise ConfigError(f"VisitInfo.observatory is (lon, lat, height), got {self.observatory!r}")
            object.__setattr__(self, "observatory", obs)

    def replace(self, **changes: Any) -> VisitInfo:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_header(self) -> fits.Header:
        """FITS header cards (``VI*`` keywords) for the known fields; unknown ones are omitted."""
        from astropy.io import fits

        header = fits.Header()
        for name, (key, _, comment) in _FIELDS.items():
            value = getattr(self, name)
            if value is not None:
                header[key] = (value, comment)
        if self.observatory is not None:
            for (key, comment), value in zip(_OBSERVATORY_KEYS, self.observatory, strict=True):
                header[key] = (value, comment)
        return header

    @classmethod
    def from_header(cls, header: Mapping[str, Any], *, name: str = "header") -> VisitInfo:
        """Read the ``VI*`` keywords written by :meth:`to_header`; absent ones become None.

        Parameters
        ----------
        header
            A FITS header or any mapping of keyword to value.
        name
            What the header belongs to (a file name), for error messages.
        """
        values: dict[str, Any] = {}
        for field, (key, _, _) in _FIELDS.items():
            if key in header:
                values[field] = header[key]
        present = [key in header for key, _ in _OBSERVATORY_KEYS]
        if all(present):
            values["observatory"] = tuple(header[key] for key, _ in _OBSERVATORY_KEYS)
        elif any(present):
            raise FormatError(f"{name}: observatory keys {[k for k, _ in _OBSERVATORY_KEYS]} are incomplete")
        try:
            return cls(**values)
        except ConfigError as exc:
            raise FormatError(f"{name}: invalid visit info: {exc}") from None

"""Header translation: :class:`ObservationInfo` and the helpers every translator shares.

A translator turns a raw FITS header into an :class:`ObservationInfo`, the
instrument-independent description of one detector's raw frame that the repository
turns into ``exposure`` and ``visit`` records.  Conventions follow Rubin:

* ``day_obs`` is the calendar date (``YYYYMMDD``) of the observation time shifted by
  −12 h in the TAI scale, so one night keeps one ``day_obs`` anywhere on Earth.
* ``exposure_id = day_obs * 100_000 + seq_num`` (at most 99 999 exposures a day).
* Times are ``astropy.time.Time`` in the TAI scale.

Astropy is imported inside the functions that need it, so that
``import pachon.instruments`` stays fast.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pachon.core.errors import MetadataTranslationError

if TYPE_CHECKING:  # pragma: no cover
    from astropy.time import Time

__all__ = [
    "ObservationInfo",
    "HeaderReader",
    "day_obs_from_time",
    "exposure_id_from_day_obs",
    "parse_time",
    "seconds_since_day_obs_start",
    "SEQ_NUM_LIMIT",
]

log = logging.getLogger(__name__)

#: Rubin's exposure ids leave five digits for the sequence number within a day.
SEQ_NUM_LIMIT = 100_000

_TZ_SUFFIX = re.compile(r"^(?P<stamp>.*\d)\s*(?P<sign>[+-])(?P<hh>\d{2}):?(?P<mm>\d{2})$")


@dataclass(frozen=True)
class ObservationInfo:
    """What a raw header says about one detector's exposure (instrument independent)."""

    instrument: str
    detector: int
    detector_name: str
    exposure_id: int
    visit_id: int | None
    physical_filter: str
    band: str | None
    day_obs: int
    seq_num: int
    observation_type: str
    datetime_begin: Time
    datetime_end: Time
    exposure_time: float
    dark_time: float | None
    target_name: str | None
    tracking_ra: float | None
    tracking_dec: float | None
    sky_angle: float | None
    airmass: float | None
    group: str | None
    obs_id: str

    def exposure_record(self) -> dict[str, Any]:
        """The ``exposure`` dimension record of this observation (times as TAI ISO strings)."""
        return {
            "instrument": self.instrument,
            "id": self.exposure_id,
            "obs_id": self.obs_id,
            "physical_filter": self.physical_filter,
            "band": self.band,
            "day_obs": self.day_obs,
            "seq_num": self.seq_num,
            "group": self.group,
            "observation_type": self.observation_type,
            "target_name": self.target_name,
            "exposure_time": self.exposure_time,
            "dark_time": self.dark_time,
            "datetime_begin": self.datetime_begin.tai.isot,
            "datetime_end": self.datetime_end.tai.isot,
            "tracking_ra": self.tracking_ra,
            "tracking_dec": self.tracking_dec,
            "sky_angle": self.sky_angle,
            "airmass": self.airmass,
        }


class HeaderReader:
    """Typed access to header keys with errors that name the file and the key.

    Parameters
    ----------
    header
        A FITS header or any mapping of keyword to value.
    filename
        Name used in error messages (``"<header>"`` when None).
    instrument
        Instrument name used in error messages.
    """

    def __init__(self, header: Mapping[str, Any], filename: str | None, instrument: str) -> None:
        self.header = header
        self.filename = str(filename) if filename is not None else "<header>"
        self.instrument = instrument

    def error(self, key: str, problem: str) -> MetadataTranslationError:
        """A :class:`MetadataTranslationError` naming the file, the instrument and the key."""
        return MetadataTranslationError(
            f"{self.filename}: header key {key!r} {problem} (translating as {self.instrument}); "
            "check that this is a raw frame of that instrument, or fix its definition"
        )

    def has(self, key: str) -> bool:
        """Whether ``key`` is present with a defined (non-empty) value."""
        if key not in self.header:
            return False
        value = self.header[key]
        return not (value is None or (isinstance(value, str) and not value.strip())
                    or type(value).__name__ == "Undefined")

    def raw(self, key: str, default: Any = ..., *, required: bool = True) -> Any:
        """The value of ``key``; missing → ``default`` if given, else an error when required."""
        if self.has(key):
            value = self.header[key]
            return value.strip() if isinstance(value, str) else value
        if default is not ...:
            return default
        if required:
            raise self.error(key, "is missing or empty")
        return None

    def string(self, key: str, default: Any = ..., *, required: bool = True) -> str | None:
        """The value of ``key`` as a stripped string."""
        value = self.raw(key, default, required=required)
        return None if value is None else str(value).strip()

    def number(self, key: str, default: Any = ..., *, required: bool = True) -> float | None:
        """The value of ``key`` as a finite float."""
        value = self.raw(key, default, required=required)
        if value is None:
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self.error(key, f"has value {value!r}, which is not a number") from None
        if not math.isfinite(number):
            raise self.error(key, f"has non-finite value {value!r}")
        return number

    def check_exposure(self, exptime_key: str, exposure_time: float, begin: Any, end: Any,
                       end_key: str) -> None:
        """Refuse a negative exposure time, or an end before the beginning.

        Raises
        ------
        MetadataTranslationError
            Naming the file and the offending key.
        """
        if exposure_time < 0:
            raise self.error(exptime_key, f"has negative value {exposure_time!r} (seconds)")
        if end is not None and begin is not None and end < begin:
            raise self.error(end_key, f"gives the end of the exposure ({end.tai.isot} TAI) before its "
                             f"beginning ({begin.tai.isot} TAI)")

    def integer(self, key: str, default: Any = ..., *, required: bool = True) -> int | None:
        """The value of ``key`` as an integer (strings of digits accepted)."""
        value = self.raw(key, default, required=required)
        if value is None:
            return None
        try:
            return int(str(value).strip())
        except ValueError:
            raise self.error(key, f"has value {value!r}, which is not an integer") from None


def parse_time(value: Any, *, fmt: str = "isot", scale: str = "utc") -> Time:
    """Parse a header time into an ``astropy.time.Time`` in the TAI scale.

    Parameters
    ----------
    value
        The header value: an ISO string (a trailing UTC offset such as ``-0700`` is applied),
        or a number for ``fmt="mjd"`` / ``"jd"`` / ``"unix"``.
    fmt
        ``"isot"`` (ISO 8601, with or without ``T``), ``"mjd"``, ``"jd"`` or ``"unix"``.
    scale
        Time scale of the value (``"utc"``, ``"tai"``...).

    Returns
    -------
    astropy.time.Time
        The time, converted to TAI.

    Raises
    ------
    ValueError
        When the value cannot be parsed (callers wrap it with the file and key).
    """
    from astropy.time import Time, TimeDelta

    if fmt in ("mjd", "jd", "unix"):
        return Time(float(value), format=fmt, scale=scale).tai
    if fmt != "isot":
        raise ValueError(f"unknown time format {fmt!r}: use isot, mjd, jd or unix")
    text = str(value).strip().replace(" ", "T", 1)
    offset_s = 0.0
    match = _TZ_SUFFIX.match(text)
    if match and "T" in text:
        text = match["stamp"]
        sign = 1.0 if match["sign"] == "+" else -1.0
        offset_s = sign * (int(match["hh"]) * 3600 + int(match["mm"]) * 60)
    if text.endswith("Z"):
        text = text[:-1]
    time = Time(text, format="isot" if "T" in text else "iso", scale=scale)
    if offset_s:
        time = time - TimeDelta(offset_s, format="sec")
    return time.tai


def day_obs_from_time(time: Time) -> int:
    """Rubin's ``day_obs``: the TAI date, as ``YYYYMMDD``, of ``time`` minus 12 hours."""
    from astropy.time import TimeDelta

    shifted = time.tai - TimeDelta(12 * 3600.0, format="sec", scale="tai")
    return int(shifted.tai.strftime("%Y%m%d"))


def seconds_since_day_obs_start(time: Time, day_obs: int) -> int:
    """Whole seconds between the start of ``day_obs`` (12:00 TAI of that date) and ``time``."""
    from astropy.time import Time as _Time

    text = f"{day_obs // 10000:04d}-{day_obs // 100 % 100:02d}-{day_obs % 100:02d}T12:00:00"
    start = _Time(text, format="isot", scale="tai")
    return int(math.floor((time.tai - start).sec))


def exposure_id_from_day_obs(day_obs: int, seq_num: int, *, filename: str = "<header>") -> int:
    """Rubin's exposure id ``day_obs * 100000 + seq_num``.

    Raises
    ------
    MetadataTranslationError
        When ``seq_num`` does not fit in five digits.
    """
    if not 0 <= seq_num < SEQ_NUM_LIMIT:
        raise MetadataTranslationError(
            f"{filename}: sequence number {seq_num} is outside 0..{SEQ_NUM_LIMIT - 1}; "
            "the exposure id day_obs*100000+seq_num cannot hold it"
        )
    return day_obs * SEQ_NUM_LIMIT + seq_num

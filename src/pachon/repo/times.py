"""Times in the registry: int64 nanoseconds TAI since 1970-01-01T00:00:00 TAI."""

from __future__ import annotations

import datetime
from typing import Any

from pachon.core.errors import ConfigError

__all__ = ["to_ns", "from_ns", "MAX_NS", "MIN_NS"]

#: Open ends of validity ranges.
MIN_NS = -(2**63) + 1
MAX_NS = 2**63 - 1

_NS_PER_DAY = 86_400_000_000_000
# MJD(TAI) of 1970-01-01T00:00:00 TAI
_MJD_EPOCH = 40587.0


def to_ns(value: Any) -> int:
    """Convert a time to int64 ns TAI.

    Parameters
    ----------
    value
        An ``astropy.time.Time`` (any scale), an ``int`` (already ns TAI), an ISO string
        (read as TAI) or a ``datetime`` (read as UTC).  ``None`` is returned as ``None``.
    """
    if value is None:
        return None  # type: ignore[return-value]
    if isinstance(value, bool):
        raise ConfigError(f"time must be an astropy Time, ISO string or int ns TAI, got {value!r}")
    if isinstance(value, int):
        return value
    from astropy.time import Time

    if isinstance(value, str):
        value = Time(value, scale="tai")
    elif isinstance(value, datetime.datetime):
        value = Time(value, scale="utc")
    if not isinstance(value, Time):
        raise ConfigError(f"time must be an astropy Time, ISO string or int ns TAI, got {value!r}")
    tai = value.tai
    # exact in two parts: whole days and the fraction
    d1 = tai.jd1 - 2400000.5 - _MJD_EPOCH
    days = round(float(d1))
    frac = (float(d1) - days) + float(tai.jd2)
    return int(days) * _NS_PER_DAY + int(round(frac * _NS_PER_DAY))


def from_ns(ns: int) -> Any:
    """Convert int64 ns TAI back to an ``astropy.time.Time`` in the TAI scale."""
    from astropy.time import Time

    days, rem = divmod(int(ns), _NS_PER_DAY)
    return Time(days + _MJD_EPOCH, rem / _NS_PER_DAY, format="mjd", scale="tai")

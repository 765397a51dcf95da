"""Constant values of query expressions: time conversion and bind parameters."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pachon.repo.expr.nodes import BindParam, Literal, Node, TimeLiteral, located_error

__all__ = ["tai_iso_to_ns", "time_to_ns_tai", "bind_value", "constant_value"]

_LOG = logging.getLogger(__name__)
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()


def _ymdhms_to_ns(fields: Any) -> int:
    days = datetime.date(int(fields[0]), int(fields[1]), int(fields[2])).toordinal() - _EPOCH_ORDINAL
    minutes = (days * 24 + int(fields[3])) * 60 + int(fields[4])
    return minutes * 60_000_000_000 + round(float(fields[5]) * 1e9)


def tai_iso_to_ns(text: str) -> int:
    """Convert a TAI time in ISO format to integer nanoseconds TAI since 1970-01-01 TAI.

    Parameters
    ----------
    text
        ISO 8601 date and time in the TAI scale, e.g. ``"2025-12-31T12:00:00.25"``, or a
        date alone (midnight).

    Returns
    -------
    int
        Nanoseconds; TAI has no leap seconds, so this is exact calendar arithmetic on the
        fields astropy parses.

    Raises
    ------
    ValueError
        When astropy cannot read ``text`` as an ISO time.
    """
    from astropy.time import Time  # astropy is slow to import: only when a time is used

    return _ymdhms_to_ns(Time(text, scale="tai", format="isot" if "T" in text else "iso").ymdhms)


def time_to_ns_tai(time: Any) -> int:
    """Convert a scalar ``astropy.time.Time`` (any scale) to integer nanoseconds TAI.

    Parameters
    ----------
    time
        The time; converted to TAI first (UTC leap seconds are applied by astropy).

    Returns
    -------
    int
        Nanoseconds TAI since 1970-01-01T00:00:00 TAI.
    """
    return _ymdhms_to_ns(time.tai.ymdhms)


def _convert(value: Any) -> Any:
    if type(value).__module__.startswith("astropy.time"):
        return time_to_ns_tai(value)
    if isinstance(value, datetime.datetime):  # read as UTC, like pachon.repo.times.to_ns
        from astropy.time import Time

        return time_to_ns_tai(Time(value, scale="utc"))
    return value


def bind_value(param: BindParam, bind: Mapping[str, Any] | None, *, allow_list: bool = False) -> Any:
    """Look up a bind parameter, converting times to integer nanoseconds TAI.

    ``astropy.time.Time`` values (any scale) and ``datetime.datetime`` values (read as UTC)
    become nanoseconds TAI since 1970-01-01 TAI, the registry's representation.

    Parameters
    ----------
    param
        The parameter node.
    bind
        Values by name (without the colon).
    allow_list
        Whether a list or tuple is acceptable (inside ``IN`` only); it is returned as a list.

    Returns
    -------
    object
        The value, or a list of values when ``allow_list`` and the value is a sequence.

    Raises
    ------
    QueryError
        When the name is not in ``bind``, or a sequence is given outside ``IN``.
    """
    if bind is None or param.name not in bind:
        known = ", ".join(sorted(bind or ())) or "none"
        raise located_error(
            f"No value given for bind parameter :{param.name} (bind values given: {known}); "
            f"pass it as bind={{{param.name!r}: ...}}",
            param.source,
            param.pos,
        )
    value = bind[param.name]
    if isinstance(value, Sequence | set | frozenset) and not isinstance(value, str | bytes):
        if not allow_list:
            raise located_error(
                f"Bind value :{param.name} is a list; use it with IN, e.g. 'band IN (:{param.name})'",
                param.source,
                param.pos,
            )
        return [_convert(item) for item in value]
    return _convert(value)


def constant_value(node: Node, bind: Mapping[str, Any] | None) -> Any:
    """Value of a literal, time literal or (scalar) bind parameter node.

    Parameters
    ----------
    node
        A :class:`Literal`, :class:`TimeLiteral` or :class:`BindParam`.
    bind
        Bind values by name.

    Returns
    -------
    object
        The Python value (``None`` for ``NULL``).
    """
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, TimeLiteral):
        return node.ns_tai
    if isinstance(node, BindParam):
        return bind_value(node, bind)
    raise TypeError(f"{node!r} is not a constant")

"""SIAv2 constraints evaluated on the ObsCore table (vectorized over rows).

Parameters follow SIAv2 (IVOA REC 2015) and DALI: names are case-insensitive, repeated values
of one parameter are OR-ed, different parameters are AND-ed, intervals are ``"lo hi"`` with
``-Inf``/``+Inf`` for open ends.  Unknown parameters are ignored, as DALI asks.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pachon.core.errors import ConfigError
from pachon.core.sphgeom import angular_separation
from pachon.services.images.obscore import dataset_did, parse_did
from pachon.services.images.regions import LonLatRange, parse_pos, region_overlaps

__all__ = ["SIA_PARAMETERS", "select_rows", "parse_interval", "parse_maxrec", "check_responseformat"]

_log = logging.getLogger(__name__)

#: interval parameter → ObsCore (min column, max column); a row matches when the ranges overlap.
_INTERVALS = {
    "BAND": ("em_min", "em_max"),
    "TIME": ("t_min", "t_max"),
    "FOV": ("s_fov", "s_fov"),
    "SPATRES": ("s_resolution", "s_resolution"),
    "EXPTIME": ("t_exptime", "t_exptime"),
    "SPECRP": ("em_res_power", "em_res_power"),
    "TIMERES": ("t_resolution", "t_resolution"),
}
#: string parameter → ObsCore column compared for equality.
_STRINGS = {
    "COLLECTION": "obs_collection",
    "FACILITY": "facility_name",
    "INSTRUMENT": "instrument_name",
    "DPTYPE": "dataproduct_type",
    "TARGET": "target_name",
    "FORMAT": "access_format",
}
#: Every parameter understood by the query endpoint.
SIA_PARAMETERS = ("POS", "ID", "CALIB", "POL", "MAXREC", "RESPONSEFORMAT", *_INTERVALS, *_STRINGS)
_VOTABLE_FORMATS = {"votable", "application/x-votable+xml", "text/xml", "application/x-votable"}


def parse_interval(text: str, name: str) -> tuple[float, float]:
    """A DALI interval ``"lo hi"`` (one number means ``[v, v]``); ``-Inf``/``+Inf`` allowed."""
    try:
        values = [float(v) for v in str(text).split()]
    except ValueError:
        raise ConfigError(
            f"{name}={text!r}: expected 'lo hi' numbers (use -Inf/+Inf for open ends)"
        ) from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or any(math.isnan(v) for v in values):
        raise ConfigError(f"{name}={text!r}: an interval is two numbers 'lo hi'")
    lo, hi = values
    if lo > hi:
        raise ConfigError(f"{name}={text!r}: the lower bound exceeds the upper one")
    return lo, hi


def parse_maxrec(values: Sequence[str], default: int, cap: int) -> int:
    """MAXREC: the last value given, default when absent, never above ``cap``."""
    if not values:
        return min(default, cap)
    try:
        n = int(values[-1])
    except ValueError:
        raise ConfigError(f"MAXREC={values[-1]!r}: expected a non-negative integer") from None
    if n < 0:
        raise ConfigError(f"MAXREC={n}: expected a non-negative integer")
    return min(n, cap)


def check_responseformat(values: Sequence[str]) -> None:
    """Only VOTable output is offered; other RESPONSEFORMAT values are a usage error."""
    for value in values:
        if value.split(";")[0].strip().lower() not in _VOTABLE_FORMATS:
            raise ConfigError(
                f"RESPONSEFORMAT={value!r} is not supported; use application/x-votable+xml (VOTable)"
            )


def _column(table: Any, name: str, dtype: Any = float) -> np.ndarray:
    col = table.column(name)
    if dtype is float:
        return col.cast("double").fill_null(np.nan).to_numpy(zero_copy_only=False)
    return np.array(col.to_pylist(), dtype=object)


def _overlap_mask(table: Any, name: str, values: Sequence[str]) -> np.ndarray:
    lo_col, hi_col = _INTERVALS[name]
    lo, hi = _column(table, lo_col), _column(table, hi_col)
    ok = np.zeros(table.num_rows, bool)
    for text in values:
        a, b = parse_interval(text, name)
        with np.errstate(invalid="ignore"):
            ok |= (lo <= b) & (hi >= a)  # NaN (null) never matches
    return ok


def _pos_mask(table: Any, footprints: Sequence[Any], values: Sequence[str]) -> np.ndarray:
    ra, dec, fov = _column(table, "s_ra"), _column(table, "s_dec"), _column(table, "s_fov")
    ok = np.zeros(table.num_rows, bool)
    for text in values:
        query = parse_pos(text, "POS")
        if isinstance(query, LonLatRange):
            candidates = np.flatnonzero(~ok)
        else:
            bc = query.bounding_circle()
            with np.errstate(invalid="ignore"):
                near = angular_separation(ra, dec, bc.ra, bc.dec) <= bc.radius + fov / 2.0 + 1e-9
            candidates = np.flatnonzero(near & ~ok)
        for i in candidates:  # exact test only on the few rows near the query region
            ok[i] = region_overlaps(footprints[i], query)
    return ok


def select_rows(table: Any, footprints: Sequence[Any], params: Mapping[str, Sequence[str]]) -> np.ndarray:
    """Indices of the ObsCore rows matching the SIAv2 constraints in ``params``.

    Parameters
    ----------
    table
        The ObsCore `pyarrow.Table`.
    footprints
        The sky region of each row (same order).
    params
        Upper-case parameter name → values.

    Raises
    ------
    ConfigError
        A malformed value (naming the parameter).
    """
    keep = np.ones(table.num_rows, bool)
    if params.get("POS"):
        keep &= _pos_mask(table, footprints, params["POS"])
    for name in _INTERVALS:
        if params.get(name):
            keep &= _overlap_mask(table, name, params[name])
    for name, column in _STRINGS.items():
        if params.get(name):
            keep &= np.isin(_column(table, column, object), list(params[name]))
    if params.get("ID"):
        wanted = [dataset_did(parse_did(v)) if _is_did(v) else v for v in params["ID"]]
        keep &= np.isin(_column(table, "obs_publisher_did", object), wanted)
    if params.get("CALIB"):
        try:
            levels = [int(v) for v in params["CALIB"]]
        except ValueError:
            raise ConfigError(f"CALIB={params['CALIB']!r}: expected integers 0 to 4") from None
        keep &= np.isin(_column(table, "calib_level"), levels)
    if params.get("POL"):
        import pyarrow.compute as pc

        states = table.column("pol_states")
        has = np.zeros(table.num_rows, bool)
        for pol in params["POL"]:
            hit = pc.match_substring(states, f"/{pol.strip().upper()}/").fill_null(False)
            has |= hit.to_numpy(zero_copy_only=False)
        keep &= has
    return np.flatnonzero(keep)


def _is_did(value: str) -> bool:
    try:
        parse_did(value)
    except ConfigError:
        return False
    return True

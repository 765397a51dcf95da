"""Survey cadence: the list of visits (pointing, band, time, conditions).

Fields lie on a small grid around ``(ra, dec)``; each night observes every field in turn,
twice (a pair separated by ``revisit_minutes``) until ``n_visits`` visits are spread over
``n_nights`` nights.  Visits may also be given explicitly (see :func:`visits_from_table`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pachon.core.errors import ConfigError
from pachon.sim.config import BANDS, SurveyConfig

__all__ = ["Visit", "make_visits", "visits_from_table", "day_obs_of_mjd"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Visit:
    """One science exposure of the whole focal plane.

    ``seq_num`` numbers exposures within ``day_obs`` (calibrations use the first numbers);
    ``parallactic_deg`` orients differential chromatic refraction.
    """

    index: int
    day_obs: int
    seq_num: int
    mjd_start: float
    ra: float
    dec: float
    rotation_deg: float
    band: str
    exposure_time: float
    seeing_fwhm: float
    airmass: float
    parallactic_deg: float
    field: int

    @property
    def mjd_mid(self) -> float:
        """MJD (TAI) at mid-exposure."""
        return self.mjd_start + 0.5 * self.exposure_time / 86400.0

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (a row of the visits truth table)."""
        return asdict(self)


def day_obs_of_mjd(mjd: float) -> int:
    """Rubin's day_obs (YYYYMMDD of the TAI date 12 h earlier) of an MJD in TAI."""
    import datetime

    date = datetime.date(1858, 11, 17) + datetime.timedelta(days=math.floor(mjd - 0.5))
    return date.year * 10000 + date.month * 100 + date.day


def _field_centres(cfg: SurveyConfig) -> list[tuple[float, float]]:
    side = math.ceil(math.sqrt(cfg.n_fields))
    out = []
    for k in range(cfg.n_fields):
        i, j = k % side - (side - 1) / 2, k // side - (side - 1) / 2
        dec = float(np.clip(cfg.dec + j * cfg.field_spacing_deg, -89.9, 89.9))
        ra = (cfg.ra + i * cfg.field_spacing_deg / max(math.cos(math.radians(dec)), 1e-3)) % 360.0
        out.append((ra, dec))
    return out


def make_visits(cfg: SurveyConfig, rng: np.random.Generator, *, first_seq_num: int = 100) -> list[Visit]:
    """Visits of the cadence described by ``cfg`` (deterministic for a given ``rng`` state)."""
    cfg.validate()
    fields = _field_centres(cfg)
    per_night = math.ceil(cfg.n_visits / cfg.n_nights)
    visits: list[Visit] = []
    for k in range(cfg.n_visits):
        night, slot = divmod(k, per_night)
        pair, second = divmod(slot, 2)
        field_id = pair % len(fields)
        mjd = (
            cfg.start_mjd
            + night
            + 0.05
            + pair * (2 * cfg.revisit_minutes + 2) / 1440.0
            + second * cfg.revisit_minutes / 1440.0
        )
        band = cfg.bands[(night + pair) % len(cfg.bands)]
        ra, dec = fields[field_id]
        airmass = float(1.0 + rng.uniform(0.0, 0.4))
        visits.append(
            Visit(
                index=k,
                day_obs=day_obs_of_mjd(mjd),
                seq_num=first_seq_num + slot,
                mjd_start=float(mjd),
                ra=ra,
                dec=dec,
                rotation_deg=float(rng.uniform(*cfg.rotation_deg)),
                band=band,
                exposure_time=float(cfg.exposure_time),
                seeing_fwhm=float(rng.uniform(*cfg.seeing_fwhm)),
                airmass=airmass,
                parallactic_deg=float(rng.uniform(-60.0, 60.0)),
                field=field_id,
            )
        )
    log.info("survey: %d visits over %d night(s), %d field(s)", len(visits), cfg.n_nights, len(fields))
    return visits


_REQUIRED = ("mjd_start", "ra", "dec", "band", "exposure_time", "seeing_fwhm")


def visits_from_table(rows: Sequence[Mapping[str, Any]], *, first_seq_num: int = 100) -> list[Visit]:
    """Visits from explicit rows (dicts with at least ``mjd_start, ra, dec, band, exposure_time,
    seeing_fwhm``; optional ``rotation_deg``, ``airmass``, ``parallactic_deg``, ``field``)."""
    visits: list[Visit] = []
    counters: dict[int, int] = {}
    for k, row in enumerate(rows):
        missing = [c for c in _REQUIRED if c not in row]
        if missing:
            raise ConfigError(
                f"visit table row {k}: missing column(s) {missing}; required: {list(_REQUIRED)}"
            )
        if row["band"] not in BANDS:
            raise ConfigError(f"visit table row {k}: unknown band {row['band']!r}; use one of {list(BANDS)}")
        if float(row["exposure_time"]) <= 0:
            raise ConfigError(
                f"visit table row {k}: exposure_time must be positive, got {row['exposure_time']!r}"
            )
        day_obs = day_obs_of_mjd(float(row["mjd_start"]))
        seq = counters.get(day_obs, first_seq_num)
        counters[day_obs] = seq + 1
        visits.append(
            Visit(
                index=k,
                day_obs=day_obs,
                seq_num=seq,
                mjd_start=float(row["mjd_start"]),
                ra=float(row["ra"]),
                dec=float(row["dec"]),
                rotation_deg=float(row.get("rotation_deg", 0.0)),
                band=str(row["band"]),
                exposure_time=float(row["exposure_time"]),
                seeing_fwhm=float(row["seeing_fwhm"]),
                airmass=float(row.get("airmass", 1.0)),
                parallactic_deg=float(row.get("parallactic_deg", 0.0)),
                field=int(row.get("field", 0)),
            )
        )
    return visits

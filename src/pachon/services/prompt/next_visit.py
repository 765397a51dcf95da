"""The "next visit" message: what the observatory announces before a visit's raws arrive.

Modelled on Rubin's ``nextVisit`` messages (sent by the scheduler as a visit is queued): the
instrument, the visit's group id (the ``GROUPID`` header of its raws, which the raws are matched
by), the detectors to process, the pointing (boresight ICRS ra/dec and sky rotation), the filter
and the expected start time.  `NextVisit` validates field by field;
`NextVisit.resolve` checks the values against the instrument (known detectors and filters).
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pachon.core.errors import ConfigError

__all__ = ["NextVisit", "NextVisitError"]

_log = logging.getLogger(__name__)


class NextVisitError(ConfigError):
    """A next-visit message that does not fit its instrument; ``loc`` names the field."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(f"{'.'.join(str(p) for p in loc)}: {message}")
        self.loc = loc
        self.msg = message


class NextVisit(BaseModel):
    """A next-visit announcement.

    Attributes
    ----------
    instrument
        Instrument name as registered (``LSSTCam``, ``LSSTComCam``, ...).
    group
        Group id of the visit: the ``GROUPID`` of its raws (the observation id for one-snap visits).
    detectors
        Detector ids to process; None: every detector of the instrument.
    ra, dec
        Boresight (ICRS, degrees).
    rotation
        Sky rotation angle (degrees; recorded, the regions used are rotation-free circles).
    band
        Abstract filter (``g``, ``r``...); with ``physical_filter`` it must agree.
    physical_filter
        Physical filter name; None: the instrument's filter of ``band`` when there is exactly one.
    expected_time
        Expected start of the exposure (ISO-8601; UTC when no offset is given).
    exposure_time
        Expected exposure time (seconds).
    n_images
        Snaps in the visit (only 1 is processed per detector).
    survey
        Free text (survey or program name), recorded.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    instrument: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    group: str = Field(min_length=1, max_length=256)
    detectors: tuple[int, ...] | None = Field(default=None, min_length=1, max_length=1000)
    ra: float = Field(ge=0.0, lt=360.0)
    dec: float = Field(ge=-90.0, le=90.0)
    rotation: float = Field(default=0.0, ge=-360.0, le=360.0)
    band: str = Field(min_length=1, max_length=16)
    physical_filter: str | None = Field(default=None, min_length=1, max_length=64)
    expected_time: datetime.datetime
    exposure_time: float = Field(default=30.0, gt=0.0, le=3600.0)
    n_images: int = Field(default=1, ge=1, le=100)
    survey: str = Field(default="", max_length=256)

    @field_validator("detectors")
    @classmethod
    def _unique_detectors(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("detector ids must be unique")
        return None if v is None else tuple(sorted(v))

    @field_validator("expected_time")
    @classmethod
    def _utc(cls, v: datetime.datetime) -> datetime.datetime:
        return v.replace(tzinfo=datetime.UTC) if v.tzinfo is None else v.astimezone(datetime.UTC)

    @model_validator(mode="after")
    def _finite(self) -> NextVisit:
        import math

        for name in ("ra", "dec", "rotation", "exposure_time"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite")
        return self

    @property
    def expected_ns(self) -> int:
        """Expected start (ns TAI)."""
        from pachon.repo.times import to_ns

        return to_ns(self.expected_time)

    def resolve(self, instrument: Any) -> NextVisit:
        """This message with ``detectors`` and ``physical_filter`` filled from ``instrument``.

        Raises
        ------
        NextVisitError
            A detector or filter the instrument does not have (``loc`` names the field).
        """
        if instrument.name != self.instrument:
            raise NextVisitError(("instrument",), f"got {self.instrument!r}, resolved {instrument.name!r}")
        known = {int(d.id) for d in instrument.detectors}
        detectors = self.detectors if self.detectors is not None else tuple(sorted(known))
        for i, det in enumerate(detectors):
            if det not in known:
                raise NextVisitError(("detectors", i), f"{self.instrument} has no detector {det} "
                                     f"(ids {min(known)}..{max(known)})")
        filters = dict(instrument.filters)
        physical = self.physical_filter
        if physical is None:
            matches = sorted(name for name, band in filters.items() if band == self.band)
            if len(matches) != 1:
                raise NextVisitError(("band",), f"{self.instrument} has {len(matches)} filters of band "
                                     f"{self.band!r} ({', '.join(matches) or 'none'}); give physical_filter")
            physical = matches[0]
        elif physical not in filters:
            raise NextVisitError(("physical_filter",), f"{self.instrument} has no filter {physical!r}; "
                                 f"known: {', '.join(sorted(filters))}")
        elif filters[physical] not in (None, self.band):
            raise NextVisitError(("band",), f"{physical!r} is band {filters[physical]!r}, not {self.band!r}")
        return self.model_copy(update={"detectors": detectors, "physical_filter": physical})

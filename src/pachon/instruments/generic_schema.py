"""The YAML schema of a generic (any FITS camera) instrument definition.

Example (abridged; see ``data/*.yaml`` for complete, working definitions)::

    name: CAHA-CAFOS
    match: {INSTRUME: "CAFOS 2.2"}          # every key must match; "re:<regex>" for a regex
    plate_scale: 22.08                     # arcsec/mm
    pixel_size_mm: 0.024
    detectors:
      - {id: 0, name: SITe-CCD15, width: 1024, height: 1024, physical_type: SITe,
         gain: 1.43, read_noise: 7.4, saturation: 65535}
    filters: {JohnsonB: B, JohnsonV: V}     # physical filter -> band (null when unknown)
    header:
      exposure_time: EXPTIME
      time: {key: DATE-OBS, format: isot, scale: utc}
      filter: {key: INSFLNAM}
      observation_type: {key: IMAGETYP, map: {bias: bias, flat: flat, science: science}}
      ra: {key: RA, unit: deg}
      exposure_id: {source: keyword, key: FILENAME, regex: "_(\\d+)\\.fits"}

Exposure ids follow Rubin: ``day_obs * 100000 + seq_num``; ``exposure_id.source`` says where
``seq_num`` comes from:

* ``keyword``: the integer value of ``key`` (or of the ``regex`` groups matched in it);
* ``filename``: the ``regex`` groups matched in the file's base name (needed when headers
  are copies, as for the DECam cutouts whose science and reference frames share DATE-OBS);
* ``time``: whole seconds since the start of ``day_obs`` (12:00 TAI), unique for frames
  taken at least a second apart.

Matched groups are concatenated; a letter group becomes its two-digit alphabet position
(``a`` → ``01``), so ``DEC-OBS04a`` with ``(\\d+)([a-z])`` gives ``0401`` → 401.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AmplifierModel", "DetectorModel", "KeyModel", "TimeModel", "ObservationTypeModel", "AngleModel",
    "ExposureIdModel", "HeaderModel", "InstrumentModel",
]

log = logging.getLogger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AmplifierModel(_Strict):
    """One amplifier; FITS sections are 1-based inclusive ``[x1:x2,y1:y2]`` in the raw frame."""

    name: str = "A"
    data_section: str | None = None
    serial_overscan_section: str | None = None
    serial_prescan_section: str | None = None
    parallel_overscan_section: str | None = None
    gain: float | None = None
    read_noise: float | None = None
    saturation: float | None = None
    bias_level: float = 0.0
    flip_x: bool = False
    flip_y: bool = False
    detector_section: str | None = Field(
        None, description="where the data land in the assembled image (default: the data section "
        "shifted so that the lowest data corner is at 0, 0)")


class DetectorModel(_Strict):
    """A detector: raw size, amplifiers (default: one amplifier reading the whole frame)."""

    id: int = Field(0, ge=0)
    name: str = "0"
    width: int = Field(gt=0, description="raw frame width (NAXIS1)")
    height: int = Field(gt=0, description="raw frame height (NAXIS2)")
    physical_type: str = "CCD"
    purpose: str = "SCIENCE"
    gain: float = Field(1.0, gt=0)
    read_noise: float = Field(0.0, ge=0)
    saturation: float = Field(65535.0, gt=0)
    center_mm: tuple[float, float] = (0.0, 0.0)
    yaw_deg: float = 0.0
    amplifiers: list[AmplifierModel] = Field(default_factory=lambda: [AmplifierModel()])


class KeyModel(_Strict):
    """A header keyword with an optional default (used when the key is absent)."""

    key: str | None = None
    default: str | float | None = None


class TimeModel(_Strict):
    """Start of exposure: ``key`` (ISO or a number per ``format``), optionally a separate time key."""

    key: str
    format: Literal["isot", "mjd", "jd", "unix"] = "isot"
    scale: str = "utc"
    time_key: str | None = Field(None, description="key holding the time of day when `key` is a date")


class ObservationTypeModel(_Strict):
    """Observation type from a keyword, through a case-insensitive value map."""

    key: str | None = None
    map: dict[str, str] = Field(default_factory=dict)
    default: str = "science"


class AngleModel(_Strict):
    """An angle keyword: degrees, or sexagesimal hours/degrees (``unit: hourangle``)."""

    key: str
    unit: Literal["deg", "hourangle"] = "deg"


class ExposureIdModel(_Strict):
    """Where ``seq_num`` comes from (see the module docstring)."""

    source: Literal["keyword", "filename", "time"]
    key: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _check(self) -> ExposureIdModel:
        if self.source == "keyword" and not self.key:
            raise ValueError("source 'keyword' needs 'key'")
        if self.source == "filename" and not self.regex:
            raise ValueError("source 'filename' needs 'regex'")
        return self


class HeaderModel(_Strict):
    """Which header keywords give what."""

    exposure_time: str = "EXPTIME"
    dark_time: str | None = None
    time: TimeModel
    filter: KeyModel = KeyModel(key="FILTER")
    object: str | None = "OBJECT"
    observation_type: ObservationTypeModel = ObservationTypeModel()
    ra: AngleModel | None = None
    dec: AngleModel | None = None
    sky_angle: str | None = None
    airmass: str | None = None
    detector: str | None = Field(None, description="key giving the detector id or name (multi-detector)")
    exposure_id: ExposureIdModel = ExposureIdModel(source="time")


class InstrumentModel(_Strict):
    """A whole generic instrument definition."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")
    description: str = ""
    match: dict[str, str | int | float] = Field(min_length=1)
    plate_scale: float = Field(gt=0, description="arcsec per mm")
    distortion: list[float] = Field(default_factory=list)
    pixel_size_mm: float = Field(gt=0)
    detectors: list[DetectorModel] = Field(min_length=1)
    filters: dict[str, str | None] = Field(default_factory=dict)
    header: HeaderModel

    @field_validator("detectors")
    @classmethod
    def _unique(cls, value: list[DetectorModel]) -> list[DetectorModel]:
        ids = [d.id for d in value]
        names = [d.name for d in value]
        if len(set(ids)) != len(ids) or len(set(names)) != len(names):
            raise ValueError("detector ids and names must be unique")
        return value

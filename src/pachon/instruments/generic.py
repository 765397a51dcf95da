"""Generic instruments defined by a YAML file (any FITS camera); schema in :mod:`.generic_schema`."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pachon.core.errors import ConfigError, MetadataTranslationError
from pachon.core.geom import Box
from pachon.instruments.base import Amplifier, Detector, Instrument
from pachon.instruments.generic_schema import AngleModel, DetectorModel, InstrumentModel
from pachon.instruments.geometry import RadialDistortion
from pachon.instruments.translator import (
    HeaderReader,
    ObservationInfo,
    day_obs_from_time,
    exposure_id_from_day_obs,
    parse_time,
    seconds_since_day_obs_start,
)

__all__ = ["GenericInstrument", "load_instrument_model"]

log = logging.getLogger(__name__)


def load_instrument_model(path: str | Path) -> InstrumentModel:
    """Read and validate a YAML definition; errors name the file and the offending field."""
    import pydantic
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read instrument definition: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: an instrument definition must be a YAML mapping, got {type(data).__name__}")
    try:
        return InstrumentModel.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"field {'.'.join(str(p) for p in err['loc'])!r}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: invalid instrument definition: {problems}") from None


def _section(value: str | None, where: str) -> Box | None:
    if value is None:
        return None
    try:
        return Box.from_fits_section(value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _build_detector(model: DetectorModel, pixel_size_mm: float, source: str) -> Detector:
    raw_bbox = Box(0, 0, model.width, model.height)
    data_boxes = [
        _section(a.data_section, f"{source}: detector {model.name} amplifier {a.name}") or raw_bbox
        for a in model.amplifiers
    ]
    ox, oy = min(b.x0 for b in data_boxes), min(b.y0 for b in data_boxes)
    amps = []
    for amp, data in zip(model.amplifiers, data_boxes, strict=True):
        where = f"{source}: detector {model.name} amplifier {amp.name}"
        assembled = _section(amp.detector_section, where) or data.shifted(-ox, -oy)
        try:
            amps.append(Amplifier(
                name=amp.name, gain=amp.gain or model.gain, read_noise=amp.read_noise or model.read_noise,
                saturation=amp.saturation or model.saturation, bias_level=amp.bias_level,
                raw_bbox=raw_bbox, raw_data_bbox=data,
                raw_serial_overscan_bbox=_section(amp.serial_overscan_section, where),
                raw_parallel_overscan_bbox=_section(amp.parallel_overscan_section, where),
                raw_serial_prescan_bbox=_section(amp.serial_prescan_section, where),
                bbox=assembled, flip_x=amp.flip_x, flip_y=amp.flip_y, hdu=None,
            ))
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    x1 = max(a.bbox.x1 for a in amps)
    y1 = max(a.bbox.y1 for a in amps)
    return Detector(id=model.id, name=model.name, raft=None, purpose=model.purpose,
                    physical_type=model.physical_type, bbox=Box(0, 0, x1, y1), pixel_size_mm=pixel_size_mm,
                    amplifiers=tuple(amps), center_mm=model.center_mm, yaw_deg=model.yaw_deg)


def _matches(value: Any, expected: str | int | float) -> bool:
    if isinstance(expected, str) and expected.startswith("re:"):
        return value is not None and re.search(expected[3:], str(value).strip()) is not None
    if isinstance(expected, str):
        return isinstance(value, str) and value.strip().lower() == expected.strip().lower()
    return isinstance(value, int | float) and not isinstance(value, bool) and value == expected


def _group_digits(groups: tuple[str | None, ...]) -> str:
    out = []
    for g in groups:
        if g is None:
            continue
        out.append(g if g.isdigit() else "".join(f"{ord(ch.lower()) - 96:02d}" for ch in g))
    return "".join(out)


class GenericInstrument(Instrument):
    """An instrument described entirely by an :class:`InstrumentModel` (usually from YAML)."""

    def __init__(self, model: InstrumentModel, *, source: str = "<definition>") -> None:
        detectors = [_build_detector(d, model.pixel_size_mm, source) for d in model.detectors]
        super().__init__(model.name, detectors, dict(model.filters),
                         RadialDistortion(model.plate_scale, tuple(model.distortion)),
                         raw_format="single_hdu")
        self.model = model
        self.source = source

    @classmethod
    def from_yaml(cls, path: str | Path) -> GenericInstrument:
        """Load a definition file (validated; errors name the file and field)."""
        return cls(load_instrument_model(path), source=str(path))

    def can_translate(self, header: Mapping[str, Any]) -> bool:
        """Whether every ``match`` rule holds for this header."""
        return all(_matches(header.get(key), expected) for key, expected in self.model.match.items())

    def _begin(self, h: HeaderReader) -> Any:
        spec = self.model.header.time
        value = h.raw(spec.key)
        if spec.time_key:
            value = f"{str(value).strip()}T{h.string(spec.time_key)}"
        try:
            return parse_time(value, fmt=spec.format, scale=spec.scale)
        except ValueError as exc:
            raise h.error(spec.key,
                          f"value {value!r} is not a time in format {spec.format!r}: {exc}") from None

    def _angle(self, h: HeaderReader, spec: AngleModel | None) -> float | None:
        if spec is None or not h.has(spec.key):
            return None
        value = h.raw(spec.key)
        if isinstance(value, int | float):
            return float(value) * (15.0 if spec.unit == "hourangle" else 1.0)
        from astropy.coordinates import Angle

        try:
            return float(Angle(str(value).strip(), unit=spec.unit).degree)
        except ValueError:
            raise h.error(spec.key, f"value {value!r} is not an angle in {spec.unit}") from None

    def _seq_num(self, h: HeaderReader, begin: Any, day_obs: int) -> int:
        rule = self.model.header.exposure_id
        if rule.source == "time":
            return seconds_since_day_obs_start(begin, day_obs)
        if rule.source == "filename":
            if h.filename == "<header>":
                raise MetadataTranslationError(
                    f"{self.name}: the exposure id comes from the file name; "
                    "pass filename= to translate_header")
            text, label = Path(h.filename).name, "file name"
        else:
            text, label = h.string(rule.key), f"header key {rule.key!r}"
        if rule.regex is None:
            return h.integer(rule.key)
        match = re.search(rule.regex, text)
        digits = _group_digits(match.groups() if match and match.groups() else (match[0],) if match else ())
        if not digits:
            raise MetadataTranslationError(
                f"{h.filename}: {label} {text!r} does not match the exposure-id regex {rule.regex!r} "
                f"of {self.name} ({self.source})")
        return int(digits)

    def _detector(self, h: HeaderReader) -> Detector:
        key = self.model.header.detector
        if key is None:
            if len(self.detectors) > 1:
                raise MetadataTranslationError(f"{self.name} ({self.source}) has several detectors: set "
                                               "header.detector to the key that names one")
            return self.detectors[0]
        value = h.raw(key)
        try:
            return self.detector(int(value) if str(value).strip().isdigit() else str(value).strip())
        except LookupError:
            raise h.error(key, f"names detector {value!r}, which {self.name} lacks") from None

    def _observation_type(self, h: HeaderReader) -> str:
        spec = self.model.header.observation_type
        if spec.key is None or not h.has(spec.key):
            return spec.default
        value = h.string(spec.key).lower()
        mapping = {k.strip().lower(): v for k, v in spec.map.items()}
        return mapping.get(value, value)

    def translate_header(self, header: Mapping[str, Any], *, filename: str | None = None) -> ObservationInfo:
        """Translate a header with the keyword mapping of the definition."""
        from astropy.time import TimeDelta

        spec = self.model.header
        h = HeaderReader(header, filename, self.name)
        detector = self._detector(h)
        exposure_time = h.number(spec.exposure_time)
        begin = self._begin(h)
        h.check_exposure(spec.exposure_time, exposure_time, None, None, spec.exposure_time)
        day_obs = day_obs_from_time(begin)
        seq_num = self._seq_num(h, begin, day_obs)
        exposure_id = exposure_id_from_day_obs(day_obs, seq_num, filename=h.filename)
        from_header = h.string(spec.filter.key, None) if spec.filter.key else None
        physical_filter = from_header or spec.filter.default
        if physical_filter is None:
            raise h.error(spec.filter.key or "filter", "is missing and the definition gives no default")
        physical_filter = str(physical_filter)
        if physical_filter not in self.filters:
            log.info("%s: physical filter %r is not in %s's filter list; band unknown",
                     h.filename, physical_filter, self.name)
        obs_type = self._observation_type(h)
        obs_id = Path(filename).name.split(".")[0] if filename else f"{self.name}_{exposure_id}"
        return ObservationInfo(
            instrument=self.name, detector=detector.id, detector_name=detector.name,
            exposure_id=exposure_id, visit_id=exposure_id if obs_type == "science" else None,
            physical_filter=physical_filter, band=self.filters.get(physical_filter), day_obs=day_obs,
            seq_num=seq_num, observation_type=obs_type, datetime_begin=begin,
            datetime_end=begin + TimeDelta(exposure_time, format="sec"), exposure_time=exposure_time,
            dark_time=h.number(spec.dark_time, exposure_time) if spec.dark_time else exposure_time,
            target_name=h.string(spec.object, None) if spec.object else None,
            tracking_ra=self._angle(h, spec.ra), tracking_dec=self._angle(h, spec.dec),
            sky_angle=h.number(spec.sky_angle, None) if spec.sky_angle else None,
            airmass=h.number(spec.airmass, None) if spec.airmass else None,
            group=obs_id, obs_id=obs_id,
        )

"""Typed, validated configuration of the survey simulator.

Every knob has a default that works; :meth:`SimConfig.from_dict` builds a configuration from
nested mappings (a YAML file, for instance) and rejects unknown keys.  Invalid values raise
:class:`~pachon.core.errors.ConfigError` naming the parameter and saying what is allowed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pachon.core.errors import ConfigError

__all__ = ["BANDS", "SurveyConfig", "SkyConfig", "OpticsConfig", "DetectorConfig", "CalibConfig", "SimConfig"]

log = logging.getLogger(__name__)

BANDS = ("u", "g", "r", "i", "z", "y")
#: AB magnitude giving 1 e-/s on the detector (Rubin's 6.4 m effective aperture, nominal throughputs).
DEFAULT_ZEROPOINTS = {"u": 26.5, "g": 28.3, "r": 28.1, "i": 27.9, "z": 27.5, "y": 26.7}
#: Dark-sky brightness at zenith (AB mag/arcsec^2).
DEFAULT_SKY = {"u": 22.9, "g": 22.3, "r": 21.2, "i": 20.5, "z": 19.6, "y": 18.6}
#: Atmospheric extinction (mag per airmass).
DEFAULT_EXTINCTION = {"u": 0.48, "g": 0.21, "r": 0.13, "i": 0.10, "z": 0.08, "y": 0.08}


def _positive(section: str, name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        need = "zero or positive" if allow_zero else "positive"
        raise ConfigError(f"sim config: {section}.{name} must be {need}, got {value!r}")


def _check_bands(section: str, name: str, bands: Any) -> None:
    unknown = [b for b in bands if b not in BANDS]
    if unknown:
        raise ConfigError(
            f"sim config: {section}.{name} has unknown band(s) {unknown}; use bands from {list(BANDS)}"
        )


@dataclass
class SurveyConfig:
    """The cadence: fields, nights, visits and observing conditions."""

    n_visits: int = 4
    bands: tuple[str, ...] = ("g", "r", "i")
    n_fields: int = 1
    ra: float = 150.0
    dec: float = -30.0
    field_spacing_deg: float = 0.05
    n_nights: int = 1
    start_mjd: float = 60400.0
    exposure_time: float = 30.0
    seeing_fwhm: tuple[float, float] = (0.6, 1.0)
    rotation_deg: tuple[float, float] = (0.0, 0.0)
    revisit_minutes: float = 30.0

    def validate(self) -> None:
        """Raise ConfigError on bad values."""
        if self.n_visits < 1:
            raise ConfigError(f"sim config: survey.n_visits must be at least 1, got {self.n_visits!r}")
        if not self.bands:
            raise ConfigError("sim config: survey.bands is empty; give at least one of " + ", ".join(BANDS))
        _check_bands("survey", "bands", self.bands)
        _positive("survey", "exposure_time", self.exposure_time)
        for name in ("n_fields", "n_nights"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"sim config: survey.{name} must be at least 1, got {getattr(self, name)!r}"
                )
        if not -90.0 <= self.dec <= 90.0:
            raise ConfigError(f"sim config: survey.dec must lie in [-90, 90] deg, got {self.dec!r}")
        lo, hi = self.seeing_fwhm
        if not 0 < lo <= hi:
            raise ConfigError(
                f"sim config: survey.seeing_fwhm must be (min, max) with 0 < min <= max arcsec, "
                f"got {self.seeing_fwhm!r}"
            )


@dataclass
class SkyConfig:
    """Source populations (densities per square degree, counts per field)."""

    star_density: float = 40000.0
    star_mag_range: tuple[float, float] = (16.0, 24.5)
    galaxy_density: float = 60000.0
    galaxy_mag_range: tuple[float, float] = (19.0, 24.5)
    variable_fraction: float = 0.02
    n_transients: int = 2
    n_movers: int = 2
    satellite_probability: float = 0.1
    bright_star_mag: float = 13.0
    n_bright_stars: int = 1
    #: (bright, faint) r magnitudes of the variable stars (uniform), None: those of the other stars
    #: (a power law, mostly faint). Set it to get many detectable variables on a small field.
    variable_mag_range: tuple[float, float] | None = None

    def validate(self) -> None:
        """Raise ConfigError on bad values."""
        for name in ("star_density", "galaxy_density", "variable_fraction", "satellite_probability"):
            _positive("sky", name, getattr(self, name), allow_zero=True)
        if self.variable_fraction > 1 or self.satellite_probability > 1:
            raise ConfigError(
                "sim config: sky.variable_fraction and sky.satellite_probability are "
                "fractions between 0 and 1"
            )
        for name in ("n_transients", "n_movers", "n_bright_stars"):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"sim config: sky.{name} must be zero or positive, got {getattr(self, name)!r}"
                )
        for name in ("star_mag_range", "galaxy_mag_range", "variable_mag_range"):
            if getattr(self, name) is None:
                continue
            lo, hi = getattr(self, name)
            if not lo < hi:
                raise ConfigError(
                    f"sim config: sky.{name} must be (bright, faint) with bright < faint, got {(lo, hi)!r}"
                )


@dataclass
class OpticsConfig:
    """Atmosphere and optics: PSF, throughput, sky, vignetting, ghosts, DCR."""

    psf_model: str = "kolmogorov"
    outer_scale_m: float = 25.0
    optical_sigma_arcsec: float = 0.15
    optical_sigma_edge_arcsec: float = 0.10
    optical_shear_edge: float = 0.04
    zeropoints: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_ZEROPOINTS))
    sky_brightness: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SKY))
    extinction: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_EXTINCTION))
    vignetting: float = 0.1
    ghost_fraction: float = 1e-3
    ghost_mag: float = 15.0
    dcr: bool = False
    dcr_arcsec_per_mag: float = 0.05

    def validate(self) -> None:
        """Raise ConfigError on bad values."""
        if self.psf_model not in ("kolmogorov", "vonkarman"):
            raise ConfigError(
                f"sim config: optics.psf_model must be 'kolmogorov' or 'vonkarman', got {self.psf_model!r}"
            )
        for name in ("zeropoints", "sky_brightness", "extinction"):
            _check_bands("optics", name, getattr(self, name))
            missing = [b for b in BANDS if b not in getattr(self, name)]
            if missing:
                raise ConfigError(f"sim config: optics.{name} lacks band(s) {missing}")
        _positive("optics", "outer_scale_m", self.outer_scale_m)
        _positive("optics", "optical_sigma_arcsec", self.optical_sigma_arcsec, allow_zero=True)
        if not 0 <= self.vignetting < 1:
            raise ConfigError(
                f"sim config: optics.vignetting is the fractional light loss at the "
                f"field edge, in [0, 1), got {self.vignetting!r}"
            )


@dataclass
class DetectorConfig:
    """Electronic and sensor signatures (the amplifier's own gain, noise, bias come from the camera)."""

    bias_offset_rms: float = 20.0
    bias_row_rms: float = 0.5
    bias_gradient: float = 3.0
    dark_current: float = 0.02
    hot_pixel_fraction: float = 2e-5
    hot_pixel_current: float = 50.0
    prnu: float = 0.01
    flat_large_scale: float = 0.03
    nonlinearity: float = -2.0e-7
    crosstalk: float = 2.0e-4
    brighter_fatter: float = 4.0e-6
    #: opt-in: brighter-fatter on the collected charge of every exposure (flats included) with a
    #: Gaussian kernel of ``bf_kernel_sigma`` px summing to ``brighter_fatter``
    #: (:mod:`pachon.sim.charge_bf`) instead of on drawn stars only
    bf_on_charge: bool = False
    bf_kernel_sigma: float = 0.0
    n_bad_columns: int = 1
    full_well: float | None = None
    cosmic_ray_rate: float = 0.02
    adc_max: int = 2**18 - 1

    def validate(self) -> None:
        """Raise ConfigError on bad values."""
        for name in (
            "bias_offset_rms",
            "bias_row_rms",
            "dark_current",
            "hot_pixel_fraction",
            "prnu",
            "flat_large_scale",
            "brighter_fatter",
            "bf_kernel_sigma",
            "cosmic_ray_rate",
            "hot_pixel_current",
        ):
            _positive("detector", name, getattr(self, name), allow_zero=True)
        if self.n_bad_columns < 0:
            raise ConfigError(f"sim config: detector.n_bad_columns must be >= 0, got {self.n_bad_columns!r}")
        if abs(self.crosstalk) >= 0.1:
            raise ConfigError(
                f"sim config: detector.crosstalk is a coupling coefficient, |c| < 0.1, got {self.crosstalk!r}"
            )
        if self.full_well is not None:
            _positive("detector", "full_well", self.full_well)


@dataclass
class CalibConfig:
    """Calibration exposures taken before the survey (per detector of the camera)."""

    n_bias: int = 2
    n_dark: int = 1
    dark_time: float = 30.0
    n_flat: int = 1
    flat_level: float = 20000.0
    flat_bands: tuple[str, ...] | None = None

    def validate(self) -> None:
        """Raise ConfigError on bad values."""
        for name in ("n_bias", "n_dark", "n_flat"):
            if getattr(self, name) < 0:
                raise ConfigError(f"sim config: calibs.{name} must be >= 0, got {getattr(self, name)!r}")
        _positive("calibs", "dark_time", self.dark_time)
        _positive("calibs", "flat_level", self.flat_level)
        if self.flat_bands is not None:
            _check_bands("calibs", "flat_bands", self.flat_bands)


_SECTIONS = {
    "survey": SurveyConfig,
    "sky": SkyConfig,
    "optics": OpticsConfig,
    "detector": DetectorConfig,
    "calibs": CalibConfig,
}


@dataclass
class SimConfig:
    """The whole simulation: instrument, detectors, survey, sky, optics, detector, calibrations, outputs."""

    instrument: str = "PachonTestCam"
    detectors: tuple[int, ...] | None = None
    survey: SurveyConfig = field(default_factory=SurveyConfig)
    sky: SkyConfig = field(default_factory=SkyConfig)
    optics: OpticsConfig = field(default_factory=OpticsConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    calibs: CalibConfig = field(default_factory=CalibConfig)
    refcat_level: int = 7
    refcat_name: str = "sim_gaia"
    refcat_mag_limit: float = 20.5

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every section; raise ConfigError on the first problem (instrument included)."""
        for name in _SECTIONS:
            getattr(self, name).validate()
        if not 0 <= self.refcat_level <= 12:
            raise ConfigError(
                f"sim config: refcat_level must be a HEALPix order in 0..12, got {self.refcat_level!r}"
            )
        self.get_instrument()

    def get_instrument(self) -> Any:
        """The :class:`~pachon.instruments.Instrument` named by ``instrument`` (ConfigError if unknown)."""
        from pachon.instruments import get_instrument

        inst = get_instrument(self.instrument)
        if self.detectors is not None:
            known = {d.id for d in inst.detectors}
            bad = [d for d in self.detectors if d not in known]
            if bad:
                raise ConfigError(
                    f"sim config: detectors {bad} are not detectors of {inst.name}; "
                    f"ids run {min(known)}..{max(known)}"
                )
        return inst

    def to_dict(self) -> dict[str, Any]:
        """A plain nested dict (JSON/YAML-able)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SimConfig:
        """Build from nested mappings; unknown keys raise ConfigError naming them."""
        top = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - top
        if unknown:
            raise ConfigError(f"sim config: unknown key(s) {sorted(unknown)}; known: {sorted(top)}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            section = _SECTIONS.get(key)
            if section is None:
                kwargs[key] = tuple(value) if key == "detectors" and value is not None else value
                continue
            names = {f.name for f in dataclasses.fields(section)}
            bad = set(value) - names
            if bad:
                raise ConfigError(
                    f"sim config: unknown key(s) {sorted(bad)} in section {key!r}; known: {sorted(names)}"
                )
            kwargs[key] = section(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
        return cls(**kwargs)

"""Typed configuration of ISR and the container of the calibrations it applies."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pachon.algorithms.isr.linear_features import LinearFeatureConfig
from pachon.algorithms.isr.overscan import OverscanConfig
from pachon.core.errors import ConfigError

__all__ = ["IsrConfig", "IsrCalibs", "GhostModel"]

log = logging.getLogger(__name__)


@dataclass
class GhostModel:
    """Optical ghost model: where a bright star's ghost lands and what it looks like.

    A star at focal-plane position ``(fx, fy)`` (mm) makes a ring-shaped ghost centred on
    ``scale * (fx, fy)`` with outer radius ``radius_mm`` and inner radius
    ``inner_fraction * radius_mm``, holding ``flux_fraction`` of the star's flux.
    """

    scale: float = 1.03
    radius_mm: float = 0.4
    inner_fraction: float = 0.5
    flux_fraction: float = 1e-3

    def to_dict(self) -> dict[str, float]:
        """JSON-able form (the ``ghost_model`` calibration is stored as Json)."""
        return {
            "scale": self.scale,
            "radius_mm": self.radius_mm,
            "inner_fraction": self.inner_fraction,
            "flux_fraction": self.flux_fraction,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GhostModel:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: float(v) for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class IsrConfig:
    """Which ISR steps run, and how.  Every step is switchable; defaults suit Rubin-like raws.

    Attributes
    ----------
    do_saturation
        Flag pixels at or above ``saturation_fraction`` x the amplifier's saturation (SAT),
        and above ``suspect_fraction`` (SUSPECT) when set.
    do_overscan, overscan
        Overscan subtraction and its method.
    do_crosstalk, do_inter_detector_crosstalk
        Intra-detector crosstalk (needs ``calibs.crosstalk``); between detectors (needs
        ``calibs.inter_detector``).
    do_gain
        Multiply by the gain (ADU → electrons); ``calibs.gains`` override the nominal ones.
    do_linearity, do_bias, do_dark, do_flat, do_brighter_fatter, do_defects, do_interpolate
        The corresponding corrections (each needs its calibration when on; a missing one is an
        error unless ``skip_missing_calibs``).
    do_variance
        Variance plane from the signal, gain and read noise.
    do_linear_features, linear_features
        Hough-transform masking of satellite trails (STREAK plane).
    do_ghosts, ghost_min_saturated
        Mask the ghosts of bright stars from ``calibs.ghost_model`` (GHOST plane): the stars of
        ``calibs.bright_stars`` when given, else the stars found in the exposure as groups of at
        least ``ghost_min_saturated`` SAT pixels.
    do_vignetting, vignetting_radius_mm
        Mask (VIGNETTED, NO_DATA) pixels further than this from the optical axis.
    interpolate_planes
        Mask planes interpolated over by ``do_interpolate``.
    skip_missing_calibs
        Skip a step whose calibration is absent instead of raising.
    """

    do_saturation: bool = True
    saturation_fraction: float = 0.95
    suspect_fraction: float | None = None
    do_overscan: bool = True
    overscan: OverscanConfig = field(default_factory=OverscanConfig)
    do_crosstalk: bool = True
    do_inter_detector_crosstalk: bool = False
    do_gain: bool = True
    do_linearity: bool = True
    do_bias: bool = True
    do_dark: bool = True
    do_flat: bool = True
    do_brighter_fatter: bool = True
    bf_iterations: int = 8
    do_defects: bool = True
    do_interpolate: bool = True
    interpolate_planes: tuple[str, ...] = ("BAD", "SAT")
    do_variance: bool = True
    do_linear_features: bool = False
    linear_features: LinearFeatureConfig = field(default_factory=LinearFeatureConfig)
    do_ghosts: bool = False
    ghost_min_saturated: int = 25
    do_vignetting: bool = False
    vignetting_radius_mm: float | None = None
    skip_missing_calibs: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.overscan, dict):
            self.overscan = OverscanConfig(**self.overscan)
        if isinstance(self.linear_features, dict):
            self.linear_features = LinearFeatureConfig(**self.linear_features)
        self.interpolate_planes = tuple(self.interpolate_planes)
        if not 0 < self.saturation_fraction <= 2:
            raise ConfigError(f"isr.saturation_fraction must be in (0, 2], got {self.saturation_fraction!r}")
        if self.do_vignetting and self.vignetting_radius_mm is None:
            raise ConfigError("isr.do_vignetting needs isr.vignetting_radius_mm (focal-plane radius, mm)")


@dataclass
class IsrCalibs:
    """Calibrations for one detector.  Images are assembled arrays (or Exposures) in electrons.

    Attributes
    ----------
    bias
        Combined bias (electrons).
    dark
        Combined dark current (electrons per second of dark time).
    flat
        Normalised flat (mean 1).
    crosstalk
        ``C[victim, source]`` between the detector's amplifiers (readout order).
    inter_detector
        ``(source images, coefficients)`` for detector-to-detector crosstalk.
    linearity
        ``(n_amp, n_coeff)`` polynomial coefficients (see :mod:`.linearity`).
    bf_kernel
        Brighter-fatter kernel.
    defects
        ``(n, 4)`` defect boxes.
    gains, read_noise
        Per-amplifier gain (e-/ADU) and read noise (e-), e.g. from the photon transfer curve.
    ghost_model, bright_stars
        Ghost model and the focal-plane positions (mm) of bright stars, shape ``(n, 2)``.
    detector
        Id of the detector the calibrations were made for (checked when given).
    """

    bias: Any = None
    dark: Any = None
    flat: Any = None
    crosstalk: np.ndarray | None = None
    inter_detector: tuple[list[np.ndarray], list[float]] | None = None
    linearity: np.ndarray | None = None
    bf_kernel: np.ndarray | None = None
    defects: np.ndarray | None = None
    gains: np.ndarray | None = None
    read_noise: np.ndarray | None = None
    ghost_model: GhostModel | None = None
    bright_stars: np.ndarray | None = None
    detector: int | None = None

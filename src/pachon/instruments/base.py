"""Camera description: :class:`Amplifier`, :class:`Detector` and the :class:`Instrument` base."""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pachon.core.errors import ConfigError, DataIdError
from pachon.core.geom import Box
from pachon.instruments.geometry import RadialDistortion, focal_plane_to_pixel, pixel_to_focal_plane

if TYPE_CHECKING:  # pragma: no cover
    from pachon.instruments.translator import ObservationInfo

__all__ = ["Amplifier", "Detector", "Instrument", "RAW_FORMATS"]

log = logging.getLogger(__name__)

#: ``single_hdu``: all amplifiers share the primary (or first image) array;
#: ``hdu_per_amplifier``: amplifier ``amp.hdu`` of the file holds each amplifier.
RAW_FORMATS = ("single_hdu", "hdu_per_amplifier")


@dataclass(frozen=True)
class Amplifier:
    """One readout amplifier: electronics and where its pixels are in the raw and assembled images.

    Raw boxes are in the coordinates of the raw array holding the amplifier (its own HDU,
    or the whole single-HDU frame); ``bbox`` is where its data land in the assembled detector
    image.  ``flip_x``/``flip_y`` say whether the raw data must be flipped to be assembled.
    """

    name: str
    gain: float
    read_noise: float
    saturation: float
    bias_level: float
    raw_bbox: Box
    raw_data_bbox: Box
    raw_serial_overscan_bbox: Box | None
    raw_parallel_overscan_bbox: Box | None
    raw_serial_prescan_bbox: Box | None
    bbox: Box
    flip_x: bool = False
    flip_y: bool = False
    hdu: int | None = None

    def __post_init__(self) -> None:
        if self.raw_data_bbox.shape != self.bbox.shape:
            raise ConfigError(
                f"amplifier {self.name!r}: raw data box {self.raw_data_bbox} and assembled box "
                f"{self.bbox} differ in shape; fix the amplifier definition"
            )
        for label in ("raw_data_bbox", "raw_serial_overscan_bbox", "raw_parallel_overscan_bbox",
                      "raw_serial_prescan_bbox"):
            box = getattr(self, label)
            if box is not None and not self.raw_bbox.contains(box):
                raise ConfigError(
                    f"amplifier {self.name!r}: {label} {box} lies outside raw_bbox {self.raw_bbox}")


@dataclass(frozen=True)
class Detector:
    """One detector (CCD) and its placement on the focal plane."""

    id: int
    name: str
    raft: str | None
    purpose: str
    physical_type: str
    bbox: Box
    pixel_size_mm: float
    amplifiers: tuple[Amplifier, ...]
    center_mm: tuple[float, float] = (0.0, 0.0)
    yaw_deg: float = 0.0
    serial: str | None = None

    @property
    def name_in_raft(self) -> str:
        """The sensor name within its raft (``S11`` of ``R22_S11``), or the full name."""
        return self.name.split("_", 1)[1] if "_" in self.name else self.name

    @property
    def center_pixel(self) -> tuple[float, float]:
        """Pixel position of the detector centre (pixel centres at integers)."""
        return (self.bbox.x0 + (self.bbox.width - 1) / 2.0, self.bbox.y0 + (self.bbox.height - 1) / 2.0)

    def amplifier(self, name: str) -> Amplifier:
        """The amplifier called ``name``."""
        for amp in self.amplifiers:
            if amp.name == name:
                return amp
        raise ConfigError(f"detector {self.name!r} has no amplifier {name!r}; "
                          f"known: {[a.name for a in self.amplifiers]}")

    def _geometry(self) -> dict[str, Any]:
        return {"center_mm": self.center_mm, "yaw_deg": self.yaw_deg,
                "pixel_size_mm": self.pixel_size_mm, "center_pixel": self.center_pixel}

    def pixel_to_focal_plane(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel → focal-plane position (mm), vectorized."""
        return pixel_to_focal_plane(x, y, **self._geometry())

    def focal_plane_to_pixel(self, fx: np.ndarray, fy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Focal-plane position (mm) → pixel, vectorized."""
        return focal_plane_to_pixel(fx, fy, **self._geometry())

    def corners_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Focal-plane positions of the four outer pixel-edge corners (counter-clockwise)."""
        x0, y0 = self.bbox.x0 - 0.5, self.bbox.y0 - 0.5
        x1, y1 = x0 + self.bbox.width, y0 + self.bbox.height
        return self.pixel_to_focal_plane(np.array([x0, x1, x1, x0]), np.array([y0, y0, y1, y1]))

    def contains_pixel(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether pixel positions fall on the detector (pixel edges at ±0.5)."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        b = self.bbox
        inside_x = (x >= b.x0 - 0.5) & (x < b.x0 + b.width - 0.5)
        return inside_x & (y >= b.y0 - 0.5) & (y < b.y0 + b.height - 0.5)


@dataclass
class Instrument(abc.ABC):
    """A camera: its detectors, filters, optics and header translation.

    Subclasses implement :meth:`can_translate` and :meth:`translate_header`.
    """

    name: str
    detectors: Sequence[Detector]
    filters: Mapping[str, str | None]
    distortion: RadialDistortion
    raw_format: str = "single_hdu"
    exposure_max: int = 10**14
    _by_name: dict[str, Detector] = field(init=False, repr=False)
    _by_id: dict[int, Detector] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.raw_format not in RAW_FORMATS:
            raise ConfigError(f"instrument {self.name!r}: raw_format must be one of {RAW_FORMATS}, "
                              f"got {self.raw_format!r}")
        self.detectors = list(self.detectors)
        self._by_id = {d.id: d for d in self.detectors}
        self._by_name = {d.name: d for d in self.detectors}
        if len(self._by_id) != len(self.detectors) or len(self._by_name) != len(self.detectors):
            raise ConfigError(f"instrument {self.name!r}: detector ids and names must be unique")

    @staticmethod
    def from_yaml(path: str | Path) -> Instrument:
        """Load a generic instrument from a YAML definition file (see :mod:`.generic_schema`)."""
        from pachon.instruments.generic import GenericInstrument

        return GenericInstrument.from_yaml(path)

    @property
    def class_name(self) -> str:
        """Importable name of the instrument's class (stored in the registry)."""
        return f"{type(self).__module__}.{type(self).__qualname__}"

    @property
    def plate_scale(self) -> float:
        """Plate scale on the optical axis (arcsec/mm)."""
        return self.distortion.plate_scale

    @property
    def distortion_coefficients(self) -> tuple[float, ...]:
        """Radial distortion coefficients (see :class:`RadialDistortion`)."""
        return self.distortion.coefficients

    def detector(self, key: int | str) -> Detector:
        """The detector with this integer id or full name."""
        found = self._by_id.get(key) if isinstance(key, int | np.integer) else self._by_name.get(str(key))
        if found is None:
            raise DataIdError(f"instrument {self.name!r} has no detector {key!r}; ids run "
                              f"{min(self._by_id)}..{max(self._by_id)}, names such as "
                              f"{self.detectors[0].name!r}")
        return found

    def focal_plane_to_field_angle(self, fx: np.ndarray, fy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Focal plane (mm) → field angle (rad), with the radial distortion."""
        return self.distortion.focal_plane_to_field_angle(fx, fy)

    def field_angle_to_focal_plane(self, tx: np.ndarray, ty: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Field angle (rad) → focal plane (mm), with the radial distortion."""
        return self.distortion.field_angle_to_focal_plane(tx, ty)

    def focal_plane_to_detector(
        self, fx: np.ndarray, fy: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Which detector each focal-plane point falls on, and where.

        Returns
        -------
        detector, x, y
            Detector ids (−1 where a point falls between detectors; x, y are then NaN) and
            pixel positions.  Vectorized over points; the loop runs over detectors only.
        """
        fx, fy = np.broadcast_arrays(np.asarray(fx, float), np.asarray(fy, float))
        det = np.full(fx.shape, -1, dtype=np.int64)
        xs = np.full(fx.shape, np.nan)
        ys = np.full(fx.shape, np.nan)
        for d in self.detectors:
            x, y = d.focal_plane_to_pixel(fx, fy)
            hit = d.contains_pixel(x, y) & (det < 0)
            det[hit], xs[hit], ys[hit] = d.id, x[hit], y[hit]
        return det, xs, ys

    @abc.abstractmethod
    def can_translate(self, header: Mapping[str, Any]) -> bool:
        """Whether this header comes from this instrument."""

    @abc.abstractmethod
    def translate_header(self, header: Mapping[str, Any], *, filename: str | None = None) -> ObservationInfo:
        """Translate a raw header into an :class:`~pachon.instruments.translator.ObservationInfo`."""

    def dimension_records(self) -> dict[str, list[dict[str, Any]]]:
        """Rows of the registry's ``instrument``, ``detector`` and ``physical_filter`` tables."""
        instrument = {
            "name": self.name, "class_name": self.class_name,
            "detector_max": max(self._by_id) + 1,
            "visit_max": self.exposure_max, "exposure_max": self.exposure_max,
        }
        detectors = [
            {"instrument": self.name, "id": d.id, "full_name": d.name, "raft": d.raft,
             "name_in_raft": d.name_in_raft, "purpose": d.purpose, "physical_type": d.physical_type}
            for d in self.detectors
        ]
        filters = [{"instrument": self.name, "name": name, "band": band}
                   for name, band in self.filters.items()]
        return {"instrument": [instrument], "detector": detectors, "physical_filter": filters}


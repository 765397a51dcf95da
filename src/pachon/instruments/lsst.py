"""Rubin's cameras: LSSTCam, LSSTComCam and LATISS, with their header translators.

Header conventions (Rubin camera headers): ``INSTRUME``; times ``MJD-BEG``/``DATE-BEG``
(``TIMESYS``, TAI by default) or, in older headers, ``MJD-OBS`` (TAI, as obs_lsst reads it)
or ``DATE-OBS``; ``DAYOBS`` and ``SEQNUM``; ``CONTRLLR`` (``O`` observatory control,
``C`` camera control); ``EXPTIME``, ``DARKTIME``, ``IMGTYPE``, ``OBSID``, ``GROUPID``,
``FILTER`` (LATISS: ``FILTER`` and ``FILTER2``, joined as ``"FILTER~FILTER2"``),
``RASTART``/``DECSTART`` or ``RA``/``DEC``, ``ROTPA``, ``AMSTART``, ``OBJECT``,
``RAFTBAY``/``CCDSLOT`` for the detector.

Exposure ids: ``day_obs * 100000 + seq_num`` plus ``10**12`` for camera-controller
(``C``) images, which reproduces obs_lsst's id of the LATISS test raw
``3018092000065-det000.fits`` (``AT_C_20180920_000065``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pachon.core.errors import MetadataTranslationError
from pachon.instruments.base import Detector, Instrument
from pachon.instruments.geometry import RadialDistortion
from pachon.instruments.lsst_layout import (
    E2V,
    ITL,
    ITL_RAFTS,
    make_corner_detectors,
    make_raft_detectors,
    raft_center,
    science_raft_names,
)
from pachon.instruments.translator import (
    HeaderReader,
    ObservationInfo,
    day_obs_from_time,
    exposure_id_from_day_obs,
    parse_time,
)

__all__ = ["LsstInstrument", "make_lsstcam", "make_lsstcomcam", "make_latiss", "CONTROLLER_OFFSETS"]

log = logging.getLogger(__name__)

#: Exposure-id offsets per image controller (only those we can check against real ids).
CONTROLLER_OFFSETS = {"O": 0, "C": 10**12}
_TIME_KEYS = ("MJD-BEG", "DATE-BEG", "MJD-OBS", "DATE-OBS")
_SCIENCE_TYPES = {"science", "object", "skyexp", "acq", "engtest", "cwfs"}


class LsstInstrument(Instrument):
    """A Rubin camera; subclasses differ in geometry, accepted ``INSTRUME`` values and filters."""

    def __init__(self, name: str, detectors: list[Detector], filters: Mapping[str, str | None],
                 distortion: RadialDistortion, *, instrume: tuple[str, ...],
                 detector_from_header: bool, filter_keys: tuple[str, ...]) -> None:
        super().__init__(name, detectors, filters, distortion, raw_format="hdu_per_amplifier")
        self.instrume = tuple(v.lower() for v in instrume)
        self.detector_from_header = detector_from_header
        self.filter_keys = filter_keys

    def can_translate(self, header: Mapping[str, Any]) -> bool:
        """Whether ``INSTRUME`` names this camera."""
        value = header.get("INSTRUME")
        return isinstance(value, str) and value.strip().lower() in self.instrume

    def _check_required(self, h: HeaderReader) -> None:
        missing = [k for k in ("EXPTIME", "SEQNUM") if not h.has(k)]
        if not any(h.has(k) for k in _TIME_KEYS):
            missing.append("one of " + "/".join(_TIME_KEYS))
        if self.detector_from_header:
            missing += [k for k in ("RAFTBAY", "CCDSLOT") if not h.has(k)]
        if missing:
            kind = " (a guider stamp file, not a raw frame)" if h.has("N_STAMPS") else ""
            raise MetadataTranslationError(
                f"{h.filename}: cannot translate as {self.name}{kind}: header lacks "
                f"{', '.join(repr(m) for m in missing)}; only raw frames of the camera can be ingested"
            )

    def _detector(self, h: HeaderReader) -> Detector:
        if not self.detector_from_header:
            return self.detectors[0]
        name = f"{h.string('RAFTBAY')}_{h.string('CCDSLOT')}"
        try:
            return self.detector(name)
        except LookupError:
            raise h.error("RAFTBAY",
                          f"and 'CCDSLOT' name detector {name!r}, which {self.name} lacks") from None

    def _physical_filter(self, h: HeaderReader) -> str:
        parts = [h.string(k, None) for k in self.filter_keys]
        if all(p is None for p in parts):
            log.info("%s: no filter keys %s; physical_filter set to 'unknown'", h.filename, self.filter_keys)
            return "unknown"
        return "~".join(p if p is not None else "unknown" for p in parts)

    def _times(self, h: HeaderReader, exposure_time: float) -> tuple[Any, Any]:
        from astropy.time import TimeDelta

        timesys = (h.string("TIMESYS", "TAI") or "TAI").lower()
        try:
            if h.has("MJD-BEG"):
                begin = parse_time(h.number("MJD-BEG"), fmt="mjd", scale="tai")
            elif h.has("DATE-BEG"):
                begin = parse_time(h.string("DATE-BEG"), scale=timesys)
            elif h.has("MJD-OBS"):
                begin = parse_time(h.number("MJD-OBS"), fmt="mjd", scale="tai")
            else:
                begin = parse_time(h.string("DATE-OBS"), scale="utc")
            if h.has("MJD-END"):
                end = parse_time(h.number("MJD-END"), fmt="mjd", scale="tai")
            elif h.has("DATE-END"):
                end = parse_time(h.string("DATE-END"), scale=timesys)
            else:
                end = begin + TimeDelta(exposure_time, format="sec")
        except ValueError as exc:
            raise h.error("DATE-BEG/MJD-OBS", f"cannot be parsed as a time: {exc}") from None
        return begin, end

    def translate_header(self, header: Mapping[str, Any], *, filename: str | None = None) -> ObservationInfo:
        """Translate a Rubin raw header (see the module docstring for the keys used)."""
        h = HeaderReader(header, filename, self.name)
        self._check_required(h)
        detector = self._detector(h)
        exposure_time = h.number("EXPTIME")
        begin, end = self._times(h, exposure_time)
        end_key = "MJD-END" if h.has("MJD-END") else "DATE-END" if h.has("DATE-END") else "EXPTIME"
        h.check_exposure("EXPTIME", exposure_time, begin, end, end_key)
        day_obs = h.integer("DAYOBS", None) or day_obs_from_time(begin)
        seq_num = h.integer("SEQNUM")
        controller = h.string("CONTRLLR", "O")
        if controller not in CONTROLLER_OFFSETS:
            raise h.error("CONTRLLR", f"has value {controller!r}; supported controllers are "
                          f"{sorted(CONTROLLER_OFFSETS)}")
        exposure_id = CONTROLLER_OFFSETS[controller] + exposure_id_from_day_obs(
            day_obs, seq_num, filename=h.filename)
        raw_type = h.string("IMGTYPE", None)
        if raw_type is None:
            log.info("%s: no IMGTYPE; observation_type set to 'unknown'", h.filename)
        obs_type = "unknown" if raw_type is None else raw_type.lower()
        obs_type = "science" if obs_type in _SCIENCE_TYPES else obs_type
        physical_filter = self._physical_filter(h)
        band = self.filters.get(physical_filter)
        ra = h.number("RASTART", None) if h.has("RASTART") else h.number("RA", None)
        dec = h.number("DECSTART", None) if h.has("DECSTART") else h.number("DEC", None)
        obs_id = h.string("OBSID", None) or f"{self.name}_{controller}_{day_obs}_{seq_num:06d}"
        return ObservationInfo(
            instrument=self.name, detector=detector.id, detector_name=detector.name,
            exposure_id=exposure_id, visit_id=exposure_id if obs_type == "science" else None,
            physical_filter=physical_filter, band=band, day_obs=day_obs, seq_num=seq_num,
            observation_type=obs_type, datetime_begin=begin, datetime_end=end,
            exposure_time=exposure_time, dark_time=h.number("DARKTIME", exposure_time),
            target_name=h.string("OBJECT", None), tracking_ra=ra, tracking_dec=dec,
            sky_angle=h.number("ROTPA", None), airmass=h.number("AMSTART", None),
            group=h.string("GROUPID", None) or obs_id, obs_id=obs_id,
        )


LSSTCAM_FILTERS = {"u_24": "u", "g_6": "g", "r_57": "r", "i_39": "i", "z_20": "z", "y_10": "y",
                   "empty": "white", "unknown": None}
COMCAM_FILTERS = {"u_02": "u", "g_01": "g", "r_03": "r", "i_06": "i", "z_03": "z", "y_04": "y",
                  "unknown": None}
LATISS_FILTERS = {
    "SDSSg_65mm~empty": "g", "SDSSr_65mm~empty": "r", "SDSSi_65mm~empty": "i",
    "SDSSz_65mm~empty": "z", "SDSSy_65mm~empty": "y", "empty~empty": "white",
    "empty~holo4_003": "white", "unknown": None,
}
#: Nominal radial distortion of the Simonyi telescope: 0.1 % scale change at r = 316 mm.
LSSTCAM_DISTORTION = RadialDistortion(20.0, (1.0e-8,))


def make_lsstcam() -> LsstInstrument:
    """LSSTCam: 189 science CCDs in 21 rafts plus 8 guiders and 8 wavefront half-CCDs."""
    detectors: list[Detector] = []
    for raft in science_raft_names():
        ccd = ITL if raft in ITL_RAFTS else E2V
        detectors += make_raft_detectors(raft, len(detectors), ccd, raft_center(raft))
    detectors += make_corner_detectors(len(detectors))
    return LsstInstrument("LSSTCam", detectors, LSSTCAM_FILTERS, LSSTCAM_DISTORTION,
                          instrume=("lsstCam", "LSSTCam"), detector_from_header=True, filter_keys=("FILTER",))


def make_lsstcomcam() -> LsstInstrument:
    """LSSTComCam: one raft (R22) of nine ITL CCDs, ids 0..8, LSSTCam's optics."""
    detectors = make_raft_detectors("R22", 0, ITL, (0.0, 0.0))
    return LsstInstrument("LSSTComCam", detectors, COMCAM_FILTERS, LSSTCAM_DISTORTION,
                          instrume=("comCam", "LSSTComCam"), detector_from_header=True,
                          filter_keys=("FILTER",))


def make_latiss() -> LsstInstrument:
    """LATISS: the Auxiliary Telescope's single ITL CCD, about 0.1 arcsec per pixel."""
    detectors = make_raft_detectors("RXX", 0, ITL, (0.0, 0.0))[4:5]
    det = detectors[0]
    single = Detector(id=0, name="RXX_S00", raft="RXX", purpose="SCIENCE", physical_type=det.physical_type,
                      bbox=det.bbox, pixel_size_mm=det.pixel_size_mm, amplifiers=det.amplifiers)
    return LsstInstrument("LATISS", [single], LATISS_FILTERS, RadialDistortion(10.0),
                          instrume=("LATISS", "LSST_ATISS"), detector_from_header=False,
                          filter_keys=("FILTER", "FILTER2"))

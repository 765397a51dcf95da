"""Raw FITS files as the camera writes them, with Rubin-style headers.

Rubin cameras (LSSTCam, LSSTComCam, LATISS) and PachonTestCam are supported: the primary
header carries the keys the Rubin translator reads (``INSTRUME``, ``MJD-BEG``, ``DAYOBS``,
``SEQNUM``, ``IMGTYPE``, ``FILTER``, ``RAFTBAY``/``CCDSLOT``...) plus an approximate TAN WCS;
one image HDU per amplifier (``hdu_per_amplifier``) or the amplifiers laid out in one array
(``single_hdu``) follow, with ``DATASEC``/``BIASSEC``/``DETSEC``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pachon.core.errors import ConfigError

__all__ = ["RawMetadata", "raw_header", "write_raw", "physical_filter_for", "check_supported"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawMetadata:
    """What a raw header records about one exposure (science or calibration)."""

    observation_type: str
    day_obs: int
    seq_num: int
    mjd_start: float
    exposure_time: float
    dark_time: float
    band: str | None = None
    ra: float | None = None
    dec: float | None = None
    rotation_deg: float | None = None
    airmass: float | None = None
    target: str | None = None
    seed: int = 0


def check_supported(instrument: Any) -> None:
    """Raise ConfigError unless raws of ``instrument`` can be written (Rubin-style headers)."""
    from pachon.instruments.lsst import LsstInstrument

    if not isinstance(instrument, LsstInstrument):
        raise ConfigError(
            f"instrument {instrument.name!r}: the simulator writes Rubin-style raw headers "
            "only (LSSTCam, LSSTComCam, LATISS, PachonTestCam); choose one of those"
        )


def physical_filter_for(instrument: Any, band: str | None) -> str | None:
    """The instrument's physical filter of ``band`` (None: a filter with no band, for calibrations)."""
    wanted = ("white", None) if band is None else (band,)
    for want in wanted:
        for name, b in instrument.filters.items():
            if b == want and name != "unknown":
                return name
    if band is None:
        return None
    raise ConfigError(
        f"instrument {instrument.name!r} has no filter for band {band!r}; "
        f"its filters: {dict(instrument.filters)}"
    )


def raw_header(instrument: Any, detector: Any, meta: RawMetadata, wcs: Any = None) -> Any:
    """The primary header of one raw file."""
    from astropy.io import fits
    from astropy.time import Time

    h = fits.Header()
    begin = Time(meta.mjd_start, format="mjd", scale="tai")
    end = Time(meta.mjd_start + meta.exposure_time / 86400.0, format="mjd", scale="tai")
    controller = "O"
    obs_id = f"{instrument.name}_{controller}_{meta.day_obs}_{meta.seq_num:06d}"
    cards: list[tuple[str, Any, str]] = [
        ("TELESCOP", "Pachon simulated telescope", ""),
        ("INSTRUME", instrument.name, "camera"),
        ("SIMULATE", True, "made by pachon.sim"),
        ("SIMSEED", meta.seed, "simulation seed"),
        ("OBSID", obs_id, ""),
        ("CONTRLLR", controller, "image controller"),
        ("DAYOBS", str(meta.day_obs), "observing day (TAI - 12 h)"),
        ("SEQNUM", meta.seq_num, ""),
        ("GROUPID", obs_id, ""),
        ("IMGTYPE", meta.observation_type.upper(), ""),
        ("TIMESYS", "TAI", ""),
        ("MJD-BEG", meta.mjd_start, "start of exposure (TAI)"),
        ("MJD-END", meta.mjd_start + meta.exposure_time / 86400.0, ""),
        ("DATE-BEG", begin.isot, ""),
        ("DATE-END", end.isot, ""),
        ("EXPTIME", meta.exposure_time, "s"),
        ("DARKTIME", meta.dark_time, "s"),
        ("RAFTBAY", detector.raft or "R00", ""),
        ("CCDSLOT", detector.name_in_raft, ""),
        ("DETSIZE", f"[1:{detector.bbox.width},1:{detector.bbox.height}]", ""),
        ("CCD_TYPE", detector.physical_type, ""),
        ("CCD_SERN", detector.serial or "", ""),
    ]
    pf = physical_filter_for(instrument, meta.band)
    if pf is not None:
        keys = getattr(instrument, "filter_keys", ("FILTER",))
        for key, part in zip(keys, pf.split("~") + ["empty"] * len(keys), strict=False):
            cards.append((key, part, ""))
    if meta.ra is not None:
        cards += [
            ("RA", meta.ra, "deg"),
            ("DEC", meta.dec, "deg"),
            ("RASTART", meta.ra, "deg"),
            ("DECSTART", meta.dec, "deg"),
            ("ROTPA", meta.rotation_deg, "sky position angle, deg"),
            ("AMSTART", meta.airmass, ""),
            ("OBJECT", meta.target or "sim_field", ""),
        ]
    for key, value, comment in cards:
        h[key] = (value, comment)
    if wcs is not None:
        from pachon.core.wcs import wcs_to_header

        h.update(wcs_to_header(wcs))
    return h


def _amp_header(amp: Any) -> Any:
    from astropy.io import fits

    from pachon.core.geom import Box

    h = fits.Header()
    h["EXTNAME"] = f"Segment{amp.name[1:]}" if amp.name.startswith("C") else amp.name
    h["DATASEC"] = amp.raw_data_bbox.shifted(-amp.raw_bbox.x0, -amp.raw_bbox.y0).to_fits_section()
    if amp.raw_serial_overscan_bbox is not None:
        h["BIASSEC"] = amp.raw_serial_overscan_bbox.shifted(
            -amp.raw_bbox.x0, -amp.raw_bbox.y0
        ).to_fits_section()
    b: Box = amp.bbox
    xs = (b.x1, b.x0 + 1) if amp.flip_x else (b.x0 + 1, b.x1)
    ys = (b.y1, b.y0 + 1) if amp.flip_y else (b.y0 + 1, b.y1)
    h["DETSEC"] = f"[{xs[0]}:{xs[1]},{ys[0]}:{ys[1]}]"
    h["GAIN"] = (amp.gain, "nominal e-/ADU")
    h["RDNOISE"] = (amp.read_noise, "nominal e-")
    return h


def write_raw(path: str | Path, instrument: Any, detector: Any, raws: list[np.ndarray], header: Any) -> Path:
    """Write one detector's raw amplifier arrays in the instrument's raw format."""
    from astropy.io import fits

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if instrument.raw_format == "hdu_per_amplifier":
        hdus: list[Any] = [fits.PrimaryHDU(header=header)]
        order = sorted(range(len(raws)), key=lambda i: detector.amplifiers[i].hdu or i + 1)
        hdus += [fits.ImageHDU(raws[i], header=_amp_header(detector.amplifiers[i])) for i in order]
        hdul = fits.HDUList(hdus)
    else:
        amps = detector.amplifiers
        shape = (max(a.raw_bbox.y1 for a in amps), max(a.raw_bbox.x1 for a in amps))
        frame = np.zeros(shape, dtype=np.int32)
        for amp, raw in zip(amps, raws, strict=True):
            frame[amp.raw_bbox.slices()] = raw
        hdul = fits.HDUList([fits.PrimaryHDU(frame, header=header)])
    tmp = path.with_suffix(".tmp")
    hdul.writeto(tmp, overwrite=True)
    tmp.replace(path)
    return path

"""Raw frames: amplifier arrays out of a raw file, geometry from header keywords, assembly.

A raw reaches ISR as an ``astropy.io.fits.HDUList`` (storage class ``RawFits``) or as a list
of per-amplifier arrays.  :func:`amplifier_arrays` returns one array per amplifier of the
detector, in the raw (readout) orientation, each covering the amplifier's ``raw_bbox``.
:func:`amplifier_from_header` rebuilds a single-amplifier geometry from ``BIASSEC`` /
``TRIMSEC`` / ``DATASEC`` keywords, and :func:`assemble` places corrected data segments into
the detector image, undoing the readout flips.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pachon.core.errors import ConfigError, FormatError
from pachon.core.geom import Box

__all__ = ["amplifier_arrays", "amplifier_from_header", "data_segment", "to_readout", "assemble"]

log = logging.getLogger(__name__)


def _where(data_id: Any) -> str:
    return f"raw {data_id}" if data_id is not None else "raw"


def amplifier_arrays(
    raw: Any, detector: Any, *, data_id: Any = None, dtype: Any = np.float64
) -> list[np.ndarray]:
    """One array per amplifier (covering ``amp.raw_bbox``, readout orientation).

    Parameters
    ----------
    raw
        An ``HDUList`` (one HDU per amplifier, or the whole frame in the first image HDU), a
        single 2-D array (all amplifiers in one frame), or a sequence of per-amplifier arrays.
    detector
        The :class:`~pachon.instruments.Detector` describing the layout.
    data_id
        Data ID named in error messages.
    dtype
        Type of the returned arrays (float64 by default); None keeps the raw's own type and
        avoids copies (views where possible).

    Raises
    ------
    FormatError
        An amplifier is missing, or an array does not have the amplifier's raw shape.
    """
    amps = detector.amplifiers
    where = _where(data_id)
    if isinstance(raw, np.ndarray) and raw.ndim == 2:
        return [
            np.asarray(raw[a.raw_bbox.slices()], dtype=dtype) for a in _check_frame(raw, amps, where)
        ]
    if isinstance(raw, Sequence) and not hasattr(raw, "index_of"):
        arrays = [np.asarray(a) for a in raw]
        if len(arrays) != len(amps):
            raise FormatError(
                f"{where}: {len(arrays)} amplifier arrays for detector {detector.name} "
                f"which has {len(amps)}; supply every amplifier"
            )
        out = arrays
    else:
        out = _from_hdus(raw, detector, where)
        if isinstance(out, np.ndarray):
            return [
                np.asarray(out[a.raw_bbox.slices()], dtype=dtype) for a in _check_frame(out, amps, where)
            ]
    for amp, arr in zip(amps, out, strict=True):
        if arr.shape != amp.raw_bbox.shape:
            raise FormatError(
                f"{where}: amplifier {amp.name} of detector {detector.name} has shape "
                f"{arr.shape}, expected {amp.raw_bbox.shape}; is this the right detector?"
            )
    return [np.asarray(a, dtype=dtype) for a in out]


def _check_frame(frame: np.ndarray, amps: Sequence[Any], where: str) -> Sequence[Any]:
    need = (max(a.raw_bbox.y1 for a in amps), max(a.raw_bbox.x1 for a in amps))
    if frame.shape[0] < need[0] or frame.shape[1] < need[1]:
        raise FormatError(
            f"{where}: frame of shape {frame.shape} is smaller than the amplifier "
            f"layout needs {need}; is this the right detector?"
        )
    return amps


def _from_hdus(hdul: Any, detector: Any, where: str) -> list[np.ndarray] | np.ndarray:
    images = [h for h in hdul if getattr(h, "data", None) is not None and np.ndim(h.data) == 2]
    amps = detector.amplifiers
    if all(a.hdu is None for a in amps):
        if not images:
            raise FormatError(f"{where}: no image data in the file; expected one frame")
        return np.asarray(images[0].data)
    out = []
    for amp in amps:
        idx = amp.hdu
        hdu = hdul[idx] if idx is not None and idx < len(hdul) else None
        if hdu is None or getattr(hdu, "data", None) is None:
            raise FormatError(
                f"{where}: amplifier {amp.name} (HDU {idx}) of detector {detector.name} is "
                f"missing from the raw file ({len(hdul)} HDUs); re-transfer the raw"
            )
        out.append(np.asarray(hdu.data))
    return out


def amplifier_from_header(header: Mapping[str, Any], amp: Any, *, filename: str | None = None) -> Any:
    """A copy of ``amp`` with its raw geometry read from ``BIASSEC`` and ``TRIMSEC``/``DATASEC``.

    Sections are FITS 1-based inclusive ``[x1:x2,y1:y2]``.  The assembled ``bbox`` is the data
    section moved to the origin.

    Raises
    ------
    FormatError
        Neither ``TRIMSEC`` nor ``DATASEC`` is present, or a section is malformed.
    """
    where = filename or "header"
    key = "TRIMSEC" if "TRIMSEC" in header else "DATASEC" if "DATASEC" in header else None
    if key is None:
        raise FormatError(f"{where}: no TRIMSEC or DATASEC keyword; cannot find the data section")
    try:
        data = Box.from_fits_section("".join(str(header[key]).split()))
        bias = Box.from_fits_section("".join(str(header["BIASSEC"]).split())) if "BIASSEC" in header else None
    except (ConfigError, ValueError) as exc:
        raise FormatError(f"{where}: bad section keyword: {exc}") from exc
    naxis = (int(header.get("NAXIS2", data.y1)), int(header.get("NAXIS1", data.x1)))
    raw_bbox = Box(
        0, 0, max(naxis[1], data.x1, bias.x1 if bias else 0), max(naxis[0], data.y1, bias.y1 if bias else 0)
    )
    return dataclasses.replace(
        amp,
        raw_bbox=raw_bbox,
        raw_data_bbox=data,
        raw_serial_overscan_bbox=bias,
        raw_parallel_overscan_bbox=None,
        raw_serial_prescan_bbox=None,
        bbox=Box(0, 0, data.width, data.height),
    )


def data_segment(array: np.ndarray, amp: Any) -> np.ndarray:
    """The imaging section of one amplifier's raw array (a view, readout orientation)."""
    return array[amp.raw_data_bbox.slices(origin=(amp.raw_bbox.x0, amp.raw_bbox.y0))]


def to_readout(image: np.ndarray, amp: Any) -> np.ndarray:
    """The amplifier's part of an assembled image, flipped into readout orientation (a view)."""
    seg = image[amp.bbox.slices()]
    if amp.flip_x:
        seg = seg[:, ::-1]
    if amp.flip_y:
        seg = seg[::-1, :]
    return seg


def assemble(segments: Sequence[np.ndarray], detector: Any, *, dtype: Any = np.float64) -> np.ndarray:
    """Place per-amplifier data segments (readout orientation) into the detector image."""
    b = detector.bbox
    out = np.zeros(b.shape, dtype=dtype)
    for amp, seg in zip(detector.amplifiers, segments, strict=True):
        to_readout(out, amp)[...] = seg
    return out

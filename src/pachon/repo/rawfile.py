"""Reading raw FITS headers safely: non-FITS, truncated and mis-sized files get clear errors."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from pachon.core.errors import FormatError, IngestError

__all__ = ["read_raw_header", "check_raw_shape"]

_log = logging.getLogger(__name__)


def _data_bytes(header: Any) -> int:
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0
    dims = [int(header.get(f"NAXIS{i}", 0)) for i in range(1, naxis + 1)]
    gcount, pcount = int(header.get("GCOUNT", 1)), int(header.get("PCOUNT", 0))
    return abs(int(header["BITPIX"])) // 8 * gcount * (pcount + int(np.prod(dims)))


def read_raw_header(path: str | Path) -> tuple[Any, list[tuple[int, int]]]:
    """Read the headers of a raw FITS file and check it is complete.

    Returns
    -------
    header, shapes
        The primary header merged with the first extension's (primary wins), and the
        ``(NAXIS2, NAXIS1)`` shape of every HDU holding a 2-D image.

    Raises
    ------
    FormatError
        Not a FITS file, or truncated (data shorter than the headers declare).
    """
    from astropy.io import fits

    path = str(path)
    size = os.path.getsize(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False, lazy_load_hdus=False) as hdul:
                infos = [(hdu.header.copy(), hdul.fileinfo(i)) for i, hdu in enumerate(hdul)]
    except (OSError, ValueError, IndexError, TypeError) as exc:
        raise FormatError(
            f"{path}: not a readable FITS file ({exc}); only FITS raws can be ingested"
        ) from exc
    if not infos:
        raise FormatError(f"{path}: FITS file without any HDU")
    shapes = []
    for i, (hdr, info) in enumerate(infos):
        end = info["datLoc"] + _data_bytes(hdr)
        if end > size:
            raise FormatError(
                f"{path}: truncated FITS file: HDU {i} needs {end} bytes, the file has {size}; "
                f"copy the file again from its source"
            )
        if int(hdr.get("NAXIS", 0)) == 2:
            shapes.append((int(hdr["NAXIS2"]), int(hdr["NAXIS1"])))
    header = infos[0][0].copy()
    if len(infos) > 1:
        for card in infos[1][0].cards:
            if (
                card.keyword
                and card.keyword not in header
                and card.keyword not in ("XTENSION", "PCOUNT", "GCOUNT")
            ):
                header[card.keyword] = card.value
    return header, shapes


def check_raw_shape(
    path: str | Path, shapes: list[tuple[int, int]], instrument: Any, detector_id: int
) -> None:
    """Check that the file's image size matches the instrument's detector definition.

    Raises
    ------
    IngestError
        The sizes differ (naming the file, the detector and both shapes).
    """
    det = instrument.detector(detector_id)
    amps = list(getattr(det, "amplifiers", []) or [])
    if getattr(instrument, "raw_format", "single_hdu") == "hdu_per_amplifier":
        expected = sorted((a.raw_bbox.height, a.raw_bbox.width) for a in amps)
        got = sorted(shapes)
        if got[: len(expected)] != expected and sorted(set(got)) != sorted(set(expected)):
            raise IngestError(
                f"{path}: amplifier images {got} do not match detector {det.name} of "
                f"{instrument.name} ({expected}); is this the right instrument definition?"
            )
        return
    if amps:
        expected_shape = (
            max(a.raw_bbox.y0 + a.raw_bbox.height for a in amps),
            max(a.raw_bbox.x0 + a.raw_bbox.width for a in amps),
        )
    else:
        expected_shape = det.bbox.shape
    if not shapes:
        raise IngestError(
            f"{path}: no 2-D image in the file, but detector {det.name} of {instrument.name} "
            f"expects {expected_shape[1]}x{expected_shape[0]} pixels"
        )
    if shapes[0] != tuple(expected_shape):
        raise IngestError(
            f"{path}: image is {shapes[0][1]}x{shapes[0][0]} pixels (NAXIS1xNAXIS2) but detector "
            f"{det.name} of {instrument.name} is {expected_shape[1]}x{expected_shape[0]}; "
            "check the instrument definition"
        )

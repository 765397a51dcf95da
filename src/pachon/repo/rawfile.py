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


_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZ": "bz2"}


def _stream_size(path: str) -> int:
    """Size in bytes of the FITS stream: the file size, or the decompressed size.

    Raises
    ------
    FormatError
        A compressed file that ends before its end-of-stream marker (truncated).
    """
    with open(path, "rb") as f:
        magic = f.read(2)
    kind = _COMPRESSED.get(magic)
    if kind is None:
        return os.path.getsize(path)
    import bz2
    import gzip
    import zlib

    opener = gzip.open if kind == "gzip" else bz2.open
    total = 0
    try:
        with opener(path, "rb") as f:
            while chunk := f.read(1 << 22):
                total += len(chunk)
    except (EOFError, OSError, zlib.error) as exc:
        raise FormatError(
            f"{path}: truncated or corrupt {kind} file ({exc}); copy the file again from its source"
        ) from exc
    return total


def _check_tail(path: str, infos: list[Any], size: int) -> None:
    """Refuse a file whose bytes after the last readable HDU start another (cut) header."""
    hdr, info = infos[-1]
    end = info["datLoc"] + _data_bytes(hdr)
    end += -end % 2880
    if size - end < 8:
        return
    import bz2
    import gzip

    with open(path, "rb") as f:
        magic = f.read(2)
    opener = {"gzip": gzip.open, "bz2": bz2.open}.get(_COMPRESSED.get(magic, ""), open)
    with opener(path, "rb") as f:
        f.seek(end)
        if f.read(8) == b"XTENSION":
            raise FormatError(
                f"{path}: truncated FITS file: the header of HDU {len(infos)} is cut short "
                f"(the stream ends at byte {size}); copy the file again from its source"
            )


def read_raw_header(path: str | Path) -> tuple[Any, list[tuple[int, int]]]:
    """Read the headers of a raw FITS file and check it is complete.

    Returns
    -------
    header, shapes
        The primary header merged with the first extension's (primary wins), and the
        ``(NAXIS2, NAXIS1)`` shape of every HDU holding a 2-D image (primary or ``IMAGE``
        extensions; binary tables such as LSST's ``REB_COND`` are not images).  Gzip and
        bzip2 compressed files are measured decompressed.

    Raises
    ------
    FormatError
        Not a FITS file, or truncated (data shorter than the headers declare).
    """
    from astropy.io import fits

    path = str(path)
    size = _stream_size(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False, lazy_load_hdus=False) as hdul:
                infos = [(hdu.header.copy(), hdul.fileinfo(i)) for i, hdu in enumerate(hdul)]
    except (OSError, EOFError, ValueError, IndexError, TypeError) as exc:
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
                f"{path}: truncated FITS file: HDU {i} needs {end} bytes, the file has {size}"
                f"{' (decompressed)' if size != os.path.getsize(path) else ''}; "
                f"copy the file again from its source"
            )
        is_image = i == 0 or str(hdr.get("XTENSION", "")).strip().upper() == "IMAGE"
        if is_image and int(hdr.get("NAXIS", 0)) == 2:
            shapes.append((int(hdr["NAXIS2"]), int(hdr["NAXIS1"])))
    _check_tail(path, infos, size)
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

    For instruments with one HDU per amplifier, the file must hold exactly one image HDU of
    each amplifier's raw shape (as many amplifier-sized HDUs as the detector has amplifiers,
    with the same multiset of shapes).  Further image HDUs whose shape is not an amplifier
    shape (a small engineering or guider stamp, say) are allowed and ignored; one more
    amplifier-sized HDU than amplifiers is rejected, since the reader could not tell which
    is which.

    Raises
    ------
    IngestError
        The sizes differ (naming the file, the detector and both shapes).
    """
    from collections import Counter

    det = instrument.detector(detector_id)
    amps = list(getattr(det, "amplifiers", []) or [])
    if getattr(instrument, "raw_format", "single_hdu") == "hdu_per_amplifier":
        expected = Counter((a.raw_bbox.height, a.raw_bbox.width) for a in amps)
        got = Counter(shape for shape in shapes if shape in expected)
        if got != expected:
            n_got, n_exp = sum(got.values()), sum(expected.values())
            raise IngestError(
                f"{path}: {n_got} amplifier image HDU(s) of shapes {dict(got)} but detector "
                f"{det.name} of {instrument.name} has {n_exp} amplifiers of shapes "
                f"{dict(expected)} (NAXIS2, NAXIS1); the file is incomplete or this is the "
                f"wrong instrument definition"
            )
        extra = [shape for shape in shapes if shape not in expected]
        if extra:
            _log.debug("%s: ignoring %d non-amplifier image HDU(s) %s", path, len(extra), extra)
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

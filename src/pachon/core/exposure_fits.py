"""Multi-extension FITS persistence of :class:`~pachon.core.exposure.Exposure`.

Layout of the file:

- primary HDU (no data): the exposure metadata cards, then the visit info ``VI*`` cards;
- ``IMAGE`` (float32), ``MASK`` (uint32, stored as int32 with ``BZERO = 2**31`` as the FITS
  standard does) and ``VARIANCE`` (float32) image extensions, each with the WCS of the *file*
  pixel grid (the parent WCS shifted by ``xy0``) and IRAF ``LTV1``/``LTV2 = -xy0`` so that
  physical coordinates in viewers are parent coordinates; ``MASK`` carries one
  ``HIERARCH MP_<NAME> = bit`` card per mask plane;
- ``PSF`` extensions (``EXTVER`` 1, 2, ...) from :meth:`Psf.to_hdus`, dispatched on ``PSFTYPE``;
- ``PHOTOCALIB``, a one-row binary table.

Reading a sub-box uses ``ImageHDU.section`` so only the rows needed are read from disk.  The
mask is read as its stored integers and turned into ``uint32`` by flipping the sign bit (what
``BZERO = 2**31`` means), one pass instead of astropy's scaled-integer conversion.  A caller
that still holds the pixel planes it just wrote (the prompt worker passing one step's output to
the next) can pass them as ``pixels=``: only the headers, PSF and calibration are read.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from pachon.core.errors import FormatError, PachonError
from pachon.core.geom import Box
from pachon.core.mask import Mask
from pachon.core.visit_info import VISIT_INFO_KEYS, VisitInfo
from pachon.core.wcs import shift_wcs, wcs_from_header, wcs_to_header

if TYPE_CHECKING:
    from astropy.io import fits

    from pachon.core.exposure import Exposure

__all__ = ["read_exposure_bbox", "read_exposure_fits", "write_exposure_fits"]

_log = logging.getLogger(__name__)

PathOrFile = str | os.PathLike[str] | BinaryIO
_FORMAT_KEY = "PXFORMAT"
_FORMAT_VALUE = "PACHON-EXPOSURE-1"
_STRUCTURAL = re.compile(
    r"^(SIMPLE|BITPIX|NAXIS\d*|EXTEND|PCOUNT|GCOUNT|XTENSION|BZERO|BSCALE|EXTNAME|EXTVER)$"
)
_MASK_PREFIX = "MP_"


def _describe(path: PathOrFile) -> str:
    if isinstance(path, str | os.PathLike):
        return os.fspath(path)
    return str(getattr(path, "name", repr(path)))


def _strip(header: fits.Header, extra: frozenset[str] = frozenset()) -> fits.Header:
    out = header.copy()
    for key in {k for k in out.keys() if _STRUCTURAL.match(k) or k in extra or k == _FORMAT_KEY}:
        out.remove(key, remove_all=True)
    return out


def _plane_header(exposure: Exposure) -> fits.Header:
    from astropy.io import fits

    header = fits.Header()
    x0, y0 = exposure.xy0
    if exposure.wcs is not None:
        header.extend(wcs_to_header(shift_wcs(exposure.wcs, x0, y0)).cards)
    header["LTV1"] = (-x0, "minus parent x of the first pixel (xy0)")
    header["LTV2"] = (-y0, "minus parent y of the first pixel (xy0)")
    header["LTM1_1"] = 1.0
    header["LTM2_2"] = 1.0
    return header


def write_exposure_fits(exposure: Exposure, path: PathOrFile) -> None:
    """Write ``exposure`` to ``path`` (overwritten if it exists); see the module docstring."""
    from astropy.io import fits

    primary = _strip(exposure.metadata, VISIT_INFO_KEYS)
    primary[_FORMAT_KEY] = (_FORMAT_VALUE, "file layout (pachon.core.exposure_fits)")
    if exposure.visit_info is not None:
        for card in exposure.visit_info.to_header().cards:
            primary.append(card)
    plane = _plane_header(exposure)
    mask_header = plane.copy()
    for name, bit in sorted(exposure.mask.planes.items(), key=lambda kv: kv[1]):
        mask_header[f"HIERARCH {_MASK_PREFIX}{name}"] = (bit, "mask plane bit")
    hdus: list[Any] = [
        fits.PrimaryHDU(header=primary),
        fits.ImageHDU(np.ascontiguousarray(exposure.image), header=plane.copy(), name="IMAGE"),
        fits.ImageHDU(np.ascontiguousarray(exposure.mask.array), header=mask_header, name="MASK"),
        fits.ImageHDU(np.ascontiguousarray(exposure.variance), header=plane.copy(), name="VARIANCE"),
    ]
    if exposure.psf is not None:
        for i, hdu in enumerate(exposure.psf.to_hdus(), start=1):
            hdu.header["EXTNAME"] = "PSF"
            hdu.header["EXTVER"] = i
            hdus.append(hdu)
    if exposure.photo_calib is not None:
        hdus.append(exposure.photo_calib.to_hdu())
    fits.HDUList(hdus).writeto(path, overwrite=True)
    _log.debug("wrote exposure %s to %s", exposure.bbox, _describe(path))


def read_exposure_fits(path: PathOrFile, *, bbox: Box | None = None,
                       pixels: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> Exposure:
    """Read an exposure written by :func:`write_exposure_fits`.

    Parameters
    ----------
    path
        File name or binary file object.
    bbox
        Parent-coordinate box to read; only those pixels are read from disk.  It must lie
        inside the stored exposure (``ConfigError`` otherwise).
    pixels
        ``(image, mask, variance)`` arrays equal to the stored planes (the ones just written
        to ``path``): they are used as they are (float32, uint32, float32; converted if not) and
        the pixel data are not read.  Not with ``bbox``.
    """
    if pixels is not None and bbox is not None:
        from pachon.core.errors import ConfigError

        raise ConfigError(f"{_describe(path)}: read_exposure_fits takes pixels= or bbox=, not both")
    return _with_file(path, lambda hdul, name: _read(hdul, name, bbox, pixels))


def read_exposure_bbox(path: PathOrFile) -> Box:
    """The parent-coordinate box of a stored exposure, reading headers only."""
    return _with_file(path, lambda hdul, name: _file_box(_hdu(hdul, "IMAGE", name).header, name))


def _with_file(path: PathOrFile, action: Any) -> Any:
    from astropy.io import fits

    name = _describe(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*truncated.*")
        try:
            with fits.open(path, lazy_load_hdus=True, do_not_scale_image_data=True) as hdul:
                return action(hdul, name)
        except (PachonError, FileNotFoundError):
            raise
        except (OSError, ValueError, TypeError, KeyError, IndexError, EOFError, Warning) as exc:
            raise FormatError(
                f"{name}: cannot read as a Pachón exposure FITS file ({exc}); "
                "check that the file is complete and was written by Exposure.write_fits"
            ) from exc


def _hdu(hdul: fits.HDUList, extname: str, name: str) -> Any:
    try:
        return hdul[extname]
    except KeyError:
        raise FormatError(
            f"{name}: no {extname} extension; this is not an exposure written by Exposure.write_fits"
        ) from None


def _file_box(header: fits.Header, name: str) -> Box:
    if header.get("NAXIS") != 2:
        raise FormatError(f"{name}: IMAGE extension is not 2-D (NAXIS={header.get('NAXIS')})")
    x0, y0 = -round(float(header.get("LTV1", 0))), -round(float(header.get("LTV2", 0)))
    return Box(x0, y0, int(header["NAXIS1"]), int(header["NAXIS2"]))


def _owned(data: Any, dtype: type) -> np.ndarray:
    """``data`` as a native, writeable array owning its memory (never a view of the file)."""
    arr = np.asarray(data)
    if arr.dtype == dtype and arr.dtype.isnative and arr.flags.owndata and arr.flags.writeable:
        return arr
    return np.array(arr, dtype=dtype)


def _mask_pixels(raw: Any, header: fits.Header, name: str) -> np.ndarray:
    """Stored (unscaled) mask integers as uint32, applying ``BZERO``/``BSCALE`` exactly."""
    arr = np.asarray(raw)
    bzero, bscale = header.get("BZERO", 0), header.get("BSCALE", 1)
    if bscale != 1 or arr.dtype.kind not in "iu":
        raise FormatError(f"{name}: MASK must hold integers without BSCALE (BITPIX={header.get('BITPIX')}, "
                          f"BSCALE={bscale})")
    if bzero == 2**31 and arr.dtype.itemsize == 4:  # uint32 stored as int32: flip the sign bit
        unsigned = arr.view(arr.dtype.str.replace("i", "u"))  # same bytes and byte order, unsigned
        return np.bitwise_xor(unsigned, np.uint32(2**31), dtype=np.uint32)
    if bzero == 0:
        return np.array(arr, dtype=np.uint32)
    return (arr.astype(np.int64) + int(bzero)).astype(np.uint32)


def _read(hdul: fits.HDUList, name: str, bbox: Box | None,
          given: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> Exposure:
    from pachon.core.exposure import Exposure
    from pachon.core.psf import Psf

    image_hdu, mask_hdu, var_hdu = (_hdu(hdul, ext, name) for ext in ("IMAGE", "MASK", "VARIANCE"))
    file_box = _file_box(image_hdu.header, name)
    for hdu in (mask_hdu, var_hdu):
        if (hdu.header.get("NAXIS2"), hdu.header.get("NAXIS1")) != file_box.shape:
            raise FormatError(f"{name}: {hdu.name} shape differs from the IMAGE shape {file_box.shape}")
    if bbox is None:
        bbox = file_box

        def pixels(hdu: Any) -> Any:
            return hdu.data
    else:
        from pachon.core.errors import ConfigError

        if bbox.is_empty or not file_box.contains(bbox):
            raise ConfigError(f"{name}: requested {bbox} is not inside the stored {file_box}")
        rows, cols = bbox.slices((file_box.x0, file_box.y0))

        def pixels(hdu: Any) -> Any:
            return hdu.section[rows, cols]

    planes = {
        key[len(_MASK_PREFIX) :]: int(value)
        for key, value in mask_hdu.header.items()
        if key.startswith(_MASK_PREFIX)
    }
    if given is not None:
        dtypes = (np.float32, np.uint32, np.float32)
        image, mask_array, variance = (_owned(a, t) for a, t in zip(given, dtypes, strict=True))
        if not image.shape == mask_array.shape == variance.shape == file_box.shape:
            raise FormatError(f"{name}: pixels given have shapes {image.shape}, {mask_array.shape}, "
                              f"{variance.shape}; the file's are {file_box.shape}")
    else:
        image = _owned(pixels(image_hdu), np.float32)
        variance = _owned(pixels(var_hdu), np.float32)
        mask_array = _mask_pixels(pixels(mask_hdu), mask_hdu.header, name)
    mask = Mask(mask_array, planes=planes)
    wcs = None
    if "CTYPE1" in image_hdu.header:
        file_wcs = wcs_from_header(image_hdu.header, name=f"{name}[IMAGE]")
        wcs = shift_wcs(file_wcs, -file_box.x0, -file_box.y0)
    psf_hdus = sorted((h for h in hdul if h.name == "PSF"), key=lambda h: h.header.get("EXTVER", 1))
    try:
        psf = Psf.from_hdus(psf_hdus) if psf_hdus else None
    except FormatError as exc:
        raise FormatError(f"{name}: {exc}") from None
    photo_calib = None
    if any(h.name == "PHOTOCALIB" for h in hdul):
        from pachon.core.photocalib import PhotoCalib

        photo_calib = PhotoCalib.from_hdu(hdul["PHOTOCALIB"])
    primary = hdul[0].header
    visit_info = None
    if any(key in primary for key in VISIT_INFO_KEYS):
        visit_info = VisitInfo.from_header(primary, name=name)
    return Exposure(
        image,
        mask,
        variance,
        wcs=wcs,
        psf=psf,
        photo_calib=photo_calib,
        visit_info=visit_info,
        metadata=_strip(primary, VISIT_INFO_KEYS),
        xy0=(bbox.x0, bbox.y0),
    )

"""Cutouts of image datasets by sky region (the work behind SODA), reading only the pixels needed.

The pixel box of a region is the bounding box of (a) the region's boundary projected through
the image WCS and (b) the image's own edge pixels that fall inside the region, clipped to the
image: exact for the convex regions SODA takes (circles and convex polygons).  ``Exposure``
datasets are read with ``repo.get(ref, parameters={"bbox": box})`` and written back as an
Exposure file (image, mask, variance, WCS shifted to the cutout grid); raw files are cut from
the first 2-D image HDU with ``ImageHDU.section`` and their header copied with ``CRPIX``/``LTV``
shifted, which is exact for every projection (TAN, TAN-SIP, TPV) since all of them are
relative to ``CRPIX``.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np

from pachon.core.errors import ConfigError, FormatError, PachonError
from pachon.core.geom import Box
from pachon.core.sphgeom import Region
from pachon.services.images.regions import boundary_points, wcs_footprint

__all__ = ["NoOverlapError", "pixel_box", "cutout_fits", "image_geometry"]

_log = logging.getLogger(__name__)


class NoOverlapError(PachonError, ValueError):
    """The requested region does not overlap the image (SODA ``NoOverlap``)."""


def pixel_box(wcs: Any, image: Box, region: Region) -> Box:
    """The smallest pixel box of ``image`` holding every pixel that ``region`` touches.

    Parameters
    ----------
    wcs
        Celestial WCS of the parent pixel grid (0-based).
    image
        The image's box in that grid.
    region
        A `Circle` or `ConvexPolygon`.

    Raises
    ------
    NoOverlapError
        The region misses the image.
    """
    if not wcs_footprint(wcs, image.width, image.height, image.x0, image.y0).overlaps(region):
        raise NoOverlapError(f"the region {region} does not overlap the image")
    ra, dec = boundary_points(region, 256)
    with np.errstate(invalid="ignore"):
        bx, by = wcs.all_world2pix(ra, dec, 0, quiet=True) if wcs.sip is not None else wcs.wcs_world2pix(
            ra, dec, 0
        )
    n = 64
    t = np.linspace(0.0, 1.0, n)
    ex = np.concatenate([image.x0 - 0.5 + t * image.width, np.full(n, image.x1 - 0.5),
                         image.x0 - 0.5 + t * image.width, np.full(n, image.x0 - 0.5)])
    ey = np.concatenate([np.full(n, image.y0 - 0.5), image.y0 - 0.5 + t * image.height,
                         np.full(n, image.y1 - 0.5), image.y0 - 0.5 + t * image.height])
    era, edec = wcs.all_pix2world(ex, ey, 0)
    inside = region.contains(era, edec)
    ok = np.isfinite(bx) & np.isfinite(by)
    inner = ok & (bx >= image.x0 - 0.5) & (bx <= image.x1 - 0.5)
    inner &= (by >= image.y0 - 0.5) & (by <= image.y1 - 0.5)
    xs = np.concatenate([bx[inner], ex[inside]])
    ys = np.concatenate([by[inner], ey[inside]])
    if xs.size == 0:  # region strictly inside one pixel, or between samples: take its centre
        c = region.bounding_circle()
        cx, cy = wcs.all_world2pix([c.ra], [c.dec], 0)
        xs, ys = np.asarray(cx, float), np.asarray(cy, float)
    x0 = int(np.floor(np.min(xs) + 0.5))
    x1 = int(np.floor(np.max(xs) + 0.5)) + 1
    y0 = int(np.floor(np.min(ys) + 0.5))
    y1 = int(np.floor(np.max(ys) + 0.5)) + 1
    box = Box.from_corners(x0, y0, x1, y1).intersection(image)
    if box is None or box.is_empty:
        raise NoOverlapError(f"the region {region} does not overlap the image")
    return box


def _raw_hdu(hdul: Any, name: str) -> tuple[int, Any]:
    for i, hdu in enumerate(hdul):
        if hdu.header.get("NAXIS") == 2:
            return i, hdu
    raise FormatError(f"{name}: no 2-D image HDU to cut out")


def _raw_header(hdul: Any, index: int) -> Any:
    header = hdul[index].header.copy()
    if "CTYPE1" not in header and index > 0 and "CTYPE1" in hdul[0].header:
        merged = hdul[0].header.copy()
        merged.update(header)
        header = merged
    return header


def image_geometry(path: Any, storage_class: str, name: str) -> tuple[Any, Box]:
    """The parent-grid WCS and pixel box of a stored image, from its headers.

    Raises
    ------
    ConfigError
        The image has no celestial WCS, so no sky region can be cut out of it.
    """
    from astropy.io import fits

    from pachon.core.wcs import shift_wcs, wcs_from_header

    if storage_class == "Exposure":
        from pachon.core.exposure_fits import read_exposure_bbox

        box = read_exposure_bbox(path)
    with fits.open(path, lazy_load_hdus=True) as hdul:
        if storage_class == "Exposure":
            header = hdul["IMAGE"].header
            if "CTYPE1" not in header:
                raise ConfigError(f"{name} has no WCS; sky cutouts need one")
            return shift_wcs(wcs_from_header(header, name=name), -box.x0, -box.y0), box
        index, hdu = _raw_hdu(hdul, name)
        header = _raw_header(hdul, index)
        if "CTYPE1" not in header:
            raise ConfigError(f"{name} has no WCS; sky cutouts need one")
        box = Box(0, 0, int(hdu.header["NAXIS1"]), int(hdu.header["NAXIS2"]))
        return wcs_from_header(header, name=name), box


def _cut_raw(path: Any, box: Box, name: str) -> bytes:
    from astropy.io import fits

    with fits.open(path, lazy_load_hdus=True) as hdul:
        index, hdu = _raw_hdu(hdul, name)
        rows, cols = box.slices()
        data = np.asarray(hdu.section[rows, cols])
        header = _raw_header(hdul, index)
    for key in ("SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "PCOUNT",
                "GCOUNT", "BZERO", "BSCALE", "INHERIT"):
        header.remove(key, ignore_missing=True, remove_all=True)
    header["CRPIX1"] = float(header["CRPIX1"]) - box.x0
    header["CRPIX2"] = float(header["CRPIX2"]) - box.y0
    header["LTV1"] = float(header.get("LTV1", 0.0)) - box.x0
    header["LTV2"] = float(header.get("LTV2", 0.0)) - box.y0
    header["CUTSEC"] = (box.to_fits_section(), "section of the original image (1-based)")
    buf = io.BytesIO()
    fits.PrimaryHDU(data, header=header).writeto(buf)
    return buf.getvalue()


def cutout_fits(repo: Any, ref: Any, region: Region) -> tuple[bytes, Box]:
    """A FITS cutout of dataset ``ref`` around ``region`` and the parent pixel box it covers.

    Raises
    ------
    NoOverlapError
        The region misses the image.
    ConfigError
        The dataset is not an image with a WCS.
    """
    rec = repo.file_record(ref)
    if rec.storage_class not in ("Exposure", "RawFits"):
        raise ConfigError(f"dataset {ref.id} is a {rec.storage_class}, not an image; no cutout")
    local, temporary = repo.datastore.local_copy(rec.path)
    try:
        wcs, image = image_geometry(local, rec.storage_class, f"dataset {ref.id}")
        box = pixel_box(wcs, image, region)
        if rec.storage_class == "RawFits":
            return _cut_raw(local, box, f"dataset {ref.id}"), box
    finally:
        if temporary:
            local.unlink(missing_ok=True)
    exposure = repo.get(ref, parameters={"bbox": box})
    buf = io.BytesIO()
    exposure.write_fits(buf)
    _log.debug("cutout %s of %s", box, ref)
    return buf.getvalue(), box

"""The Exposure: image, mask and variance planes with WCS, PSF, calibration and visit info."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from pachon.core.errors import ConfigError
from pachon.core.geom import Box
from pachon.core.mask import Mask

if TYPE_CHECKING:
    from astropy.io import fits
    from astropy.wcs import WCS

    from pachon.core.photocalib import PhotoCalib
    from pachon.core.psf import Psf
    from pachon.core.visit_info import VisitInfo

__all__ = ["Exposure"]

_log = logging.getLogger(__name__)


def _plane(array: Any, name: str, shape: tuple[int, ...] | None) -> np.ndarray:
    out = np.asarray(array, dtype=np.float32)
    if out.ndim != 2:
        raise ConfigError(f"Exposure {name} must be a 2-D array, got shape {out.shape}")
    if shape is not None and out.shape != shape:
        raise ConfigError(f"Exposure {name} shape {out.shape} differs from the image shape {shape}")
    return out


class Exposure:
    """An image with its mask, variance and the models that describe it.

    Parameters
    ----------
    image
        2-D pixel values; converted to float32 (no copy when already float32).
    mask
        A :class:`Mask` (or uint32 array) of the image's shape; all clear when None.
    variance
        Per-pixel variance, float32, same shape; zeros when None.
    wcs
        Celestial ``astropy.wcs.WCS`` in *parent* pixel coordinates (0-based).
    psf
        PSF model in parent pixel coordinates.
    photo_calib
        Counts-to-nJy calibration.
    visit_info
        How the exposure was taken.
    metadata
        Further header cards (``astropy.io.fits.Header``).
    xy0
        Parent pixel position ``(x, y)`` of the array's pixel ``[0, 0]``.
    """

    def __init__(
        self,
        image: np.ndarray,
        mask: Mask | np.ndarray | None = None,
        variance: np.ndarray | None = None,
        *,
        wcs: WCS | None = None,
        psf: Psf | None = None,
        photo_calib: PhotoCalib | None = None,
        visit_info: VisitInfo | None = None,
        metadata: fits.Header | None = None,
        xy0: tuple[int, int] = (0, 0),
    ) -> None:
        self.image = _plane(image, "image", None)
        shape = self.image.shape
        if mask is None:
            mask = Mask(shape=shape)
        elif not isinstance(mask, Mask):
            mask = Mask(mask)
        if mask.shape != shape:
            raise ConfigError(f"Exposure mask shape {mask.shape} differs from the image shape {shape}")
        self.mask = mask
        if variance is None:
            variance = np.zeros(shape, np.float32)
        self.variance = _plane(variance, "variance", shape)
        if wcs is not None and (getattr(wcs, "naxis", None) != 2 or not wcs.has_celestial):
            raise ConfigError("Exposure wcs must be a 2-D celestial astropy.wcs.WCS")
        self.wcs = wcs
        self.psf = psf
        self.photo_calib = photo_calib
        self.visit_info = visit_info
        if metadata is None:
            from astropy.io import fits

            metadata = fits.Header()
        self.metadata = metadata
        try:
            self.xy0 = (int(xy0[0]), int(xy0[1]))
        except (TypeError, ValueError, IndexError):
            raise ConfigError(f"Exposure xy0 must be a pair of integers, got {xy0!r}") from None

    @property
    def bbox(self) -> Box:
        """The pixels covered, in parent coordinates."""
        return Box.from_shape(self.image.shape, self.xy0)

    @property
    def width(self) -> int:
        """Number of columns."""
        return self.image.shape[1]

    @property
    def height(self) -> int:
        """Number of rows."""
        return self.image.shape[0]

    def subimage(self, box: Box) -> Exposure:
        """The part of the exposure inside ``box`` (parent coordinates), sharing pixel memory.

        The WCS, PSF, calibration and visit info are shared (they are in parent coordinates);
        the metadata is copied.
        """
        if not isinstance(box, Box):
            raise ConfigError(f"subimage takes a Box, got {box!r}")
        if box.is_empty or not self.bbox.contains(box):
            raise ConfigError(f"{box} is not inside the exposure's {self.bbox}; intersect it first")
        rows, cols = box.slices(self.xy0)
        return Exposure(
            self.image[rows, cols],
            self.mask[rows, cols],
            self.variance[rows, cols],
            wcs=self.wcs,
            psf=self.psf,
            photo_calib=self.photo_calib,
            visit_info=self.visit_info,
            metadata=self.metadata.copy(),
            xy0=(box.x0, box.y0),
        )

    def __getitem__(self, box: Box) -> Exposure:
        return self.subimage(box)

    def copy(self) -> Exposure:
        """A deep copy: own arrays, mask planes, WCS and metadata."""
        return Exposure(
            self.image.copy(),
            self.mask.copy(),
            self.variance.copy(),
            wcs=None if self.wcs is None else self.wcs.deepcopy(),
            psf=self.psf,
            photo_calib=self.photo_calib,
            visit_info=self.visit_info,
            metadata=self.metadata.copy(),
            xy0=self.xy0,
        )

    def _require_wcs(self) -> WCS:
        if self.wcs is None:
            raise ConfigError("this exposure has no WCS; fit or attach one (exposure.wcs = ...) first")
        return self.wcs

    def pixel_to_sky(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Sky position ``(ra, dec)`` in degrees of parent pixel positions (vectorized)."""
        ra, dec = self._require_wcs().all_pix2world(np.asarray(x, float), np.asarray(y, float), 0)
        return ra, dec

    def sky_to_pixel(self, ra: Any, dec: Any) -> tuple[np.ndarray, np.ndarray]:
        """Parent pixel position ``(x, y)`` of sky positions in degrees (vectorized)."""
        wcs = self._require_wcs()
        ra, dec = np.asarray(ra, float), np.asarray(dec, float)
        if wcs.sip is None:
            return wcs.wcs_world2pix(ra, dec, 0)
        return wcs.all_world2pix(ra, dec, 0, tolerance=1e-10, maxiter=50)

    def write_fits(self, path: str | os.PathLike[str] | BinaryIO) -> None:
        """Write to one multi-extension FITS file (see :mod:`pachon.core.exposure_fits`)."""
        from pachon.core.exposure_fits import write_exposure_fits

        write_exposure_fits(self, path)

    @classmethod
    def read_fits(cls, path: str | os.PathLike[str] | BinaryIO, *, bbox: Box | None = None) -> Exposure:
        """Read a file written by :meth:`write_fits`; only ``bbox`` (parent coordinates) if given."""
        from pachon.core.exposure_fits import read_exposure_fits

        return read_exposure_fits(path, bbox=bbox)

    def __repr__(self) -> str:
        return (
            f"Exposure({self.bbox}, wcs={'yes' if self.wcs is not None else 'no'}, psf={self.psf!r}, "
            f"photo_calib={self.photo_calib!r})"
        )

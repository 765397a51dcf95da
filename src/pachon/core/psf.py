"""Point-spread-function models: a normalized kernel at any pixel position, FITS persistence.

Every model answers ``kernel_image(x, y)`` (odd square float64 array summing to 1, centred on
its central pixel), ``image(x, y)`` (the PSF realised at a sub-pixel position, with the parent
pixel box it covers) and ``sigma(x, y)``.  Models persist to FITS HDUs whose first header
holds ``PSFTYPE``; :func:`register_psf_type` adds a class to the reader's registry, so a
spatially varying model plugs in without touching this module.
"""

from __future__ import annotations

import abc
import logging
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from pachon.core.errors import ConfigError, FormatError
from pachon.core.geom import Box

if TYPE_CHECKING:
    from astropy.io import fits

__all__ = ["GaussianPsf", "ImagePsf", "Psf", "register_psf_type", "shift_kernel"]

_log = logging.getLogger(__name__)

_PSF_TYPES: dict[str, type[Psf]] = {}
P = TypeVar("P", bound="type[Psf]")


def register_psf_type(name: str) -> Callable[[P], P]:
    """Class decorator: register a :class:`Psf` subclass under the FITS ``PSFTYPE`` ``name``."""
    key = name.upper()

    def decorate(cls: P) -> P:
        if key in _PSF_TYPES and _PSF_TYPES[key] is not cls:
            raise ConfigError(f"PSFTYPE {key!r} is already registered to {_PSF_TYPES[key].__name__}")
        cls.psf_type = key
        _PSF_TYPES[key] = cls
        return cls

    return decorate


def _centre_box(x: float, y: float, size: int) -> tuple[Box, float, float]:
    """Box of ``size`` pixels centred on the pixel nearest ``(x, y)``, and the fractional offset."""
    cx, cy = math.floor(x + 0.5), math.floor(y + 0.5)
    half = size // 2
    return Box(cx - half, cy - half, size, size), x - cx, y - cy


def shift_kernel(kernel: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Shift a well-sampled kernel by a sub-pixel amount ``(dx, dy)`` with a Fourier phase ramp.

    The kernel is zero-padded to three times its size before the transform so that ringing
    does not wrap around; the result has the input's shape and is renormalized to sum to 1.
    """
    ny, nx = kernel.shape
    pad = np.zeros((3 * ny, 3 * nx))
    pad[ny : 2 * ny, nx : 2 * nx] = kernel
    fy = np.fft.fftfreq(3 * ny)[:, None]
    fx = np.fft.rfftfreq(3 * nx)[None, :]
    ramp = np.exp(-2j * np.pi * (fx * dx + fy * dy))
    shifted = np.fft.irfft2(np.fft.rfft2(pad) * ramp, s=pad.shape)[ny : 2 * ny, nx : 2 * nx]
    return shifted / shifted.sum()


class Psf(abc.ABC):
    """A point-spread function model, in parent pixel coordinates."""

    psf_type: ClassVar[str] = ""

    @abc.abstractmethod
    def kernel_image(self, x: float, y: float) -> np.ndarray:
        """The PSF at ``(x, y)``: odd square float64 array summing to 1, centred on its middle pixel."""

    def image(self, x: float, y: float) -> tuple[np.ndarray, Box]:
        """The PSF realised at sub-pixel position ``(x, y)`` and the parent pixel box it covers.

        The box is centred on the pixel nearest ``(x, y)``; the array sums to 1 and its
        centroid lies at ``(x, y)``.
        """
        kernel = self.kernel_image(x, y)
        box, dx, dy = _centre_box(x, y, kernel.shape[0])
        if dx == 0.0 and dy == 0.0:
            return kernel, box
        return shift_kernel(kernel, dx, dy), box

    def sigma(self, x: float, y: float) -> float:
        """Gaussian-equivalent width (pixels) at ``(x, y)``, from the kernel's second moments."""
        return _moment_sigma(self.kernel_image(x, y))

    @abc.abstractmethod
    def _to_hdus(self) -> list[fits.ImageHDU | fits.BinTableHDU]:
        """HDUs describing the model (``PSFTYPE`` is added by :meth:`to_hdus`)."""

    @classmethod
    @abc.abstractmethod
    def _from_hdus(cls, hdus: Sequence[Any]) -> Psf:
        """Rebuild the model from the HDUs written by :meth:`_to_hdus`."""

    def to_hdus(self) -> list[fits.ImageHDU | fits.BinTableHDU]:
        """FITS HDUs holding the model; the first header carries ``PSFTYPE``."""
        if not self.psf_type:
            raise ConfigError(f"{type(self).__name__} is not registered: decorate it with register_psf_type")
        hdus = self._to_hdus()
        hdus[0].header["PSFTYPE"] = (self.psf_type, "PSF model class (pachon.core.psf)")
        return hdus

    @staticmethod
    def from_hdus(hdus: Sequence[Any]) -> Psf:
        """Rebuild a PSF from HDUs written by :meth:`to_hdus`, dispatching on ``PSFTYPE``."""
        if not hdus:
            raise FormatError("no PSF HDU to read")
        psf_type = str(hdus[0].header.get("PSFTYPE", "")).upper()
        cls = _PSF_TYPES.get(psf_type)
        if cls is None:
            raise FormatError(
                f"unknown PSFTYPE {psf_type!r}; known: {sorted(_PSF_TYPES)} "
                "(import the module that registers it with register_psf_type)"
            )
        return cls._from_hdus(hdus)


def _moment_sigma(kernel: np.ndarray) -> float:
    ny, nx = kernel.shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    total = kernel.sum()
    cx, cy = (kernel * xx).sum() / total, (kernel * yy).sum() / total
    ixx = (kernel * (xx - cx) ** 2).sum() / total
    iyy = (kernel * (yy - cy) ** 2).sum() / total
    return float(math.sqrt(0.5 * (ixx + iyy)))


@register_psf_type("GAUSSIAN")
class GaussianPsf(Psf):
    """A circular Gaussian PSF, the same everywhere, sampled at pixel centres.

    Parameters
    ----------
    sigma
        Gaussian width (pixels).
    size
        Width of the (square, odd) kernel image; defaults to ``2 * ceil(5 sigma) + 1``.
    """

    def __init__(self, sigma: float, size: int | None = None) -> None:
        if not np.isfinite(sigma) or sigma <= 0:
            raise ConfigError(f"GaussianPsf sigma must be a positive number of pixels, got {sigma!r}")
        if size is None:
            size = 2 * math.ceil(5.0 * sigma) + 1
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 3 or size % 2 == 0:
            raise ConfigError(f"GaussianPsf size must be an odd integer >= 3, got {size!r}")
        self._sigma = float(sigma)
        self.size = int(size)

    def _evaluate(self, dx: float, dy: float) -> np.ndarray:
        r = np.arange(self.size, dtype=float) - self.size // 2
        gx = np.exp(-0.5 * ((r - dx) / self._sigma) ** 2)
        gy = np.exp(-0.5 * ((r - dy) / self._sigma) ** 2)
        kernel = np.outer(gy, gx)
        return kernel / kernel.sum()

    def kernel_image(self, x: float, y: float) -> np.ndarray:  # noqa: D102
        return self._evaluate(0.0, 0.0)

    def image(self, x: float, y: float) -> tuple[np.ndarray, Box]:  # noqa: D102
        box, dx, dy = _centre_box(x, y, self.size)
        return self._evaluate(dx, dy), box

    def sigma(self, x: float = 0.0, y: float = 0.0) -> float:  # noqa: D102
        return self._sigma

    def _to_hdus(self) -> list[fits.ImageHDU | fits.BinTableHDU]:
        from astropy.io import fits

        hdu = fits.ImageHDU()
        hdu.header["PSFSIGMA"] = (self._sigma, "[pixel] Gaussian sigma")
        hdu.header["PSFSIZE"] = (self.size, "[pixel] kernel image width")
        return [hdu]

    @classmethod
    def _from_hdus(cls, hdus: Sequence[Any]) -> GaussianPsf:
        header = hdus[0].header
        try:
            return cls(float(header["PSFSIGMA"]), int(header["PSFSIZE"]))
        except KeyError as exc:
            raise FormatError(f"GAUSSIAN PSF HDU lacks header key {exc.args[0]!r}") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GaussianPsf):
            return NotImplemented
        return self._sigma == other._sigma and self.size == other.size

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"GaussianPsf(sigma={self._sigma!r}, size={self.size})"


@register_psf_type("IMAGE")
class ImagePsf(Psf):
    """A PSF given as a pixel kernel, the same everywhere.

    Parameters
    ----------
    kernel
        Odd square array centred on its middle pixel; it is normalized to sum to 1.
    """

    def __init__(self, kernel: np.ndarray) -> None:
        kernel = np.array(kernel, dtype=np.float64)
        if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
            raise ConfigError(f"ImagePsf kernel must be an odd square 2-D array, got shape {kernel.shape}")
        total = kernel.sum()
        if not np.all(np.isfinite(kernel)) or not total > 0:
            raise ConfigError("ImagePsf kernel must be finite with a positive sum")
        self._set_kernel(kernel / total)

    def _set_kernel(self, kernel: np.ndarray) -> None:
        self._kernel = kernel
        self._kernel.setflags(write=False)
        self._sigma = _moment_sigma(kernel)

    def kernel_image(self, x: float, y: float) -> np.ndarray:  # noqa: D102
        return self._kernel.copy()

    def sigma(self, x: float = 0.0, y: float = 0.0) -> float:  # noqa: D102
        return self._sigma

    def _to_hdus(self) -> list[fits.ImageHDU | fits.BinTableHDU]:
        from astropy.io import fits

        return [fits.ImageHDU(self._kernel.copy())]

    @classmethod
    def _from_hdus(cls, hdus: Sequence[Any]) -> ImagePsf:
        data = hdus[0].data
        if data is None:
            raise FormatError("IMAGE PSF HDU holds no kernel array")
        kernel = np.array(data, dtype=np.float64)
        psf = cls(kernel)
        if abs(kernel.sum() - 1.0) < 1e-12:
            psf._set_kernel(kernel)  # already normalized when written: keep the exact values
        return psf

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImagePsf):
            return NotImplemented
        return np.array_equal(self._kernel, other._kernel)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ImagePsf(shape={self._kernel.shape}, sigma={self._sigma:.3f})"

"""Integer pixel boxes in parent pixel coordinates.

Conventions used throughout Pachón: pixel ``(x, y)`` is column ``x`` (FITS axis 1) and row
``y`` (FITS axis 2); the centre of the first pixel of the parent image is ``(0, 0)``; boxes are
half-open, so ``x1 = x0 + width`` is the first column *after* the box.  This module imports only
numpy so that it stays cheap to import.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

from pachon.core.errors import ConfigError

__all__ = ["Box", "parse_fits_section"]

_log = logging.getLogger(__name__)

_SECTION_RE = re.compile(r"^\s*\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]\s*$")


@dataclass(frozen=True)
class Box:
    """An integer pixel box ``[x0, x0 + width) x [y0, y0 + height)`` in parent coordinates.

    Parameters
    ----------
    x0, y0
        Column and row of the first pixel of the box.
    width, height
        Number of columns and rows; zero gives an empty box.
    """

    x0: int
    y0: int
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("x0", "y0", "width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ConfigError(f"Box.{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.width < 0 or self.height < 0:
            raise ConfigError(
                f"Box width and height must be >= 0, got width={self.width}, height={self.height}"
            )

    @classmethod
    def from_corners(cls, x0: int, y0: int, x1: int, y1: int) -> Box:
        """Build a box from its first pixel ``(x0, y0)`` and exclusive end ``(x1, y1)``."""
        return cls(x0, y0, x1 - x0, y1 - y0)

    @classmethod
    def from_shape(cls, shape: tuple[int, int], origin: tuple[int, int] = (0, 0)) -> Box:
        """Box of an array of ``shape`` ``(height, width)`` whose first pixel is at ``origin``."""
        return cls(origin[0], origin[1], shape[1], shape[0])

    @classmethod
    def from_fits_section(cls, section: str) -> Box:
        """Parse a FITS section ``"[a:b,c:d]"`` (1-based, inclusive) into a box.

        Reversed ranges (``"[512:1,...]"``, used for readout direction) give the same box as
        the forward range; use :func:`parse_fits_section` to learn the flips.
        """
        return parse_fits_section(section)[0]

    @property
    def x1(self) -> int:
        """First column after the box (exclusive end)."""
        return self.x0 + self.width

    @property
    def y1(self) -> int:
        """First row after the box (exclusive end)."""
        return self.y0 + self.height

    @property
    def shape(self) -> tuple[int, int]:
        """Array shape ``(height, width)``."""
        return (self.height, self.width)

    @property
    def area(self) -> int:
        """Number of pixels."""
        return self.width * self.height

    @property
    def is_empty(self) -> bool:
        """True when the box holds no pixel."""
        return self.width == 0 or self.height == 0

    @property
    def center(self) -> tuple[float, float]:
        """Centre ``(x, y)`` in pixel coordinates (pixel centres are integers)."""
        return (self.x0 + (self.width - 1) / 2.0, self.y0 + (self.height - 1) / 2.0)

    def contains(self, other: Box) -> bool:
        """True when every pixel of ``other`` lies in this box (an empty box is contained)."""
        if other.is_empty:
            return True
        return self.x0 <= other.x0 and other.x1 <= self.x1 and self.y0 <= other.y0 and other.y1 <= self.y1

    def contains_points(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        """Whether the pixels nearest to positions ``(x, y)`` lie in the box (vectorized)."""
        xi = np.floor(np.asarray(x, dtype=float) + 0.5)
        yi = np.floor(np.asarray(y, dtype=float) + 0.5)
        return (xi >= self.x0) & (xi < self.x1) & (yi >= self.y0) & (yi < self.y1)

    def intersection(self, other: Box) -> Box | None:
        """The overlap of two boxes, or None when they do not overlap."""
        x0, y0 = max(self.x0, other.x0), max(self.y0, other.y0)
        x1, y1 = min(self.x1, other.x1), min(self.y1, other.y1)
        if x1 <= x0 or y1 <= y0:
            return None
        return Box.from_corners(x0, y0, x1, y1)

    def shifted(self, dx: int, dy: int) -> Box:
        """The box moved by ``(dx, dy)`` pixels."""
        return Box(self.x0 + dx, self.y0 + dy, self.width, self.height)

    def grown(self, n: int) -> Box:
        """The box enlarged by ``n`` pixels on every side (shrunk when ``n < 0``)."""
        width, height = self.width + 2 * n, self.height + 2 * n
        if width < 0 or height < 0:
            raise ConfigError(f"cannot shrink {self} by {-n} pixels: it would have negative size")
        return Box(self.x0 - n, self.y0 - n, width, height)

    def slices(self, origin: tuple[int, int] = (0, 0)) -> tuple[slice, slice]:
        """``(row_slice, col_slice)`` selecting the box in an array whose first pixel is ``origin``.

        Parameters
        ----------
        origin
            Parent position ``(x, y)`` of the array's pixel ``[0, 0]`` (its ``xy0``).
        """
        ox, oy = int(origin[0]), int(origin[1])
        if self.x0 < ox or self.y0 < oy:
            raise ConfigError(
                f"{self} starts before the array origin {(ox, oy)}; intersect it with the array's box first"
            )
        return (slice(self.y0 - oy, self.y1 - oy), slice(self.x0 - ox, self.x1 - ox))

    def to_fits_section(self) -> str:
        """The box as a FITS section ``"[x0+1:x1,y0+1:y1]"`` (1-based, inclusive)."""
        return f"[{self.x0 + 1}:{self.x1},{self.y0 + 1}:{self.y1}]"

    def __repr__(self) -> str:
        return f"Box(x0={self.x0}, y0={self.y0}, width={self.width}, height={self.height})"


def parse_fits_section(section: str) -> tuple[Box, bool, bool]:
    """Parse a FITS section ``"[a:b,c:d]"`` into a box and its axis flips.

    Parameters
    ----------
    section
        FITS section string, 1-based and inclusive, such as a ``DATASEC`` header value.

    Returns
    -------
    box
        The pixels covered, 0-based and half-open.
    flip_x, flip_y
        True when the range along that axis is written from high to low (``"[512:1,...]"``).
    """
    match = _SECTION_RE.match(str(section))
    if match is None:
        raise ConfigError(f"cannot parse FITS section {section!r}: expected the form '[x1:x2,y1:y2]'")
    a, b, c, d = (int(v) for v in match.groups())
    if min(a, b, c, d) < 1:
        raise ConfigError(f"FITS section {section!r} is 1-based: every bound must be >= 1")
    box = Box.from_corners(min(a, b) - 1, min(c, d) - 1, max(a, b), max(c, d))
    return box, a > b, c > d

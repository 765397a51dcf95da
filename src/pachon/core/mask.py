"""Bit-plane masks: a uint32 array whose bits carry named meanings (BAD, SAT, CR, ...).

This module imports only numpy so that it stays cheap to import.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

import numpy as np

from pachon.core.errors import ConfigError

__all__ = ["DEFAULT_MASK_PLANES", "Mask"]

_log = logging.getLogger(__name__)

#: Default mask planes, in bit order (bit 0 is BAD).
DEFAULT_MASK_PLANES: tuple[str, ...] = (
    "BAD",
    "SAT",
    "INTRP",
    "CR",
    "EDGE",
    "DETECTED",
    "DETECTED_NEGATIVE",
    "SUSPECT",
    "NO_DATA",
    "STREAK",
    "CROSSTALK",
    "VIGNETTED",
    "UNMASKEDNAN",
    "GHOST",
    "CLIPPED",
    "SENSOR_EDGE",
    "ITL_DIP",
)

_N_BITS = 32
_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _check_planes(planes: Mapping[str, int]) -> dict[str, int]:
    checked: dict[str, int] = {}
    for name, bit in planes.items():
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ConfigError(
                f"mask plane name {name!r} is invalid: use upper-case letters, digits and underscores"
            )
        if isinstance(bit, bool) or not isinstance(bit, int | np.integer) or not 0 <= bit < _N_BITS:
            raise ConfigError(f"mask plane {name!r} has bit {bit!r}; bits are integers 0..{_N_BITS - 1}")
        checked[name] = int(bit)
    if len(set(checked.values())) != len(checked):
        raise ConfigError(f"mask planes {checked} use the same bit twice; give each plane its own bit")
    return checked


class Mask:
    """A uint32 mask image with named bit planes.

    Parameters
    ----------
    array
        Existing uint32 array (used without copy); other integer types are converted.
    shape
        Shape ``(height, width)`` of a new, all-zero mask when ``array`` is None.
    planes
        Plane name to bit index; defaults to :data:`DEFAULT_MASK_PLANES` in bit order.
    """

    def __init__(
        self,
        array: np.ndarray | None = None,
        *,
        shape: tuple[int, int] | None = None,
        planes: Mapping[str, int] | None = None,
    ) -> None:
        if array is None:
            if shape is None:
                raise ConfigError("Mask needs either an array or a shape")
            array = np.zeros(tuple(int(s) for s in shape), dtype=np.uint32)
        else:
            array = np.asarray(array)
            if array.dtype != np.uint32:
                if not np.issubdtype(array.dtype, np.integer):
                    raise ConfigError(f"Mask array must hold integers (uint32), got dtype {array.dtype}")
                if array.size and (array.min() < 0 or array.max() >= 2**_N_BITS):
                    raise ConfigError("Mask array values must fit in 32 unsigned bits")
                array = array.astype(np.uint32)
            if shape is not None and tuple(shape) != array.shape:
                raise ConfigError(f"Mask shape {tuple(shape)} does not match its array shape {array.shape}")
        if array.ndim != 2:
            raise ConfigError(f"Mask must be 2-D, got shape {array.shape}")
        self.array: np.ndarray = array
        if planes is None:
            planes = {name: bit for bit, name in enumerate(DEFAULT_MASK_PLANES)}
        self._planes = _check_planes(planes)

    @classmethod
    def _view(cls, array: np.ndarray, planes: dict[str, int]) -> Mask:
        """A mask on ``array`` that shares the plane dictionary ``planes`` (no checks)."""
        mask = cls.__new__(cls)
        mask.array = array
        mask._planes = planes
        return mask

    @property
    def planes(self) -> dict[str, int]:
        """Plane name to bit index (a copy: use :meth:`add_plane` to change it)."""
        return dict(self._planes)

    @property
    def shape(self) -> tuple[int, int]:
        """Array shape ``(height, width)``."""
        return self.array.shape  # type: ignore[return-value]

    def _bit(self, name: str) -> int:
        try:
            return self._planes[name]
        except KeyError:
            known = ", ".join(sorted(self._planes, key=self._planes.__getitem__))
            raise ConfigError(
                f"unknown mask plane {name!r}; known planes: {known} (add it with Mask.add_plane)"
            ) from None

    def bitmask(self, *names: str) -> int:
        """Integer with the bits of the named planes set."""
        value = 0
        for name in names:
            value |= 1 << self._bit(name)
        return value

    def add_plane(self, name: str) -> int:
        """Add a plane (or find an existing one) and return its bit index.

        The plane dictionary is shared with sub-masks and parent of this mask, so a plane added
        through a subimage is known to its parent.
        """
        if name in self._planes:
            return self._planes[name]
        used = set(self._planes.values())
        free = [bit for bit in range(_N_BITS) if bit not in used]
        if not free:
            raise ConfigError(f"cannot add mask plane {name!r}: all {_N_BITS} bits are in use")
        _check_planes({name: free[0]})
        self._planes[name] = free[0]
        return free[0]

    def remove_plane(self, name: str) -> None:
        """Clear the plane's bit everywhere and forget its name."""
        self.clear(name)
        del self._planes[name]

    def set(self, name: str, where: np.ndarray | bool = True) -> None:
        """Set plane ``name`` where the boolean array ``where`` is true (everywhere by default)."""
        bit = np.uint32(self.bitmask(name))
        self.array[np.broadcast_to(np.asarray(where, dtype=bool), self.shape)] |= bit

    def clear(self, name: str, where: np.ndarray | bool = True) -> None:
        """Clear plane ``name`` where ``where`` is true (everywhere by default)."""
        keep = np.uint32(~self.bitmask(name) & 0xFFFFFFFF)
        self.array[np.broadcast_to(np.asarray(where, dtype=bool), self.shape)] &= keep

    def get(self, name: str) -> np.ndarray:
        """Boolean array: where plane ``name`` is set."""
        return (self.array & np.uint32(self.bitmask(name))) != 0

    def any(self, *names: str) -> np.ndarray:
        """Boolean array: where any of the named planes (any plane at all if none named) is set."""
        bits = self.bitmask(*names) if names else 0xFFFFFFFF
        return (self.array & np.uint32(bits)) != 0

    def interpret(self, value: int) -> list[str]:
        """Names of the planes set in an integer mask value, in bit order."""
        return [n for n, b in sorted(self._planes.items(), key=lambda kv: kv[1]) if int(value) >> b & 1]

    def copy(self) -> Mask:
        """Deep copy (own array and own plane dictionary)."""
        return Mask(self.array.copy(), planes=self._planes)

    def __getitem__(self, key: tuple[slice, slice]) -> Mask:
        """A view of part of the mask (basic slices only) sharing array memory and planes."""
        view = self.array[key]
        if view.ndim != 2 or (view.size and not np.shares_memory(view, self.array)):
            raise ConfigError("Mask[...] takes two slices (row_slice, col_slice)")
        return Mask._view(view, self._planes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mask):
            return NotImplemented
        return self._planes == other._planes and np.array_equal(self.array, other.array)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Mask(shape={self.shape}, planes={len(self._planes)})"

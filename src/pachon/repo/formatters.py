"""Storage classes: how each kind of in-memory object is written to and read from a file.

A registry of :class:`StorageClass` entries keyed by name; new ones are added with
:func:`register_storage_class` instead of ``if ext == ...`` chains.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pachon.core.errors import ConfigError, FormatError

__all__ = ["StorageClass", "register_storage_class", "get_storage_class", "list_storage_classes"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StorageClass:
    """How to persist one kind of object.

    Attributes
    ----------
    name
        Storage-class name stored with dataset types (``"Exposure"``).
    extension
        File extension including the dot.
    format
        Short format name recorded with each file (``"fits"``, ``"parquet"``).
    write
        ``write(obj, path)`` writes the object to a local file.
    read
        ``read(path, parameters) -> obj`` reads it back; ``parameters`` such as ``bbox``.
    parameters
        Names of the read parameters supported.
    """

    name: str
    extension: str
    format: str
    write: Callable[[Any, Path], None]
    read: Callable[[Path, dict[str, Any]], Any]
    parameters: tuple[str, ...] = ()


_REGISTRY: dict[str, StorageClass] = {}


def register_storage_class(storage_class: StorageClass, *, replace: bool = False) -> None:
    """Add a storage class (``replace=True`` to override an existing name)."""
    if storage_class.name in _REGISTRY and not replace:
        raise ConfigError(f"storage class {storage_class.name!r} is already registered; pass replace=True")
    _REGISTRY[storage_class.name] = storage_class


def get_storage_class(name: str) -> StorageClass:
    """Look up a storage class, raising `ConfigError` listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown storage class {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def list_storage_classes() -> list[str]:
    """Names of the registered storage classes."""
    return sorted(_REGISTRY)


def _check_params(name: str, parameters: dict[str, Any], allowed: tuple[str, ...]) -> None:
    bad = sorted(set(parameters) - set(allowed))
    if bad:
        raise ConfigError(
            f"storage class {name} does not support parameter {bad[0]!r}; "
            f"supported: {', '.join(allowed) or 'none'}"
        )


def _write_exposure(obj: Any, path: Path) -> None:
    obj.write_fits(path)


def _read_exposure(path: Path, parameters: dict[str, Any]) -> Any:
    from pachon.core.exposure import Exposure

    _check_params("Exposure", parameters, ("bbox",))
    return Exposure.read_fits(path, bbox=parameters.get("bbox"))


def _write_raw(obj: Any, path: Path) -> None:
    obj.writeto(path)


def _read_raw(path: Path, parameters: dict[str, Any]) -> Any:
    """The raw file as an in-memory HDUList; ``bbox`` cuts the first image HDU's data."""
    from astropy.io import fits

    _check_params("RawFits", parameters, ("bbox",))
    try:
        with fits.open(path, memmap=False) as hdul:
            out = fits.HDUList([h.copy() for h in hdul])
    except OSError as exc:
        raise FormatError(f"{path}: cannot be read as FITS: {exc}") from exc
    box = parameters.get("bbox")
    if box is not None:
        hdu = next(h for h in out if h.data is not None and h.data.ndim == 2)
        rows, cols = box.slices()
        hdu.data = hdu.data[rows, cols].copy()
    return out


def _write_parquet(obj: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(obj, path)


def _read_parquet(path: Path, parameters: dict[str, Any]) -> Any:
    import pyarrow.parquet as pq

    _check_params("ArrowTable", parameters, ("columns",))
    return pq.read_table(path, columns=parameters.get("columns"))


def _write_json(obj: Any, path: Path) -> None:
    path.write_text(json.dumps(obj, sort_keys=True))


def _read_json(path: Path, parameters: dict[str, Any]) -> Any:
    _check_params("Json", parameters, ())
    return json.loads(path.read_text())


def _write_bytes(obj: Any, path: Path) -> None:
    if not isinstance(obj, bytes | bytearray | memoryview):
        raise ConfigError(f"storage class Bytes needs bytes, got {type(obj).__name__}")
    path.write_bytes(bytes(obj))


def _read_bytes(path: Path, parameters: dict[str, Any]) -> Any:
    _check_params("Bytes", parameters, ())
    return path.read_bytes()


def _write_numpy(obj: Any, path: Path) -> None:
    import numpy as np

    with open(path, "wb") as f:
        np.save(f, np.asarray(obj), allow_pickle=False)


def _read_numpy(path: Path, parameters: dict[str, Any]) -> Any:
    import numpy as np

    _check_params("Numpy", parameters, ("bbox",))
    arr = np.load(path, allow_pickle=False)
    box = parameters.get("bbox")
    return arr[box.slices()] if box is not None else arr


for _sc in (
    StorageClass("Exposure", ".fits", "fits", _write_exposure, _read_exposure, ("bbox",)),
    StorageClass("RawFits", ".fits", "fits", _write_raw, _read_raw, ("bbox",)),
    StorageClass("ArrowTable", ".parquet", "parquet", _write_parquet, _read_parquet, ("columns",)),
    StorageClass("Json", ".json", "json", _write_json, _read_json),
    StorageClass("Bytes", ".bin", "bytes", _write_bytes, _read_bytes),
    StorageClass("Avro", ".avro", "avro", _write_bytes, _read_bytes),
    StorageClass("Numpy", ".npy", "npy", _write_numpy, _read_numpy, ("bbox",)),
):
    register_storage_class(_sc)

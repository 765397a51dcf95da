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

__all__ = [
    "StorageClass",
    "register_storage_class",
    "get_storage_class",
    "list_storage_classes",
    "check_object",
    "check_bbox",
]

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
    accepts
        ``accepts(obj) -> bool``: whether ``obj`` can be written (None: anything).
    expected
        Description of the accepted objects, for error messages.
    """

    name: str
    extension: str
    format: str
    write: Callable[[Any, Path], None]
    read: Callable[[Path, dict[str, Any]], Any]
    parameters: tuple[str, ...] = ()
    accepts: Callable[[Any], bool] | None = None
    expected: str = ""


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


def check_object(storage_class: StorageClass, obj: Any, dataset_type: str = "") -> None:
    """Raise `ConfigError` when ``obj`` cannot be stored with ``storage_class``.

    The message names the storage class, the expected type and the type given.
    """
    if storage_class.accepts is None or storage_class.accepts(obj):
        return
    what = f"dataset type {dataset_type!r} (storage class {storage_class.name})" if dataset_type else (
        f"storage class {storage_class.name}"
    )
    raise ConfigError(
        f"{what} stores {storage_class.expected}, got {type(obj).__module__}.{type(obj).__qualname__}; "
        f"pass an object of that type or use a dataset type with another storage class"
    )


def check_bbox(storage_class: str, box: Any, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """Row and column slices of ``box`` in an image of ``shape``, checked.

    Raises
    ------
    ConfigError
        ``box`` is not a `pachon.core.geom.Box`, or does not lie inside the image.
    """
    from pachon.core.geom import Box

    if not isinstance(box, Box):
        raise ConfigError(
            f"storage class {storage_class}: parameter 'bbox' must be a pachon.core.geom.Box, "
            f"got {type(box).__name__} {box!r}"
        )
    if len(shape) < 2:
        raise ConfigError(
            f"storage class {storage_class}: parameter 'bbox' needs a 2-D image, got shape {shape}"
        )
    height, width = shape[-2], shape[-1]
    if box.width <= 0 or box.height <= 0 or not Box(0, 0, width, height).contains(box):
        raise ConfigError(
            f"storage class {storage_class}: bbox {box} is not inside the image of shape "
            f"{tuple(shape)} (width {width}, height {height}); pass a box within it"
        )
    return box.slices()


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
        hdu = next((h for h in out if h.data is not None and h.data.ndim == 2), None)
        if hdu is None:
            raise ConfigError(f"{path}: no 2-D image HDU to cut with bbox {box}")
        rows, cols = check_bbox("RawFits", box, hdu.data.shape)
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
    if box is None:
        return arr
    rows, cols = check_bbox("Numpy", box, arr.shape)
    return arr[..., rows, cols]


def _is_exposure(obj: Any) -> bool:
    from pachon.core.exposure import Exposure

    return isinstance(obj, Exposure)


def _is_hdulist(obj: Any) -> bool:
    from astropy.io import fits

    return isinstance(obj, fits.HDUList)


def _is_arrow_table(obj: Any) -> bool:
    import pyarrow as pa

    return isinstance(obj, pa.Table)


def _is_json(obj: Any) -> bool:
    try:
        json.dumps(obj, sort_keys=True)
    except (TypeError, ValueError):
        return False
    return True


def _is_bytes(obj: Any) -> bool:
    return isinstance(obj, bytes | bytearray | memoryview)


def _is_numeric_array(obj: Any) -> bool:
    import numpy as np

    if isinstance(obj, str | bytes):
        return False
    try:
        return np.asarray(obj).dtype.kind in "biufcmM"
    except (TypeError, ValueError):
        return False


_BYTES = "bytes (bytes, bytearray or memoryview)"
for _sc in (
    StorageClass("Exposure", ".fits", "fits", _write_exposure, _read_exposure, ("bbox",),
                 _is_exposure, "a pachon.core.exposure.Exposure"),
    StorageClass("RawFits", ".fits", "fits", _write_raw, _read_raw, ("bbox",),
                 _is_hdulist, "an astropy.io.fits.HDUList"),
    StorageClass("ArrowTable", ".parquet", "parquet", _write_parquet, _read_parquet, ("columns",),
                 _is_arrow_table, "a pyarrow.Table"),
    StorageClass("Json", ".json", "json", _write_json, _read_json, (), _is_json,
                 "a JSON-serializable object (dict, list, str, number)"),
    StorageClass("Bytes", ".bin", "bytes", _write_bytes, _read_bytes, (), _is_bytes, _BYTES),
    StorageClass("Avro", ".avro", "avro", _write_bytes, _read_bytes, (), _is_bytes, _BYTES),
    StorageClass("Numpy", ".npy", "npy", _write_numpy, _read_numpy, ("bbox",), _is_numeric_array,
                 "a numeric numpy array (or something np.asarray turns into one)"),
):
    register_storage_class(_sc)

"""Building alert packets from APDB rows, and FITS cutouts.

:func:`build_alert` turns the rows of one DiaSource, its DiaObject, its history and an
optional SSSource into the alert ``dict`` of a Rubin schema version.  Each record is built
by a converter compiled once per (version, record) from the schema: every field of the
schema is taken from the row by name (the APDB column names are those of the alert schema),
cast to the Avro type, NaN of nullable numbers written as null.

Cutouts are small multi-extension FITS files in the layout of Rubin's own packets: the
primary HDU holds the image with its WCS (of the cutout's pixel grid) and ``CUTMINX``/
``CUTMINY`` (parent position of the first pixel), an ``UNCERT`` extension the variance and,
when a PSF is known, a ``PSFIMAGE`` extension with the PSF realised at the cutout centre.
"""

from __future__ import annotations

import functools
import io
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from pachon.alerts.schema import latest_version, load_schema
from pachon.core.errors import FormatError

if TYPE_CHECKING:
    from pachon.core.exposure import Exposure

__all__ = [
    "build_alert",
    "record_converter",
    "cutout_to_fits_bytes",
    "fits_bytes_to_cutout",
    "HISTORY_DAYS",
    "CUTOUT_FIELDS",
]

log = logging.getLogger(__name__)

HISTORY_DAYS = 365.25
"""Span of the history carried by a packet (12 months, as Rubin's alerts)."""

CUTOUT_FIELDS = {
    "difference": "cutoutDifference",
    "science": "cutoutScience",
    "template": "cutoutTemplate",
}
"""Key of the ``cutouts`` argument of :func:`build_alert` → alert field."""

Row = Mapping[str, Any]


def _nullable(cast: Callable[[Any], Any], is_number: bool) -> Callable[[Any], Any]:
    if is_number:
        def convert(value: Any) -> Any:
            if value is None:
                return None
            value = cast(value)
            return None if value != value else value  # NaN → null
    else:
        def convert(value: Any) -> Any:
            return None if value is None else cast(value)
    return convert


def _bytes(value: Any) -> bytes:
    return bytes(value)


_CASTS: dict[str, Callable[[Any], Any]] = {
    "long": int, "int": int, "float": float, "double": float,
    "boolean": bool, "string": str, "bytes": _bytes,
}


def _field_converter(avro_type: Any, name: str, record: str) -> Callable[[Any], Any]:
    if isinstance(avro_type, dict) and avro_type.get("type") in _CASTS:
        avro_type = avro_type["type"]  # logical types such as timestamp-micros
    if isinstance(avro_type, list):
        branches = [t for t in avro_type if t != "null"]
        inner = branches[0]
        if isinstance(inner, dict) and inner.get("type") in _CASTS:
            inner = inner["type"]
        return _nullable(_CASTS[inner], inner in ("float", "double"))
    cast = _CASTS[avro_type]

    def required(value: Any) -> Any:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise FormatError(
                f"{record}.{name} is required by the alert schema but the row has no value; "
                "fill the column before building the packet"
            )
        return cast(value)
    return required


def _record_schema(version: str, record: str) -> dict[str, Any]:
    """Find the definition of a named record (``diaSource``, ...) in a parsed schema."""
    for field in load_schema(version)["fields"]:
        types = field["type"] if isinstance(field["type"], list) else [field["type"]]
        for t in types:
            if isinstance(t, dict) and t.get("type") == "array":
                t = t["items"]
            if isinstance(t, dict) and t.get("type") == "record" and t["name"].endswith(
                f".{record}"
            ):
                return t
    raise FormatError(f"alert schema {version} defines no record {record!r}")


@functools.cache
def record_converter(version: str, record: str) -> Callable[[Row], dict[str, Any]]:
    """Return a function turning an APDB row (mapping) into one schema record (dict).

    Parameters
    ----------
    version
        Alert schema version.
    record
        Record name: ``"diaSource"``, ``"diaObject"``, ``"diaForcedSource"``, ``"ssSource"``.

    Returns
    -------
    callable
        ``convert(row) -> dict``; raises `FormatError` naming a required field that is absent.
    """
    fields = [
        (f["name"], _field_converter(f["type"], f["name"], record))
        for f in _record_schema(version, record)["fields"]
    ]

    def convert(row: Row) -> dict[str, Any]:
        get = row.get
        return {name: cast(get(name)) for name, cast in fields}
    return convert


def _rows(rows: Any) -> list[Row]:
    if rows is None:
        return []
    if hasattr(rows, "to_pylist"):  # pyarrow Table / RecordBatch
        return rows.to_pylist()
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # pandas DataFrame
        return rows.to_dict("records")
    return list(rows)


def build_alert(
    dia_source: Row,
    dia_object: Row | None,
    prv_sources: Iterable[Row] | Any = None,
    prv_forced: Iterable[Row] | Any = None,
    ss_source: Row | None = None,
    cutouts: Mapping[str, Exposure | bytes | None] | None = None,
    *,
    version: str | None = None,
    history_days: float = HISTORY_DAYS,
) -> dict[str, Any]:
    """Build the alert packet of one DiaSource.

    Parameters
    ----------
    dia_source
        The triggering DiaSource row (APDB column names).
    dia_object
        Its DiaObject (last version), or None.
    prv_sources, prv_forced
        Previous DiaSources / DiaForcedSources of the object (mappings, a pyarrow Table or
        a DataFrame).  The triggering source and anything later than it or older than
        ``history_days`` before it are left out; the rest is sorted by time.
    ss_source
        The SSSource row when the source is associated with a solar-system object.
    cutouts
        ``{"science"|"template"|"difference": Exposure or FITS bytes}``.
    version
        Alert schema version; the latest when None.
    history_days
        Span of history carried (days).

    Returns
    -------
    dict
        The alert, following the schema (validate it with
        :func:`pachon.alerts.serialize.validate_alert`).
    """
    version = version or latest_version()
    source = record_converter(version, "diaSource")(dia_source)
    t_now = source["midpointMjdTai"]
    t_min = t_now - history_days
    source_id = source["diaSourceId"]

    def history(rows: Any, record: str, id_key: str) -> list[dict[str, Any]] | None:
        convert = record_converter(version, record)
        kept = [
            convert(r) for r in _rows(rows)
            if t_min <= r["midpointMjdTai"] <= t_now and r.get(id_key) != source_id
        ]
        kept.sort(key=lambda r: r["midpointMjdTai"])
        return kept

    alert: dict[str, Any] = {
        "diaSourceId": source_id,
        "observation_reason": None,
        "target_name": None,
        "diaSource": source,
        "prvDiaSources": history(prv_sources, "diaSource", "diaSourceId"),
        "prvDiaForcedSources": history(prv_forced, "diaForcedSource", "diaForcedSourceId"),
        "diaObject": None if dia_object is None else record_converter(version, "diaObject")(
            dia_object
        ),
        "ssSource": None if ss_source is None else record_converter(version, "ssSource")(
            ss_source
        ),
        "mpc_orbits": None,
    }
    cutouts = cutouts or {}
    unknown = set(cutouts) - set(CUTOUT_FIELDS)
    if unknown:
        raise FormatError(
            f"unknown cutout kinds {sorted(unknown)}; use {sorted(CUTOUT_FIELDS)}"
        )
    for kind, field in CUTOUT_FIELDS.items():
        value = cutouts.get(kind)
        if value is not None and not isinstance(value, bytes | bytearray):
            value = cutout_to_fits_bytes(value)
        alert[field] = None if value is None else bytes(value)
    names = {f["name"] for f in load_schema(version)["fields"]}
    return {k: v for k, v in alert.items() if k in names}


def cutout_to_fits_bytes(exposure: Exposure) -> bytes:
    """Write a cutout as FITS bytes in Rubin's alert cutout layout.

    Parameters
    ----------
    exposure
        The cutout (usually ``exposure.subimage(box)``); its WCS is written for the cutout's
        own pixel grid, with ``CUTMINX``/``CUTMINY`` giving its parent origin.

    Returns
    -------
    bytes
        A FITS file: primary image + WCS, ``UNCERT`` (variance), optional ``PSFIMAGE``
        (written by :class:`pachon.alerts.cutouts.CutoutWriter`; to cut many sources from
        one exposure, use its ``around`` method, which formats the WCS once).
    """
    from pachon.alerts.cutouts import CutoutWriter

    b = exposure.bbox
    return CutoutWriter(exposure).box(b.x0, b.y0, b.x0 + b.width, b.y0 + b.height)


def fits_bytes_to_cutout(data: bytes) -> Exposure:
    """Read a cutout (ours or Rubin's) from FITS bytes.

    Rubin's cutout headers carry CRVAL/CRPIX/PC but no CTYPE: a TAN projection is assumed,
    and their CRPIX is taken as 0-based (so that the DiaSource ``x, y`` of real packets fall
    on the source's sky position).

    Parameters
    ----------
    data
        The FITS bytes of an alert's ``cutout*`` field.

    Returns
    -------
    Exposure
        Image, variance (``UNCERT``), WCS in parent coordinates, ``xy0`` from
        ``CUTMINX``/``CUTMINY``, and an ``ImagePsf`` when ``PSFIMAGE`` is present.
    """
    from astropy.io import fits

    from pachon.core.exposure import Exposure
    from pachon.core.psf import ImagePsf
    from pachon.core.wcs import shift_wcs, wcs_from_header

    try:
        hdul = fits.open(io.BytesIO(data))
        hdul.verify("silentfix")
    except OSError as exc:
        raise FormatError(f"cutout of {len(data)} bytes is not a FITS file ({exc})") from exc
    with hdul:
        primary = hdul[0]
        header = primary.header.copy()
        image = np.asarray(primary.data, np.float32)
        names = [h.name for h in hdul]
        variance = np.asarray(hdul["UNCERT"].data, np.float32) if "UNCERT" in names else None
        psf = ImagePsf(np.asarray(hdul["PSFIMAGE"].data, np.float64)) if (
            "PSFIMAGE" in names
        ) else None
    x0, y0 = int(header.get("CUTMINX", 0)), int(header.get("CUTMINY", 0))
    wcs = None
    if "CRVAL1" in header:
        shift = 0.0
        if "CTYPE1" not in header:
            # Rubin's cutouts (no CTYPE): TAN, and their CRPIX is 0-based (checked on real
            # LSSTCam and HSC packets: the diaSource x, y land exactly one pixel off otherwise).
            header["CTYPE1"], header["CTYPE2"] = "RA---TAN", "DEC--TAN"
            shift = 1.0
        wcs = wcs_from_header(header, name="alert cutout")
        wcs = shift_wcs(wcs, -x0 - shift, -y0 - shift)
    return Exposure(image, variance=variance, wcs=wcs, psf=psf, xy0=(x0, y0))

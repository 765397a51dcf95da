"""Readers of alert files into the in-memory dict form.

Supported inputs: Avro object container files of Rubin alerts, single packets in the
Confluent wire format, and Rubin alerts stored as Parquet tables (as brokers such as Fink
distribute them: one row per alert, a ``lsst_schema_version`` column, nested structs).
Parquet loses Avro's exact types (ids may come back as doubles, floats as doubles, extra
broker columns appear), so rows are *conformed* to the schema of their version: fields in
schema order, values cast to the Avro type, missing nullable fields set to None, unknown
columns dropped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pachon.alerts.schema import load_schema
from pachon.alerts.serialize import (
    deserialize_alert,
    parse_wire_header,
    read_avro_file,
    version_from_schema_name,
)
from pachon.core.errors import FormatError

__all__ = ["read_rubin_parquet", "read_alert_file", "conform_alert"]

log = logging.getLogger(__name__)

_AVRO_MAGIC = b"Obj\x01"
_PARQUET_MAGIC = b"PAR1"
_CASTS: dict[str, Callable[[Any], Any]] = {
    "long": lambda v: int(round(v)) if isinstance(v, float) else int(v),
    "int": lambda v: int(round(v)) if isinstance(v, float) else int(v),
    "float": float,
    "double": float,
    "boolean": bool,
    "string": str,
    "bytes": bytes,
}


def _named_types(avro_type: Any, found: dict[str, Any]) -> dict[str, Any]:
    """Collect the record definitions of a parsed schema by full name."""
    if isinstance(avro_type, list):
        for branch in avro_type:
            _named_types(branch, found)
    elif isinstance(avro_type, dict):
        if avro_type.get("type") == "record":
            found[avro_type["name"]] = avro_type
            for field in avro_type["fields"]:
                _named_types(field["type"], found)
        elif avro_type.get("type") == "array":
            _named_types(avro_type["items"], found)
    return found


def _conform(value: Any, avro_type: Any, where: str, named: dict[str, Any]) -> Any:
    if isinstance(avro_type, list):  # union: ["null", T]
        if value is None:
            if "null" in avro_type:
                return None
            raise FormatError(f"{where}: null value for a non-nullable field")
        branches = [t for t in avro_type if t != "null"]
        return _conform(value, branches[0], where, named)
    if isinstance(avro_type, str):
        if avro_type in named:
            return _conform(value, named[avro_type], where, named)
        if value is None:
            raise FormatError(f"{where}: null value for a non-nullable {avro_type} field")
        return _CASTS[avro_type](value)
    kind = avro_type["type"]
    if kind == "record":
        if not isinstance(value, dict):
            raise FormatError(f"{where}: expected a record, found {type(value).__name__}")
        out = {}
        for field in avro_type["fields"]:
            name = field["name"]
            item = value.get(name, field.get("default"))
            out[name] = _conform(item, field["type"], f"{where}.{name}", named)
        return out
    if kind == "array":
        items = avro_type["items"]
        return [_conform(v, items, f"{where}[{i}]", named) for i, v in enumerate(value)]
    if kind in _CASTS:  # {"type": "long", "logicalType": ...}
        return _conform(value, kind, where, named)
    raise FormatError(f"{where}: unsupported Avro type {kind!r}")


def conform_alert(record: dict[str, Any], version: str) -> dict[str, Any]:
    """Cast a loosely typed alert (from Parquet, JSON, ...) to the schema of a version.

    Parameters
    ----------
    record
        The alert as read (extra keys are dropped, missing nullable fields become None).
    version
        The Rubin alert schema version it follows.

    Returns
    -------
    dict
        The alert in the in-memory form.

    Raises
    ------
    FormatError
        When a required field is null or a value cannot be cast (the field is named).
    """
    try:
        schema = load_schema(version)
        return _conform(record, schema, "alert", _named_types(schema, {}))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, FormatError):
            raise
        raise FormatError(f"alert cannot be conformed to schema {version}: {exc}") from exc


def _parquet_version(path: Path, table: Any) -> str:
    if "lsst_schema_version" in table.column_names:
        values = set(table.column("lsst_schema_version").unique().to_pylist()) - {None}
        if len(values) == 1:
            return version_from_schema_name(f"{values.pop()}.alert", source=str(path))
        if values:
            raise FormatError(f"{path}: mixes alert schema versions {sorted(values)}")
    match = re.search(r"v(\d+)_(\d+)", path.name)
    if match:
        return version_from_schema_name(
            f"lsst.v{match[1]}_{match[2]}.alert", source=str(path)
        )
    raise FormatError(
        f"{path}: cannot tell the alert schema version (no 'lsst_schema_version' column and "
        "no 'vMAJOR_MINOR' in the file name); rename the file or add the column"
    )


def _read_parquet(path: Path) -> tuple[list[dict[str, Any]], str]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types
        raise FormatError(f"{path}: not a readable Parquet file ({exc})") from exc
    return table.to_pylist(), _parquet_version(path, table)


def read_rubin_parquet(path: str | Path) -> Iterator[dict[str, Any]]:
    """Read Rubin alerts stored as a Parquet table, one alert per row.

    Parameters
    ----------
    path
        The Parquet file.

    Yields
    ------
    dict
        Each alert conformed to the schema of its version.
    """
    path = Path(path)
    rows, version = _read_parquet(path)
    log.debug("%s: %d alerts of schema %s", path, len(rows), version)
    for row in rows:
        yield conform_alert(row, version)


def read_alert_file(path: str | Path) -> Iterator[tuple[dict[str, Any], str]]:
    """Read any supported alert file, yielding each alert with its schema version.

    Parameters
    ----------
    path
        An Avro object container file, a Confluent wire-format single packet, or a Rubin
        Parquet table; the format is told by the file's first bytes, not its name.

    Yields
    ------
    tuple of (dict, str)
        Each alert and its schema version.

    Raises
    ------
    FormatError
        When the file is none of these (naming the file).
    """
    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(_AVRO_MAGIC):
        import fastavro

        with open(path, "rb") as handle:
            name = fastavro.reader(handle).writer_schema.get("name", "")
        version = version_from_schema_name(name, source=str(path))
        for alert in read_avro_file(path):
            yield alert, version
    elif head.startswith(_PARQUET_MAGIC):
        rows, version = _read_parquet(path)
        for row in rows:
            yield conform_alert(row, version), version
    elif (version := parse_wire_header(head)) is not None:
        yield deserialize_alert(path.read_bytes()), version
    else:
        raise FormatError(
            f"{path}: not an alert file (expected an Avro container file, a Parquet table or "
            f"a Confluent wire-format packet; first bytes {head[:5]!r})"
        )

"""Avro serialization of alert packets (schemaless, Confluent wire format, container files).

The in-memory form of an alert is a plain ``dict`` following the Rubin alert schema of its
version.  Three byte forms exist:

- schemaless Avro: the record body alone, the reader must know the schema version;
- the Confluent wire format: byte 0 is the magic ``0``, bytes 1-4 the big-endian schema id
  (``major * 100 + minor``, see :func:`pachon.alerts.schema.schema_id`), then the body;
- Avro object container files, schema embedded, readable by any Avro tool.
"""

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pachon.alerts.schema import (
    available_versions,
    latest_version,
    load_schema,
    schema_id,
    version_from_schema_id,
)
from pachon.core.errors import FormatError

__all__ = [
    "serialize_alert",
    "serialize_alerts",
    "alerts_to_arrow",
    "deserialize_alert",
    "validate_alert",
    "write_avro_file",
    "avro_container_bytes",
    "read_avro_file",
    "WIRE_MAGIC",
    "wire_header",
    "parse_wire_header",
    "version_from_schema_name",
    "dia_source_id",
]

log = logging.getLogger(__name__)

WIRE_MAGIC = 0
"""First byte of a Confluent wire-format message."""

_HEADER = struct.Struct(">bI")


def dia_source_id(alert: dict[str, Any]) -> int | None:
    """Return the id of the triggering DiaSource of an alert of any schema version.

    Parameters
    ----------
    alert
        The alert dict (schemas before 8.0 have no top-level ``diaSourceId``).

    Returns
    -------
    int or None
        The id, or None when the alert has none.
    """
    if alert.get("diaSourceId") is not None:
        return alert["diaSourceId"]
    source = alert.get("diaSource")
    return source.get("diaSourceId") if isinstance(source, dict) else None


def wire_header(version: str | None = None) -> bytes:
    """Return the 5-byte Confluent wire-format header of a schema version.

    Parameters
    ----------
    version
        Schema version; the latest when None.

    Returns
    -------
    bytes
        Magic byte 0 followed by the 4-byte big-endian schema id.
    """
    return _HEADER.pack(WIRE_MAGIC, schema_id(version))


def parse_wire_header(data: bytes) -> str | None:
    """Return the schema version named by a wire-format header, or None if there is none.

    Parameters
    ----------
    data
        A packet that may start with a Confluent wire-format header.

    Returns
    -------
    str or None
        The version when ``data`` starts with the magic byte and a known schema id.
    """
    if len(data) < _HEADER.size or data[0] != WIRE_MAGIC:
        return None
    _, id_ = _HEADER.unpack_from(data)
    try:
        return version_from_schema_id(id_)
    except FormatError:
        return None


def serialize_alert(
    alert: dict[str, Any], *, version: str | None = None, wire: bool = False
) -> bytes:
    """Serialize one alert to schemaless Avro, optionally in the Confluent wire format.

    Parameters
    ----------
    alert
        The alert dict (field names of the schema; None for nulls).
    version
        Schema version; the latest when None.
    wire
        Prefix the Confluent wire-format header (magic byte + schema id).

    Returns
    -------
    bytes
        The encoded packet.

    Raises
    ------
    FormatError
        When the alert does not follow the schema (the field at fault is named).
    """
    version = version or latest_version()
    schema = load_schema(version)
    import fastavro

    buffer = io.BytesIO()
    if wire:
        buffer.write(wire_header(version))
    try:
        fastavro.schemaless_writer(buffer, schema, alert)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # fastavro's own messages are terse: find the field at fault.
        validate_alert(alert, version)
        raise FormatError(
            f"alert diaSourceId={dia_source_id(alert)!r} cannot be written with "
            f"schema {version}: {exc}"
        ) from exc
    return buffer.getvalue()


def alerts_to_arrow(alerts: Iterable[dict[str, Any]], version: str | None = None) -> Any:
    """Convert alert dicts into the columnar batch read by :func:`serialize_alerts`.

    Parameters
    ----------
    alerts
        Alert dicts of one schema version.
    version
        Schema version; the latest when None.

    Returns
    -------
    pyarrow.Table
        One row per alert, one column per top-level field (records as structs, histories
        as lists of structs, numbers as int64/float64).

    Raises
    ------
    FormatError
        When a value cannot be held by its field's column type.
    """
    import pyarrow as pa

    from pachon.alerts.avro_encode import arrow_schema

    struct = arrow_schema(load_schema(version))
    try:
        return pa.Table.from_pylist(list(alerts), schema=pa.schema(list(struct)))
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        raise FormatError(f"alerts do not fit the columns of alert schema "
                          f"{version or latest_version()}: {exc}") from exc


def serialize_alerts(
    alerts: Iterable[dict[str, Any]] | Any, *, version: str | None = None, wire: bool = False
) -> list[bytes]:
    """Serialize many alerts at once (vectorized over the batch), same bytes as one by one.

    Parameters
    ----------
    alerts
        Alert dicts, or a columnar batch: a ``pyarrow.Table`` (see :func:`alerts_to_arrow`,
        :func:`pachon.alerts.columnar.build_alert_table`) with the schema's top-level fields.
    version
        Schema version; the latest when None.
    wire
        Prefix each packet with the Confluent wire-format header.

    Returns
    -------
    list of bytes
        One packet per alert, byte-for-byte those of :func:`serialize_alert`.

    Raises
    ------
    FormatError
        When an alert does not follow the schema (the field at fault is named).
    """
    import pyarrow as pa

    from pachon.alerts.avro_encode import UnsupportedSchemaError, encode_records

    version = version or latest_version()
    schema = load_schema(version)
    prefix = wire_header(version) if wire else b""
    columnar = isinstance(alerts, pa.Table | pa.RecordBatch | pa.StructArray)
    if columnar:
        table = alerts
    else:
        alerts = list(alerts)
        try:
            table = alerts_to_arrow(alerts, version)
        except FormatError:
            return [serialize_alert(a, version=version, wire=wire) for a in alerts]
    try:
        return encode_records(schema, table, prefix=prefix)
    except UnsupportedSchemaError:
        rows = table.to_pylist() if columnar else alerts
        return [serialize_alert(a, version=version, wire=wire) for a in rows]
    except FormatError:
        if columnar:
            raise
        # per packet, so that the error names the alert and the field at fault
        return [serialize_alert(a, version=version, wire=wire) for a in alerts]


def deserialize_alert(data: bytes, *, version: str | None = None) -> dict[str, Any]:
    """Decode one packet (Confluent wire format or schemaless Avro).

    Parameters
    ----------
    data
        The packet bytes.
    version
        Schema version of a schemaless body; ignored when the packet carries a
        wire-format header with a known schema id.

    Returns
    -------
    dict
        The alert.

    Raises
    ------
    FormatError
        When the packet has no wire header and no version is given, or cannot be decoded.
    """
    import fastavro

    wire_version = parse_wire_header(data)
    if wire_version is not None:
        version, offset = wire_version, _HEADER.size
    elif version is None:
        raise FormatError(
            "packet has no Confluent wire-format header (magic byte 0 + known schema id); "
            "pass version= to decode a schemaless Avro body"
        )
    else:
        offset = 0
    schema = load_schema(version)
    try:
        return fastavro.schemaless_reader(io.BytesIO(memoryview(data)[offset:]), schema, None)
    except (EOFError, ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
        raise FormatError(
            f"packet of {len(data)} bytes cannot be decoded with alert schema {version}: "
            f"{exc!r}; check the schema version"
        ) from exc


def validate_alert(alert: dict[str, Any], version: str | None = None) -> None:
    """Check an alert against the official schema.

    Parameters
    ----------
    alert
        The alert dict.
    version
        Schema version; the latest when None.

    Raises
    ------
    FormatError
        Naming the field at fault and the value found there.
    """
    from fastavro.validation import ValidationError, validate

    version = version or latest_version()
    try:
        validate(alert, load_schema(version), raise_errors=True)
    except ValidationError as exc:
        details = "; ".join(str(e) for e in exc.errors[:5]) if exc.errors else str(exc)
        raise FormatError(
            f"alert diaSourceId={dia_source_id(alert)!r} does not follow the Rubin alert "
            f"schema {version}: {details}"
        ) from None


def write_avro_file(
    path: str | Path,
    alerts: Iterable[dict[str, Any]],
    version: str | None = None,
    *,
    codec: str = "deflate",
) -> int:
    """Write alerts to an Avro object container file with the schema embedded.

    Parameters
    ----------
    path
        Output file.
    alerts
        The alerts.
    version
        Schema version; the latest when None.
    codec
        Avro block codec (``"null"``, ``"deflate"``).

    Returns
    -------
    int
        The number of alerts written.
    """
    import fastavro

    schema = load_schema(version)
    count = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal count
        for alert in alerts:
            count += 1
            yield alert

    with open(path, "wb") as handle:
        fastavro.writer(handle, schema, counted(), codec=codec)
    log.debug("wrote %d alerts to %s", count, path)
    return count


def avro_container_bytes(packets: Iterable[bytes], version: str | None = None, *,
                         codec: str = "deflate", block_bytes: int = 1 << 20) -> bytes:
    """An Avro object container file (schema embedded) holding already-encoded packets.

    The same file :func:`write_avro_file` writes from the alert dicts, built from the
    schemaless bodies (e.g. of :func:`pachon.alerts.columnar.build_alerts`) without decoding
    them: fastavro writes the header, the blocks are joined here.

    Parameters
    ----------
    packets
        Schemaless Avro bodies (no wire-format header) of one schema version.
    version
        Schema version; the latest when None.
    codec
        ``"null"`` or ``"deflate"``.
    block_bytes
        Packets are grouped in blocks of about this many bytes (before compression).

    Returns
    -------
    bytes
        The container file.
    """
    import zlib

    import fastavro

    if codec not in ("null", "deflate"):
        raise FormatError(f"container codec {codec!r} is not supported here; use 'null' or "
                          "'deflate' (or write_avro_file for the others)")
    buffer = io.BytesIO()
    fastavro.writer(buffer, load_schema(version), [], codec=codec)
    header = buffer.getvalue()
    sync = header[-16:]
    parts = [header]

    def varint(value: int) -> bytes:
        value = value << 1  # zigzag of a non-negative long
        out = bytearray()
        while value > 0x7F:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)
        return bytes(out)

    def flush(block: list[bytes]) -> None:
        data = b"".join(block)
        if codec == "deflate":
            data = zlib.compress(data)[2:-4]  # raw deflate: no zlib header nor checksum
        parts.extend((varint(len(block)), varint(len(data)), data, sync))

    block: list[bytes] = []
    size = 0
    for packet in packets:
        block.append(packet)
        size += len(packet)
        if size >= block_bytes:
            flush(block)
            block, size = [], 0
    if block:
        flush(block)
    return b"".join(parts)


def version_from_schema_name(name: str, *, source: str = "schema") -> str:
    """Return the version of a Rubin alert schema from its full name.

    Parameters
    ----------
    name
        Record name such as ``"lsst.v7_1.alert"``.
    source
        What the name came from, for the error message.

    Returns
    -------
    str
        The version, e.g. ``"7.1"``.

    Raises
    ------
    FormatError
        When the name is not that of a Rubin alert schema.
    """
    parts = str(name).split(".")
    if len(parts) == 3 and parts[0] == "lsst" and parts[2] == "alert":
        version = parts[1].removeprefix("v").replace("_", ".")
        if version in available_versions():
            return version
    raise FormatError(
        f"{source}: record {name!r} is not a Rubin alert schema known to the installed "
        "lsst-alert-packet (ZTF packets are read by pachon.alerts.ztf)"
    )


def read_avro_file(path: str | Path) -> Iterator[dict[str, Any]]:
    """Read the alerts of an Avro object container file (schema taken from the file).

    Parameters
    ----------
    path
        The file.

    Yields
    ------
    dict
        Each alert.
    """
    import fastavro

    with open(path, "rb") as handle:
        try:
            reader = fastavro.reader(handle)
        except ValueError as exc:
            raise FormatError(f"{path}: not an Avro object container file ({exc})") from exc
        yield from reader

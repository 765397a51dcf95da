"""Raw reading of Avro object container files: block framing without record decoding.

A container file is the magic ``Obj\\x01``, a metadata map (``avro.schema``, ``avro.codec``),
a 16-byte sync marker, then blocks: a zigzag varint record count, a varint byte size, the
(possibly compressed) records, and the sync marker again.  The file log's segments hold
envelope records ``{key: string, value: bytes, timestamp_ms: long}``; reading them here hands
out each ``value`` as a ``memoryview`` into the (memory-mapped) segment, so an alert packet
with its cutouts is never copied on the way to the broker.  Codecs: ``null`` and ``deflate``.
"""

from __future__ import annotations

import json
import logging
import zlib
from typing import Any

from pachon.core.errors import FormatError

__all__ = ["read_varint", "container_header", "iter_blocks", "read_envelopes", "RAW_CODECS"]

log = logging.getLogger(__name__)

_MAGIC = b"Obj\x01"
RAW_CODECS = ("null", "deflate")
"""Block codecs this reader handles (others are left to fastavro)."""


def read_varint(buf: Any, pos: int) -> tuple[int, int]:
    """Decode the zigzag varint at ``pos`` of ``buf``; return (value, position after it).

    Raises
    ------
    FormatError
        When the varint runs past the end of the buffer or is longer than 10 bytes.
    """
    shift = result = 0
    end = len(buf)
    while True:
        if pos >= end or shift > 63:
            raise FormatError(f"truncated or corrupt Avro varint at byte {pos}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7


def container_header(buf: Any, where: str = "container") -> tuple[dict[str, bytes], bytes, int]:
    """Parse the header of a container file held in ``buf``.

    Returns
    -------
    metadata : dict
        Metadata map (``avro.schema``, ``avro.codec``, ...), values as bytes.
    sync : bytes
        The 16-byte sync marker.
    position : int
        Where the first block starts.

    Raises
    ------
    FormatError
        When ``buf`` does not start with a valid container header (``where`` is named).
    """
    if bytes(buf[:4]) != _MAGIC:
        raise FormatError(f"{where}: not an Avro object container file (no 'Obj\\x01' magic)")
    meta: dict[str, bytes] = {}
    pos = 4
    while True:
        count, pos = read_varint(buf, pos)
        if count == 0:
            break
        if count < 0:
            _, pos = read_varint(buf, pos)
            count = -count
        for _ in range(count):
            size, pos = read_varint(buf, pos)
            key = bytes(buf[pos: pos + size]).decode()
            pos += size
            size, pos = read_varint(buf, pos)
            meta[key] = bytes(buf[pos: pos + size])
            pos += size
    if pos + 16 > len(buf):
        raise FormatError(f"{where}: container header is truncated")
    return meta, bytes(buf[pos: pos + 16]), pos + 16


def iter_blocks(buf: Any, where: str = "container") -> tuple[dict[str, bytes], list[tuple[int, Any]]]:
    """Split a container file into its blocks (decompressed).

    Returns
    -------
    metadata : dict
        The header's metadata map.
    blocks : list of (int, buffer)
        Record count and record bytes of each block (a view into ``buf`` for ``null``).

    Raises
    ------
    FormatError
        On an unknown codec, a truncated block or a wrong sync marker (``where`` is named).
    """
    meta, sync, pos = container_header(buf, where)
    codec = meta.get("avro.codec", b"null").decode()
    if codec not in RAW_CODECS:
        raise FormatError(f"{where}: Avro codec {codec!r} is not read raw; use one of {RAW_CODECS}")
    view = memoryview(buf)
    blocks = []
    end = len(buf)
    while pos < end:
        count, pos = read_varint(buf, pos)
        size, pos = read_varint(buf, pos)
        if size < 0 or pos + size + 16 > end:
            raise FormatError(f"{where}: truncated Avro block at byte {pos}")
        data = view[pos: pos + size]
        pos += size
        if bytes(view[pos: pos + 16]) != sync:
            raise FormatError(f"{where}: wrong sync marker after the block ending at byte {pos}")
        pos += 16
        if codec == "deflate":
            data = memoryview(zlib.decompress(data, -15))
        blocks.append((count, data))
    return meta, blocks


def read_envelopes(buf: Any, where: str = "segment") -> list[tuple[str, memoryview, int]]:
    """Read the ``(key, value, timestamp_ms)`` envelopes of a file-log segment.

    Parameters
    ----------
    buf
        The segment's bytes (``bytes``, ``mmap`` or ``memoryview``).
    where
        Name of the segment, for error messages.

    Returns
    -------
    list of (str, memoryview, int)
        Each value is a view into ``buf`` (or into the decompressed block), not a copy.

    Raises
    ------
    FormatError
        When the file is not a segment of envelope records or is damaged.
    """
    meta, blocks = iter_blocks(buf, where)
    try:
        names = [f["name"] for f in json.loads(meta["avro.schema"])["fields"]]
    except (KeyError, ValueError, TypeError) as exc:
        raise FormatError(f"{where}: container has no readable record schema ({exc!r})") from None
    if names != ["key", "value", "timestamp_ms"]:
        raise FormatError(f"{where}: records are {names}, not file-log envelopes (key, value, timestamp_ms)")
    out: list[tuple[str, memoryview, int]] = []
    for count, data in blocks:
        pos = 0
        try:
            for _ in range(count):
                size, pos = read_varint(data, pos)
                key = str(data[pos: pos + size], "utf-8")
                pos += size
                size, pos = read_varint(data, pos)
                value = data[pos: pos + size]
                pos += size
                stamp, pos = read_varint(data, pos)
                out.append((key, value, stamp))
        except UnicodeDecodeError as exc:
            raise FormatError(f"{where}: corrupt envelope key ({exc})") from None
        if pos != len(data):
            raise FormatError(f"{where}: a block's {count} envelopes do not fill its {len(data)} bytes")
    return out

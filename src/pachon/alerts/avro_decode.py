"""Vectorized decoding of many schemaless Avro records at once into Arrow columns.

The packets of a batch are joined into one byte buffer, and a cursor array holds where each
packet's decoding stands.  The schema is walked once: each field is decoded for every packet
with a handful of numpy operations (gathers at the cursors), the cursors advance, and the
values land in Arrow arrays.  Arrays (histories) are walked one item per step for all packets
that still have items.  A *projection* says which fields to materialise: the others are only
skipped (a ``bytes`` field — a cutout — is skipped by moving the cursor, without copying).

Supported types are those of :mod:`pachon.alerts.avro_encode`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pachon.alerts.avro_encode import UnsupportedSchemaError, _null_union, _resolve, named_types
from pachon.core.errors import FormatError

__all__ = ["decode_records", "Projection"]

log = logging.getLogger(__name__)

Projection = bool | dict[str, Any]
"""True: the whole value; a dict: these fields of a record (value: their projection)."""

_UNITS = {"timestamp-micros": "us", "timestamp-millis": "ms"}
_WIDTHS = {"double": 8, "float": 4, "boolean": 1}


def _varint(buf: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zigzag varints at ``pos``: (values, positions after them)."""
    b = buf[pos]
    result = (b & 0x7F).astype(np.uint64)
    after = pos + 1
    more = np.flatnonzero(b >= 0x80)
    shift = np.uint64(7)
    while more.size:
        if shift > 63:
            raise FormatError("varint longer than 10 bytes: corrupt packet")
        b = buf[after[more]]
        result[more] |= (b & 0x7F).astype(np.uint64) << shift
        after[more] += 1
        more = more[b >= 0x80]
        shift += np.uint64(7)
    values = (result >> np.uint64(1)).view(np.int64) ^ -(result & np.uint64(1)).view(np.int64)
    return values, after


def _gather(buf: np.ndarray, start: np.ndarray, lens: np.ndarray) -> np.ndarray:
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, np.uint8)
    base = np.zeros(len(lens), np.int64)
    np.cumsum(lens[:-1], out=base[1:])
    return buf[np.repeat(start - base, lens) + np.arange(total)]


class _Decoder:
    def __init__(self, schema: Any, buf: np.ndarray) -> None:
        self.names = named_types(schema)
        self.buf = buf

    def value(self, avro_type: Any, pos: np.ndarray, want: Projection) -> tuple[Any, np.ndarray]:
        import pyarrow as pa

        buf = self.buf
        avro_type = _resolve(avro_type, self.names)
        n = len(pos)
        if isinstance(avro_type, list):
            null_index, inner = _null_union(avro_type)
            branch = buf[pos]
            width = _WIDTHS.get(inner) if not want and isinstance(inner, str) else None
            if width is not None:  # skip a nullable fixed-width number in one step
                if branch.size and branch.max() > 2:
                    raise FormatError("union branch index out of range: corrupt packet")
                return None, pos + 1 + width * (branch == 2 * (1 - null_index))
            if np.any(branch > 2):
                raise FormatError("union branch index out of range: corrupt packet")
            valid = branch == 2 * (1 - null_index)
            after = pos + 1
            rows = np.flatnonzero(valid)
            sub, sub_after = self.value(inner, after[rows], want)
            after[rows] = sub_after
            if not want:
                return None, after
            if rows.size == n:
                return sub, after
            index = np.cumsum(valid) - 1
            return sub.take(pa.array(index, mask=~valid)), after
        kind = avro_type if isinstance(avro_type, str) else avro_type["type"]
        if kind == "record":
            fields, arrays, after = [], [], pos
            for field in avro_type["fields"]:
                sub_want = want if want is True else want.get(field["name"], False) if want else False
                arr, after = self.value(field["type"], after, sub_want)
                if sub_want:
                    fields.append(field["name"])
                    arrays.append(arr)
            if not want:
                return None, after
            return pa.StructArray.from_arrays(arrays, names=fields) if fields else pa.array(
                [{}] * n, pa.struct([])), after
        if kind == "array":
            return self._array(avro_type["items"], pos, want)
        if kind in ("long", "int"):
            values, after = _varint(buf, pos)
            if not want:
                return None, after
            unit = _UNITS.get(avro_type.get("logicalType")) if isinstance(avro_type, dict) else None
            if unit:
                return pa.array(values, pa.timestamp(unit, tz="UTC")), after
            return pa.array(values, pa.int64()), after
        if kind in ("float", "double"):
            width = 4 if kind == "float" else 8
            if not want:
                return None, pos + width
            raw = buf[pos[:, None] + np.arange(width)]
            values = raw.view("<f4" if width == 4 else "<f8").reshape(n).astype(np.float64)
            return pa.array(values, pa.float64()), pos + width
        if kind == "boolean":
            return (pa.array(buf[pos] != 0) if want else None), pos + 1
        if kind in ("string", "bytes"):
            lens, start = _varint(buf, pos)
            if np.any(lens < 0):
                raise FormatError("negative string length: corrupt packet")
            if not want:
                return None, start + lens
            offsets = np.zeros(n + 1, np.int64)
            np.cumsum(lens, out=offsets[1:])
            data = _gather(buf, start, lens)
            arrow_type = pa.large_string() if kind == "string" else pa.large_binary()
            arr = pa.Array.from_buffers(arrow_type, n,
                                        [None, pa.py_buffer(offsets), pa.py_buffer(data)])
            if kind == "string":
                arr.validate(full=True)  # UTF-8, as fastavro checks
            return arr, start + lens
        raise UnsupportedSchemaError(f"Avro type {kind!r} is not supported by the vectorized decoder")

    def _array(self, items: Any, pos: np.ndarray, want: Projection) -> tuple[Any, np.ndarray]:
        import pyarrow as pa

        n = len(pos)
        after = pos.copy()
        counts = np.zeros(n, np.int64)
        pending = np.arange(n)  # rows whose next block count must be read
        chunks, chunk_rows = [], []
        while pending.size:
            block, after[pending] = _varint(self.buf, after[pending])
            negative = block < 0
            if negative.any():  # a block size follows a negative count
                rows = pending[negative]
                _, after[rows] = _varint(self.buf, after[rows])
                block = np.abs(block)
            pending = pending[block > 0]
            remaining = block[block > 0]
            active, left = pending, remaining
            while active.size:
                arr, after[active] = self.value(items, after[active], want)
                if want:
                    chunks.append(arr)
                    chunk_rows.append(active)
                counts[active] += 1
                left = left - 1
                keep = left > 0
                active, left = active[keep], left[keep]
        if not want:
            return None, after
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        if chunks:
            values = pa.concat_arrays(chunks)
            order = np.argsort(np.concatenate(chunk_rows), kind="stable")
            values = values.take(pa.array(order))
        else:
            empty, _ = self.value(items, np.zeros(0, np.int64), want)
            values = empty
        return pa.LargeListArray.from_arrays(pa.array(offsets), values), after


def decode_records(
    schema: Any, packets: list[bytes], *, skip: int = 0, projection: Projection = True
) -> Any:
    """Decode the schemaless Avro records of many packets into one Arrow struct array.

    Parameters
    ----------
    schema
        fastavro parsed schema of the record.
    packets
        Encoded packets, all of this schema.
    skip
        Bytes to skip at the start of each packet (5 for the Confluent wire format).
    projection
        Fields to materialise (see :data:`Projection`); the others are skipped.

    Returns
    -------
    pyarrow.StructArray
        One row per packet with the projected fields; values as fastavro decodes them
        (numbers as int64/float64, ``timestamp-*`` longs as UTC timestamps).

    Raises
    ------
    FormatError
        When a packet is corrupt or does not end where its record ends.
    UnsupportedSchemaError
        When the schema uses a type this decoder does not handle.
    """
    import pyarrow as pa

    if not packets:
        raise FormatError("no packets to decode")
    runs = _runs(packets)
    arrays = [_decode_run(schema, buf, starts, lengths, skip, projection, first)
              for buf, starts, lengths, first in runs]
    return arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)


def _address(view: memoryview) -> int:
    return np.frombuffer(view, np.uint8).__array_interface__["data"][0]


def _base(packet: Any) -> Any:
    """The object a contiguous ``memoryview`` packet is a slice of, else None."""
    if isinstance(packet, memoryview) and packet.c_contiguous and packet.itemsize == 1:
        return packet.obj
    return None


def _runs(packets: list[Any]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """(buffer, starts, lengths, index of first packet) per run of packets sharing a buffer.

    Packets that are ``memoryview`` slices of one object (a memory-mapped file-log segment)
    are decoded in place; the others are joined into one buffer (one copy).
    """
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []
    n = len(packets)
    k = 0
    while k < n:
        base = _base(packets[k])
        stop = k + 1
        if base is not None:
            while stop < n and _base(packets[stop]) is base:
                stop += 1
            whole = np.frombuffer(base, np.uint8)
            origin = whole.__array_interface__["data"][0]
            starts = np.fromiter((_address(p) - origin for p in packets[k:stop]), np.int64, stop - k)
            lengths = np.fromiter((p.nbytes for p in packets[k:stop]), np.int64, stop - k)
            if starts.min() >= 0 and (starts + lengths).max() <= len(whole):
                out.append((whole, starts, lengths, k))
                k = stop
                continue
        if base is not None:  # views outside their object's buffer: join this run
            stop = k + 1
        while stop < n and _base(packets[stop]) is None:
            stop += 1
        group = packets[k:stop]
        lengths = np.fromiter((len(p) for p in group), np.int64, len(group))
        starts = np.zeros(len(group), np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        out.append((np.frombuffer(b"".join(group) + bytes(16), np.uint8), starts, lengths, k))
        k = stop
    return out


def _decode_run(schema: Any, buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray, skip: int,
                projection: Projection, first: int) -> Any:
    try:
        arr, ends = _Decoder(schema, buf).value(schema, starts + skip, projection)
    except IndexError as exc:
        raise FormatError(f"corrupt packet in a batch of {len(starts)}: {exc}") from exc
    bad = np.flatnonzero(ends != starts + lengths)
    if bad.size:
        raise FormatError(
            f"{bad.size} of {len(starts)} packets do not end where their Avro record ends "
            f"(first: packet {first + bad[0]}, {lengths[bad[0]]} bytes); corrupt or of another schema"
        )
    return arr

"""Vectorized decoding of many schemaless Avro records at once into Arrow columns.

The packets of a batch lie in one byte buffer, and a cursor array holds where each packet's
decoding stands.  The schema (with a *projection*: which fields to materialise) is compiled
once into a tree of small decoding steps, kept per (schema, projection): each step decodes
or skips one field for every packet with a handful of numpy operations (gathers at the
cursors) and advances the cursors.  Fields that are only skipped cost least: a nullable
number is one table look-up of its union byte, runs of fixed-width fields one addition, a
``bytes`` field (a cutout) one move of the cursor, without copying.  Arrays (histories) are
walked one item per step for all packets that still have items; their values are put back
in packet order once, at the end.  Values are gathered into numpy arrays and become Arrow
arrays once per field.

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
_BAD_STEP = 1 << 40  # cursor advance of a corrupt union byte: the next read fails


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


def _varint_end(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Positions after the varints at ``pos`` (their values unread)."""
    after = pos + 1
    more = np.flatnonzero(buf[pos] >= 0x80)
    steps = 1
    while more.size:
        if steps >= 10:
            raise FormatError("varint longer than 10 bytes: corrupt packet")
        b = buf[after[more]]
        after[more] += 1
        more = more[b >= 0x80]
        steps += 1
    return after


def _gather(buf: np.ndarray, start: np.ndarray, lens: np.ndarray) -> np.ndarray:
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, np.uint8)
    base = np.zeros(len(lens), np.int64)
    np.cumsum(lens[:-1], out=base[1:])
    return buf[np.repeat(start - base, lens) + np.arange(total)]


def _offsets(lens: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lens) + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    return offsets


def _spread_valid(valid: np.ndarray | None, rows: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, bool)
    out[rows] = True if valid is None else valid
    return out


def _mask(valid: np.ndarray | None) -> Any:
    import pyarrow as pa

    return None if valid is None or valid.all() else pa.array(~valid)


# -- decoded columns (numpy), turned into Arrow arrays once ---------------------------------

class _Prim:
    """Numbers or booleans: values (anything where null) and validity (None: all valid)."""

    __slots__ = ("values", "valid", "type")

    def __init__(self, values: np.ndarray, valid: np.ndarray | None, arrow_type: Any) -> None:
        self.values, self.valid, self.type = values, valid, arrow_type

    def take(self, index: np.ndarray) -> _Prim:
        return _Prim(self.values[index], None if self.valid is None else self.valid[index],
                     self.type)

    def expand(self, rows: np.ndarray, n: int) -> _Prim:
        values = np.zeros(n, self.values.dtype)
        values[rows] = self.values
        return _Prim(values, _spread_valid(self.valid, rows, n), self.type)

    def arrow(self) -> Any:
        import pyarrow as pa

        return pa.array(self.values, self.type, mask=None if self.valid is None else ~self.valid)


class _Bin:
    """Strings or bytes: offsets ``(n + 1,)`` into ``data``, validity."""

    __slots__ = ("offsets", "data", "valid", "string")

    def __init__(self, offsets: np.ndarray, data: np.ndarray, valid: np.ndarray | None,
                 string: bool) -> None:
        self.offsets, self.data, self.valid, self.string = offsets, data, valid, string

    def take(self, index: np.ndarray) -> _Bin:
        lens = np.diff(self.offsets)[index]
        return _Bin(_offsets(lens), _gather(self.data, self.offsets[index], lens),
                    None if self.valid is None else self.valid[index], self.string)

    def expand(self, rows: np.ndarray, n: int) -> _Bin:
        lens = np.zeros(n, np.int64)
        lens[rows] = np.diff(self.offsets)
        offsets = _offsets(lens) + self.offsets[0]
        return _Bin(offsets, self.data, _spread_valid(self.valid, rows, n), self.string)

    def arrow(self) -> Any:
        import pyarrow as pa

        n = len(self.offsets) - 1
        arrow_type = pa.large_string() if self.string else pa.large_binary()
        validity = None
        if self.valid is not None and not self.valid.all():
            validity = pa.array(self.valid).buffers()[1]
        arr = pa.Array.from_buffers(arrow_type, n, [validity, pa.py_buffer(self.offsets),
                                                    pa.py_buffer(self.data)])
        if self.string:
            arr.validate(full=True)  # UTF-8, as fastavro checks
        return arr


class _Rec:
    """A record: its projected fields' columns, validity."""

    __slots__ = ("names", "children", "valid", "n")

    def __init__(self, names: list[str], children: list[Any], valid: np.ndarray | None,
                 n: int) -> None:
        self.names, self.children, self.valid, self.n = names, children, valid, n

    def take(self, index: np.ndarray) -> _Rec:
        return _Rec(self.names, [c.take(index) for c in self.children],
                    None if self.valid is None else self.valid[index], len(index))

    def expand(self, rows: np.ndarray, n: int) -> _Rec:
        return _Rec(self.names, [c.expand(rows, n) for c in self.children],
                    _spread_valid(self.valid, rows, n), n)

    def arrow(self) -> Any:
        import pyarrow as pa

        if not self.names:
            valid = np.ones(self.n, bool) if self.valid is None else self.valid
            return pa.array([{} if v else None for v in valid.tolist()], pa.struct([]))
        return pa.StructArray.from_arrays([c.arrow() for c in self.children], names=self.names,
                                          mask=_mask(self.valid))


class _List:
    """An array: offsets ``(n + 1,)`` into the items' column, validity."""

    __slots__ = ("offsets", "child", "valid")

    def __init__(self, offsets: np.ndarray, child: Any, valid: np.ndarray | None) -> None:
        self.offsets, self.child, self.valid = offsets, child, valid

    def take(self, index: np.ndarray) -> _List:
        lens = np.diff(self.offsets)[index]
        items = _gather(np.arange(self.offsets[-1]), self.offsets[index], lens)
        return _List(_offsets(lens), self.child.take(items),
                     None if self.valid is None else self.valid[index])

    def expand(self, rows: np.ndarray, n: int) -> _List:
        lens = np.zeros(n, np.int64)
        lens[rows] = np.diff(self.offsets)
        return _List(_offsets(lens) + self.offsets[0], self.child,
                     _spread_valid(self.valid, rows, n))

    def arrow(self) -> Any:
        import pyarrow as pa

        return pa.LargeListArray.from_arrays(pa.array(self.offsets), self.child.arrow(),
                                             mask=_mask(self.valid))


def _concat(cols: list[Any]) -> Any:
    """Columns of the same shape end to end."""
    first = cols[0]
    valid = None
    if any(c.valid is not None for c in cols):
        valid = np.concatenate([np.ones(_length(c), bool) if c.valid is None else c.valid
                                for c in cols])
    if isinstance(first, _Prim):
        return _Prim(np.concatenate([c.values for c in cols]), valid, first.type)
    if isinstance(first, _Bin):
        lens = np.concatenate([np.diff(c.offsets) for c in cols])
        starts = np.concatenate([c.offsets[:-1] for c in cols])
        data = [c.data for c in cols]
        if all(d is data[0] for d in data):  # views of one buffer: one gather
            return _Bin(_offsets(lens), _gather(data[0], starts, lens), valid, first.string)
        return _Bin(_offsets(lens), np.concatenate([_gather(c.data, c.offsets[:-1],
                                                            np.diff(c.offsets)) for c in cols]),
                    valid, first.string)
    if isinstance(first, _Rec):
        children = [_concat([c.children[k] for c in cols]) for k in range(len(first.names))]
        return _Rec(first.names, children, valid, sum(c.n for c in cols))
    lens = np.concatenate([np.diff(c.offsets) for c in cols])
    children = [c.child.take(np.arange(c.offsets[0], c.offsets[-1])) for c in cols]
    return _List(_offsets(lens), _concat(children), valid)


def _length(col: Any) -> int:
    if isinstance(col, _Prim):
        return len(col.values)
    if isinstance(col, _Rec):
        return col.n
    return len(col.offsets) - 1


# -- the compiled decoding steps -------------------------------------------------------------

class _Skip:
    """Fixed-width fields skipped: one addition."""

    __slots__ = ("width",)

    def __init__(self, width: int) -> None:
        self.width = width

    def run(self, buf: np.ndarray, pos: np.ndarray) -> tuple[Any, np.ndarray]:
        return None, pos + self.width


class _SkipNullableFixed:
    """A skipped ``[null, number]``: the advance looked up from the union byte."""

    __slots__ = ("steps",)

    def __init__(self, null_index: int, width: int) -> None:
        self.steps = np.full(256, _BAD_STEP, np.int64)
        self.steps[2 * null_index] = 1
        self.steps[2 * (1 - null_index)] = 1 + width

    def run(self, buf: np.ndarray, pos: np.ndarray) -> tuple[Any, np.ndarray]:
        return None, pos + self.steps[buf[pos]]


class _SkipVarint:
    __slots__ = ()

    def run(self, buf: np.ndarray, pos: np.ndarray) -> tuple[Any, np.ndarray]:
        return None, _varint_end(buf, pos)


class _SkipBinary:
    __slots__ = ()

    def run(self, buf: np.ndarray, pos: np.ndarray) -> tuple[Any, np.ndarray]:
        lens, start = _varint(buf, pos)
        if lens.size and lens.min() < 0:
            raise FormatError("negative string length: corrupt packet")
        return None, start + lens


class _Long:
    __slots__ = ("type",)

    def __init__(self, arrow_type: Any) -> None:
        self.type = arrow_type

    def run(self, buf: np.ndarray, pos: np.ndarray) -> tuple[Any, np.ndarray]:
        values, after = _varint(buf, pos)
        return _Prim(values, None, self.type), after


class _Number:
    """float, double or boolean, read at every cursor (clipped: a null's slot may be short)."""

    __slots__ = ("width", "dtype", "type", "columns")

    def __init__(self, kind: str) -> None:
        import pyarrow as pa

        self.width = _WIDTHS[kind]
        self.dtype = {"double": "<f8", "float": "<f4", "boolean": None}[kind]
        self.type = pa.bool_() if kind == "boolean" else pa.float64()
        self.columns = np.arange(self.width)

    def run(self, buf: np.ndarray, pos: np.ndarray) -> tuple[Any, np.ndarray]:
        if self.dtype is None:
            values = np.take(buf, pos, mode="clip") != 0
        else:
            raw = np.take(buf, pos[:, None] + self.columns, mode="clip")
            with np.errstate(invalid="ignore"):  # a null's slot may hold a signalling NaN
                values = raw.view(self.dtype).reshape(len(pos)).astype(np.float64)
        return _Prim(values, None, self.type), pos + self.width


class _Binary:
    __slots__ = ("string",)

    def __init__(self, string: bool) -> None:
        self.string = string

    def run(self, buf: np.ndarray, pos: np.ndarray) -> tuple[Any, np.ndarray]:
        lens, start = _varint(buf, pos)
        if lens.size and lens.min() < 0:
            raise FormatError("negative string length: corrupt packet")
        return _Bin(_offsets(lens), _gather(buf, start, lens), None, self.string), start + lens


class _Union:
    """``[null, T]``: T decoded where present (numbers at every cursor, then masked)."""

    __slots__ = ("present", "inner", "want", "width")

    def __init__(self, null_index: int, inner: Any, want: bool, width: int) -> None:
        self.present = 2 * (1 - null_index)
        self.inner, self.want, self.width = inner, want, width

    def run(self, buf: np.ndarray, pos: np.ndarray) -> tuple[Any, np.ndarray]:
        branch = buf[pos]
        if (branch & 0xFD).any():
            raise FormatError("union branch index out of range: corrupt packet")
        valid = branch == self.present
        after = pos + 1
        if valid.all():
            return self.inner.run(buf, after)
        if self.width:  # a number: read everywhere, keep where present
            col, _ = self.inner.run(buf, after)
            col.valid = valid
            return col, after + self.width * valid
        rows = np.flatnonzero(valid)
        sub, after[rows] = self.inner.run(buf, after[rows])
        return (sub.expand(rows, len(pos)) if self.want else None), after


class _Record:
    __slots__ = ("names", "steps", "keep", "want")

    def __init__(self, steps: list[tuple[str | None, Any]], want: bool) -> None:
        merged: list[tuple[str | None, Any]] = []
        for name, step in steps:  # runs of skipped fixed-width fields: one addition
            if name is None and isinstance(step, _Skip) and merged and merged[-1][0] is None and (
                    isinstance(merged[-1][1], _Skip)):
                merged[-1] = (None, _Skip(merged[-1][1].width + step.width))
            else:
                merged.append((name, step))
        self.steps = [s for _, s in merged]
        self.keep = [name is not None for name, _ in merged]
        self.names = [name for name, _ in merged if name is not None]
        self.want = want

    def run(self, buf: np.ndarray, pos: np.ndarray) -> tuple[Any, np.ndarray]:
        cols = []
        for step, keep in zip(self.steps, self.keep):  # noqa: B905 (same length)
            col, pos = step.run(buf, pos)
            if keep:
                cols.append(col)
        return (_Rec(self.names, cols, None, len(pos)) if self.want else None), pos


class _Array:
    """Items walked one per step for every packet that still has some."""

    __slots__ = ("items", "want")

    def __init__(self, items: Any, want: bool) -> None:
        self.items, self.want = items, want

    def run(self, buf: np.ndarray, pos: np.ndarray) -> tuple[Any, np.ndarray]:
        n = len(pos)
        after = pos.copy()
        counts = np.zeros(n, np.int64)
        pending = np.arange(n)  # rows whose next block count must be read
        cols, rows, index = [], [], []
        while pending.size:
            block, after[pending] = _varint(buf, after[pending])
            negative = block < 0
            if negative.any():  # a block size follows a negative count
                _, after[pending[negative]] = _varint(buf, after[pending[negative]])
                block = np.abs(block)
            if block.size and block.max() > len(buf):
                raise FormatError("array block count larger than the packet: corrupt packet")
            pending = pending[block > 0]
            active, left = pending, block[block > 0]
            while active.size:
                col, after[active] = self.items.run(buf, after[active])
                if self.want:
                    cols.append(col)
                    rows.append(active)
                    index.append(counts[active])
                counts[active] += 1
                left = left - 1
                keep = left > 0
                active, left = active[keep], left[keep]
        if not self.want:
            return None, after
        offsets = _offsets(counts)
        if not cols:
            child, _ = self.items.run(buf, np.zeros(0, np.int64))
            return _List(offsets, child, None), after
        dest = offsets[np.concatenate(rows)] + np.concatenate(index)
        order = np.empty(len(dest), np.int64)
        order[dest] = np.arange(len(dest))
        child = cols[0] if len(cols) == 1 else _concat(cols)
        return _List(offsets, child.take(order), None), after


def _compile(avro_type: Any, names: dict[str, Any], want: Projection) -> Any:
    """The decoding step of a type under a projection (falsy: skipped)."""
    import pyarrow as pa

    avro_type = _resolve(avro_type, names)
    if isinstance(avro_type, list):
        null_index, inner = _null_union(avro_type)
        resolved = _resolve(inner, names)
        width = _WIDTHS.get(resolved, 0) if isinstance(resolved, str) else 0
        if width and not want:
            return _SkipNullableFixed(null_index, width)
        return _Union(null_index, _compile(inner, names, want), bool(want), width)
    kind = avro_type if isinstance(avro_type, str) else avro_type["type"]
    if kind == "record":
        steps = []
        for field in avro_type["fields"]:
            sub = want if want is True else want.get(field["name"], False) if want else False
            steps.append((field["name"] if sub else None, _compile(field["type"], names, sub)))
        return _Record(steps, bool(want))
    if kind == "array":
        return _Array(_compile(avro_type["items"], names, want), bool(want))
    if kind in ("long", "int"):
        if not want:
            return _SkipVarint()
        unit = _UNITS.get(avro_type.get("logicalType")) if isinstance(avro_type, dict) else None
        return _Long(pa.timestamp(unit, tz="UTC") if unit else pa.int64())
    if kind in _WIDTHS:
        return _Number(kind) if want else _Skip(_WIDTHS[kind])
    if kind in ("string", "bytes"):
        return _Binary(kind == "string") if want else _SkipBinary()
    raise UnsupportedSchemaError(f"Avro type {kind!r} is not supported by the vectorized decoder")


def _freeze(projection: Projection) -> Any:
    if isinstance(projection, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in projection.items()))
    return bool(projection)


_PLANS: dict[tuple[int, Any], tuple[Any, Any]] = {}


def _plan(schema: Any, projection: Projection) -> Any:
    """The compiled steps of ``schema`` under ``projection``, kept per schema object."""
    key = (id(schema), _freeze(projection))
    hit = _PLANS.get(key)
    if hit is None or hit[0] is not schema:
        if len(_PLANS) > 256:
            _PLANS.clear()
        hit = (schema, _compile(schema, named_types(schema), projection))
        _PLANS[key] = hit
    return hit[1]


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
    plan = _plan(schema, projection)
    arrays = [_decode_run(plan, buf, starts, lengths, skip, first)
              for buf, starts, lengths, first in _runs(packets)]
    if arrays[0] is None:
        return None
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


def _decode_run(plan: Any, buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray, skip: int,
                first: int) -> Any:
    try:
        col, ends = plan.run(buf, starts + skip)
    except IndexError as exc:
        raise FormatError(f"corrupt packet in a batch of {len(starts)}: {exc}") from exc
    bad = np.flatnonzero(ends != starts + lengths)
    if bad.size:
        raise FormatError(
            f"{bad.size} of {len(starts)} packets do not end where their Avro record ends "
            f"(first: packet {first + bad[0]}, {lengths[bad[0]]} bytes); corrupt or of another schema"
        )
    return None if col is None else col.arrow()

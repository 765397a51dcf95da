"""Vectorized Avro binary encoding of many records at once, driven by a parsed schema.

Avro's binary encoding is simple: ``int``/``long`` are zigzag varints, ``float``/``double``
little-endian IEEE numbers, ``boolean`` one byte, ``string``/``bytes`` a varint length then
the bytes, a union the varint index of its branch then the value, a record its fields in
order, an array one block (varint count, the items, then a ``0``; an empty array is a single
``0``) — exactly what fastavro writes.  Instead of walking one packet at a time, the encoder
walks the *schema* once per batch, encoding each field for all records of the batch with numpy
(one pass per field over an Arrow column), and assembles each record's bytes from per-field
pieces via offsets.

Two piece layouts are used while assembling:

- ``_Fixed``: a padded ``(m, width)`` byte matrix plus the used length of each row (numbers,
  union branch indexes, short strings); runs of them are compacted with one boolean mask;
- ``_Ragged``: a flat byte buffer plus ``m + 1`` offsets (long strings, bytes, records,
  arrays).

Supported types are those of the Rubin alert schemas: records, arrays, unions of ``null`` and
one other type, ``long``/``int`` (with ``timestamp-*`` logical types), ``float``, ``double``,
``boolean``, ``string``, ``bytes``.  Anything else raises :class:`UnsupportedSchemaError` so
callers can fall back to fastavro.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from pachon.core.errors import FormatError

__all__ = ["UnsupportedSchemaError", "arrow_schema", "encode_records", "named_types"]

log = logging.getLogger(__name__)

_SMALL_STRING = 64  # strings/bytes at most this long (in a batch) go to a padded matrix
_ROW_COPY = 512  # mean row length above which ragged pieces are copied row by row


class UnsupportedSchemaError(FormatError):
    """The schema uses a type the vectorized codec does not handle (use fastavro)."""


def named_types(schema: Any, table: dict[str, Any] | None = None) -> dict[str, Any]:
    """Collect the named records of a parsed schema (full name → definition)."""
    table = {} if table is None else table
    if isinstance(schema, list):
        for branch in schema:
            named_types(branch, table)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "record":
            table.setdefault(schema["name"], schema)
            for field in schema["fields"]:
                named_types(field["type"], table)
        elif kind == "array":
            named_types(schema["items"], table)
    return table


_NAMES: dict[int, tuple[Any, dict[str, Any]]] = {}


def _named_types_cached(schema: Any) -> dict[str, Any]:
    """:func:`named_types` of a schema, kept per schema object (parsed schemas are cached)."""
    hit = _NAMES.get(id(schema))
    if hit is None or hit[0] is not schema:
        hit = (schema, named_types(schema))
        if len(_NAMES) > 64:
            _NAMES.clear()
        _NAMES[id(schema)] = hit
    return hit[1]


def _resolve(avro_type: Any, names: dict[str, Any]) -> Any:
    if isinstance(avro_type, str) and avro_type in names:
        return names[avro_type]
    return avro_type


def _null_union(avro_type: list[Any]) -> tuple[int, Any]:
    """Index of ``null`` and the other branch of a two-branch nullable union."""
    if len(avro_type) != 2 or "null" not in avro_type:
        raise UnsupportedSchemaError(f"union {avro_type!r} is not [null, T]")
    null_index = avro_type.index("null")
    return null_index, avro_type[1 - null_index]


def arrow_schema(schema: Any) -> Any:
    """Return the Arrow struct type matching a parsed Avro record schema.

    Numbers are ``int64``/``float64`` (as Python holds them), strings and bytes the ``large_``
    Arrow types, arrays ``large_list``, ``timestamp-*`` longs timestamps in UTC.

    Parameters
    ----------
    schema
        fastavro parsed schema of a record.

    Returns
    -------
    pyarrow.StructType
        Field order and names of the schema.
    """
    import pyarrow as pa

    names = named_types(schema)
    scalars = {"long": pa.int64(), "int": pa.int64(), "float": pa.float64(),
               "double": pa.float64(), "boolean": pa.bool_(), "string": pa.large_string(),
               "bytes": pa.large_binary()}
    units = {"timestamp-micros": "us", "timestamp-millis": "ms"}

    def convert(avro_type: Any) -> Any:
        avro_type = _resolve(avro_type, names)
        if isinstance(avro_type, list):
            return convert(_null_union(avro_type)[1])
        if isinstance(avro_type, str):
            if avro_type not in scalars:
                raise UnsupportedSchemaError(f"Avro type {avro_type!r} is not supported")
            return scalars[avro_type]
        kind = avro_type["type"]
        if kind == "record":
            return pa.struct([pa.field(f["name"], convert(f["type"])) for f in avro_type["fields"]])
        if kind == "array":
            return pa.large_list(convert(avro_type["items"]))
        if avro_type.get("logicalType") in units and kind == "long":
            return pa.timestamp(units[avro_type["logicalType"]], tz="UTC")
        if kind in scalars:
            return scalars[kind]
        raise UnsupportedSchemaError(f"Avro type {kind!r} is not supported")

    return convert(schema)


@dataclass(slots=True)
class _Fixed:
    mat: np.ndarray  # (m, width) uint8, row i uses mat[i, :lens[i]]
    lens: np.ndarray  # (m,) int64
    dense: bool = False  # every row uses the whole width (lens == width)


@dataclass(slots=True)
class _Ragged:
    data: np.ndarray  # uint8; row i is data[offsets[i]:offsets[i + 1]]
    offsets: np.ndarray  # (m + 1,) int64, non-decreasing


def _zigzag(values: np.ndarray) -> np.ndarray:
    v = values.astype(np.int64, copy=False)
    return ((v << 1) ^ (v >> 63)).view(np.uint64)


def _varint(unsigned: np.ndarray) -> _Fixed:
    """Avro varints of unsigned (already zigzagged) 64-bit values."""
    m = len(unsigned)
    mat = np.empty((m, 10), np.uint8)
    lens = np.ones(m, np.int64)
    v = unsigned.astype(np.uint64, copy=True)
    for j in range(10):
        low = (v & np.uint64(0x7F)).astype(np.uint8)
        v >>= np.uint64(7)
        more = v != 0
        mat[:, j] = low | (more.astype(np.uint8) << 7)
        if not more.any():
            return _Fixed(mat[:, : j + 1], lens, bool(m == 0 or lens.min() == j + 1))
        lens += more
    return _Fixed(mat, lens, bool(m == 0 or lens.min() == 10))


def _constant(m: int, value: bytes) -> _Fixed:
    mat = np.broadcast_to(np.frombuffer(value, np.uint8), (m, len(value)))
    return _Fixed(mat, np.full(m, len(value), np.int64), True)


def _to_ragged(piece: _Fixed | _Ragged) -> _Ragged:
    if isinstance(piece, _Ragged):
        return piece
    width = piece.mat.shape[1]
    m = len(piece.lens)
    if piece.dense:  # no padding: the rows end to end
        return _Ragged(np.ascontiguousarray(piece.mat).reshape(-1),
                       np.arange(m + 1, dtype=np.int64) * width)
    mask = np.arange(width)[None, :] < piece.lens[:, None]
    offsets = np.zeros(m + 1, np.int64)
    np.cumsum(piece.lens, out=offsets[1:])
    return _Ragged(piece.mat[mask], offsets)


def _concat(pieces: list[_Fixed | _Ragged], m: int) -> _Fixed | _Ragged:
    """Concatenate, row by row, the pieces of the fields of m records."""
    runs: list[_Fixed | _Ragged] = []
    fixed: list[_Fixed] = []

    def close_run() -> None:
        if len(fixed) == 1:
            runs.append(fixed[0])
        elif fixed and all(f.dense for f in fixed):  # one (m, width) matrix, no padding
            mat = np.concatenate([f.mat for f in fixed], axis=1)
            runs.append(_Fixed(mat, np.full(m, mat.shape[1], np.int64), True))
        elif fixed:
            mats = [f.mat for f in fixed]
            lens = np.sum([f.lens for f in fixed], axis=0)
            mask = np.concatenate(
                [np.ones((m, f.mat.shape[1]), bool) if f.dense else
                 np.arange(f.mat.shape[1])[None, :] < f.lens[:, None] for f in fixed], axis=1
            )
            data = np.concatenate(mats, axis=1)[mask]
            offsets = np.zeros(m + 1, np.int64)
            np.cumsum(lens, out=offsets[1:])
            runs.append(_Ragged(data, offsets))
        fixed.clear()

    for piece in pieces:
        if isinstance(piece, _Fixed):
            fixed.append(piece)
        else:
            close_run()
            runs.append(piece)
    close_run()
    if len(runs) == 1:
        return runs[0]
    raggeds = [_to_ragged(r) for r in runs]
    lens = [np.diff(r.offsets) for r in raggeds]
    offsets = np.zeros(m + 1, np.int64)
    np.cumsum(np.sum(lens, axis=0), out=offsets[1:])
    out = np.empty(int(offsets[-1]), np.uint8)
    pos = offsets[:-1].copy()
    for r, length in zip(raggeds, lens, strict=True):
        first, last = int(r.offsets[0]), int(r.offsets[-1])
        if last > first:
            if (last - first) > _ROW_COPY * m:  # big rows (cutouts): one copy per row
                for d, s, n in zip(pos.tolist(), r.offsets[:-1].tolist(), length.tolist(),
                                   strict=True):
                    out[d: d + n] = r.data[s: s + n]
            else:  # small rows: one scatter of every byte
                index = np.repeat(pos - r.offsets[:-1], length) + np.arange(first, last)
                out[index] = r.data[first:last]
        pos += length
    return _Ragged(out, offsets)


def _expand(piece: _Fixed | _Ragged, valid: np.ndarray) -> _Fixed | _Ragged:
    """Spread the pieces of the valid rows to all rows (empty for the others)."""
    m = len(valid)
    if isinstance(piece, _Fixed):
        mat = np.zeros((m, piece.mat.shape[1]), np.uint8)
        mat[valid] = piece.mat
        lens = np.zeros(m, np.int64)
        lens[valid] = piece.lens
        return _Fixed(mat, lens)
    lens = np.zeros(m, np.int64)
    lens[valid] = np.diff(piece.offsets)
    offsets = np.empty(m + 1, np.int64)
    offsets[0] = piece.offsets[0]
    np.cumsum(lens, out=offsets[1:])
    offsets[1:] += piece.offsets[0]
    return _Ragged(piece.data, offsets)


def _binary(arr: Any) -> list[_Fixed | _Ragged]:
    import pyarrow as pa

    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_binary())
    elif not pa.types.is_large_binary(arr.type):
        arr = arr.cast(pa.large_binary())
    buffers = arr.buffers()
    m = len(arr)
    offsets = np.frombuffer(buffers[1], np.int64)[arr.offset: arr.offset + m + 1]
    data = np.frombuffer(buffers[2], np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    lens = np.diff(offsets)
    prefix = _varint(_zigzag(lens))
    longest = int(lens.max()) if m else 0
    if longest > _SMALL_STRING:
        return [prefix, _Ragged(data, offsets)]
    columns = np.arange(longest)
    mask = columns[None, :] < lens[:, None]
    mat = np.zeros((m, longest), np.uint8)
    mat[mask] = data[(offsets[:-1, None] + columns[None, :])[mask]]
    return [prefix, _Fixed(mat, lens, bool(m == 0 or lens.min() == longest))]


def _numbers(kind: str, avro_type: Any, arr: Any, where: str) -> list[_Fixed | _Ragged]:
    import pyarrow as pa

    if pa.types.is_timestamp(arr.type):
        unit = {"timestamp-micros": "us", "timestamp-millis": "ms"}.get(
            avro_type.get("logicalType") if isinstance(avro_type, dict) else None)
        if unit is None:
            raise UnsupportedSchemaError(f"{where}: timestamp column for a plain {kind}")
        arr = arr.cast(pa.timestamp(unit, tz=arr.type.tz)).cast(pa.int64())
    values = arr.to_numpy(zero_copy_only=False)
    m = len(values)
    if kind in ("long", "int"):
        if values.dtype.kind not in "iub":
            raise FormatError(f"{where}: {kind} field holds {values.dtype} values")
        return [_varint(_zigzag(values))]
    if kind in ("double", "float"):
        if values.dtype.kind not in "fiub":
            raise FormatError(f"{where}: {kind} field holds {values.dtype} values")
        dtype, width = ("<f8", 8) if kind == "double" else ("<f4", 4)
        mat = values.astype(dtype).view(np.uint8).reshape(m, width)
        return [_Fixed(mat, np.full(m, width, np.int64), True)]
    if values.dtype != np.bool_:
        raise FormatError(f"{where}: boolean field holds {values.dtype} values")
    return [_Fixed(values.astype(np.uint8).reshape(m, 1), np.ones(m, np.int64), True)]


def _encode(avro_type: Any, arr: Any, names: dict[str, Any], where: str,
            nan_null: bool = False) -> list[_Fixed | _Ragged]:
    """Pieces encoding ``arr`` (an Arrow array without chunks) as ``avro_type``.

    With ``nan_null``, NaN of a nullable float/double is written as null.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    avro_type = _resolve(avro_type, names)
    m = len(arr)
    if isinstance(avro_type, list):
        null_index, inner = _null_union(avro_type)
        if pa.types.is_null(arr.type):
            return [_constant(m, bytes([2 * null_index]))]
        valid = np.ones(m, bool) if arr.null_count == 0 else pc.is_valid(arr).to_numpy(
            zero_copy_only=False)
        if nan_null and _resolve(inner, names) in ("float", "double") and (
                pa.types.is_floating(arr.type)):
            valid = ~np.isnan(arr.to_numpy(zero_copy_only=False))  # null → NaN as well
        branch = np.where(valid, 2 * (1 - null_index), 2 * null_index).astype(np.uint8)
        head = _Fixed(branch.reshape(m, 1), np.ones(m, np.int64), True)
        if valid.all():
            return [head, *_encode(inner, arr, names, where, nan_null)]
        if not valid.any():
            return [head]
        inner_pieces = _encode(inner, arr.filter(pa.array(valid)), names, where, nan_null)
        return [head, *(_expand(p, valid) for p in inner_pieces)]
    if arr.null_count:
        raise FormatError(f"{where} is required by the schema but {arr.null_count} value(s) are null")
    kind = avro_type if isinstance(avro_type, str) else avro_type["type"]
    if kind == "record":
        if not pa.types.is_struct(arr.type):
            raise FormatError(f"{where}: record field holds Arrow {arr.type}")
        from pachon.alerts.avro_flat import encode_flat, flat_plan

        plan = flat_plan(avro_type, names)
        if plan is not None:  # primitive fields only: encoded grouped by type
            flat = encode_flat(plan, arr, where, nan_null=nan_null)
            if flat is not None:
                return [flat]
        present = {arr.type.field(i).name for i in range(arr.type.num_fields)}
        pieces: list[_Fixed | _Ragged] = []
        for field in avro_type["fields"]:
            name = field["name"]
            if name in present:
                child = arr.field(name)
            elif field.get("default", 0) is None:
                child = pa.nulls(m)
            else:
                raise FormatError(f"{where}.{name} is required by the schema but absent")
            pieces += _encode(field["type"], child, names, f"{where}.{name}", nan_null)
        return [_concat(pieces, m)]
    if kind == "array":
        if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
            raise FormatError(f"{where}: array field holds Arrow {arr.type}")
        list_offsets = arr.offsets.to_numpy().astype(np.int64)
        items = arr.flatten()
        counts = np.diff(list_offsets)
        body = _to_ragged(_concat(_encode(avro_type["items"], items, names, f"{where}[]",
                                          nan_null),
                                  len(items)))
        body = _Ragged(body.data, body.offsets[list_offsets - list_offsets[0]])
        prefix = _varint(_zigzag(counts))
        if not counts.all():
            prefix.lens = np.where(counts > 0, prefix.lens, 0)
            prefix.dense = False
        return [prefix, body, _constant(m, b"\x00")]
    if kind in ("string", "bytes"):
        return _binary(arr)
    if kind in ("long", "int", "float", "double", "boolean"):
        return _numbers(kind, avro_type, arr, where)
    raise UnsupportedSchemaError(f"{where}: Avro type {kind!r} is not supported")


def encode_records(schema: Any, table: Any, *, prefix: bytes = b"",
                   nan_null: bool = False) -> list[bytes]:
    """Encode every row of an Arrow table as one schemaless Avro record.

    Parameters
    ----------
    schema
        fastavro parsed schema of the record.
    table
        ``pyarrow.Table`` or ``StructArray`` with the record's fields as columns (missing
        columns are written as null where the schema allows it).
    prefix
        Bytes put before each record (e.g. a Confluent wire-format header).
    nan_null
        Write NaN of nullable float/double fields as null (as the alert builders do).

    Returns
    -------
    list of bytes
        One encoded record per row, byte-for-byte what ``fastavro.schemaless_writer`` writes.

    Raises
    ------
    FormatError
        When a column does not fit its field (the field is named).
    UnsupportedSchemaError
        When the schema uses a type this encoder does not handle.
    """
    import pyarrow as pa

    if isinstance(table, pa.Table):
        table = table.combine_chunks().to_struct_array()
    if isinstance(table, pa.ChunkedArray):
        table = table.combine_chunks()
    m = len(table)
    if m == 0:
        return []
    names = _named_types_cached(schema)
    where = schema.get("name", "record")
    if isinstance(schema, dict) and schema.get("type") == "record" and pa.types.is_struct(table.type):
        return _encode_split(schema, table, names, where, prefix, nan_null)
    pieces = _encode(schema, table, names, where, nan_null)
    if prefix:
        pieces.insert(0, _constant(m, prefix))
    return _split_rows(_to_ragged(_concat(pieces, m)))


def _split_rows(whole: _Ragged) -> list[bytes]:
    """One ``bytes`` per row of a ragged piece (one copy of the buffer, then slices)."""
    first, last = int(whole.offsets[0]), int(whole.offsets[-1])
    blob = whole.data[first:last].tobytes()
    bounds = (whole.offsets - first).tolist()
    return [blob[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _is_big(piece: _Fixed | _Ragged, m: int) -> bool:
    return isinstance(piece, _Ragged) and int(piece.offsets[-1] - piece.offsets[0]) > _ROW_COPY * m


def _encode_split(schema: dict[str, Any], table: Any, names: dict[str, Any], where: str,
                  prefix: bytes, nan_null: bool = False) -> list[bytes]:
    """Encode a top-level record, leaving big byte fields (cutouts) out of the batch buffer.

    The small fields between big ones are encoded vectorized into one buffer; each record is
    then joined once from its small parts and views of the big values (one copy of a cutout).
    """
    import pyarrow as pa

    m = len(table)
    present = {table.type.field(i).name for i in range(table.type.num_fields)}
    if table.null_count:
        raise FormatError(f"{where} is required by the schema but {table.null_count} row(s) are null")
    parts: list[list[_Fixed | _Ragged] | _Ragged] = [[_constant(m, prefix)] if prefix else []]
    for field in schema["fields"]:
        name = field["name"]
        if name in present:
            child = table.field(name)
        elif field.get("default", 0) is None:
            child = pa.nulls(m)
        else:
            raise FormatError(f"{where}.{name} is required by the schema but absent")
        for piece in _encode(field["type"], child, names, f"{where}.{name}", nan_null):
            if _is_big(piece, m):
                parts += [piece, []]
            else:
                parts[-1].append(piece)
    columns: list[list[Any]] = []
    for part in parts:
        if isinstance(part, _Ragged):
            view = memoryview(part.data)
            bounds = part.offsets.tolist()
            columns.append([view[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
        elif part:
            columns.append(_split_rows(_to_ragged(_concat(part, m))))
    if len(columns) == 1:
        return columns[0]
    join = b"".join
    return [join(row) for row in zip(*columns, strict=True)]

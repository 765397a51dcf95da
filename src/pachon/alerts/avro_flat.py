"""Vectorized Avro encoding of flat records, field types grouped: a few numpy calls per type.

A *flat* record has only primitive fields (``long``, ``int``, ``float``, ``double``,
``boolean``, ``string``, ``bytes``), each optionally a ``[null, T]`` union: the DiaSource,
DiaForcedSource, DiaObject and SSSource records of the Rubin schemas (~100 fields each).
:mod:`pachon.alerts.avro_encode` encodes field by field (a dozen numpy calls each); here the
columns of one Arrow type are joined (``pyarrow.concat_arrays``) and encoded together as an
``(fields, rows)`` matrix, then the record's bytes are laid out as one padded
``(rows, width)`` matrix (union branch bytes, values) and compacted once.  The bytes are
those of the per-field encoder (and of fastavro).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pachon.alerts.avro_encode import _SMALL_STRING, _binary, _Fixed, _Ragged, _resolve
from pachon.core.errors import FormatError

__all__ = ["flat_plan", "encode_flat"]

log = logging.getLogger(__name__)

_KINDS = {"long": "varint", "int": "varint", "float": "<f4", "double": "<f8",
          "boolean": "bool", "string": "bin", "bytes": "bin"}

# name, kind, index of "null" in the union (None: not nullable), absent column means null
Plan = list[tuple[str, str, int | None, bool]]
_PLANS: dict[int, tuple[Any, Plan | None]] = {}


def flat_plan(record: dict[str, Any], names: dict[str, Any]) -> Plan | None:
    """The fields of a flat record (see the module docstring), or None if it is not flat."""
    hit = _PLANS.get(id(record))
    if hit is not None and hit[0] is record:
        return hit[1]
    plan: Plan | None = []
    for field in record["fields"]:
        avro_type = _resolve(field["type"], names)
        null_index = None
        if isinstance(avro_type, list):
            if len(avro_type) != 2 or "null" not in avro_type:
                plan = None
                break
            null_index = avro_type.index("null")
            avro_type = _resolve(avro_type[1 - null_index], names)
        if not isinstance(avro_type, str) or avro_type not in _KINDS:
            plan = None  # records, arrays, logical types: the per-field encoder
            break
        plan.append((field["name"], _KINDS[avro_type], null_index,
                     field.get("default", 0) is None))
    _PLANS[id(record)] = (record, plan)
    return plan


_SHIFTS = (np.arange(10, dtype=np.uint64) * np.uint64(7))


def _varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zigzag varints of an ``(f, m)`` int64 matrix: bytes ``(f, m, w)`` and lengths ``(f, m)``."""
    v = values.astype(np.int64, copy=False)
    v = ((v << 1) ^ (v >> 63)).view(np.uint64)
    top = int(v.max()) if v.size else 0
    width = max(1, (top.bit_length() + 6) // 7)
    groups = v[..., None] >> _SHIFTS[:width]  # 7-bit groups, low first
    lens = 1 + np.count_nonzero(groups[..., 1:], axis=-1) if width > 1 else np.ones(
        v.shape, np.int64)
    out = (groups & np.uint64(0x7F)).astype(np.uint8)
    if width > 1:  # continuation bit on every byte but the last of each value
        out[..., :-1] |= (np.arange(1, width) < lens[..., None]).astype(np.uint8) << 7
    return out, lens


def _column(arr: Any, kind: str, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Values (anything where null) and validity (None: all valid) of a primitive column,
    read from its Arrow buffers (no compute kernel)."""
    import pyarrow as pa

    n, off = len(arr), arr.offset
    t = arr.type
    numeric = pa.types.is_integer(t) or pa.types.is_floating(t) and not pa.types.is_float16(t)
    if not (numeric or pa.types.is_boolean(t)):
        raise FormatError(f"{where}: {kind.strip('<')} field holds Arrow {t} values")
    if kind == "varint" and pa.types.is_floating(t) or kind == "bool" and not (
            pa.types.is_boolean(t)):
        raise FormatError(f"{where}: {kind.strip('<')} field holds Arrow {t} values")
    buffers = arr.buffers()
    valid = None
    if arr.null_count:
        bits = np.frombuffer(buffers[0], np.uint8)
        valid = np.unpackbits(bits, count=off + n, bitorder="little")[off:].view(bool)
    if pa.types.is_boolean(t):
        bits = np.frombuffer(buffers[1], np.uint8)
        values = np.unpackbits(bits, count=off + n, bitorder="little")[off:]
    else:
        values = np.frombuffer(buffers[1], t.to_pandas_dtype())[off: off + n]
    return values, valid


def _group_values(children: list[Any], kind: str, where: str,
                  names: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Values ``(f, m)`` and validity ``(f, m)`` (None: all valid) of columns.

    The columns of one Arrow type are joined (one ``concat_arrays``) and read at once, so
    the cost per column is a few list operations, not a few Arrow calls.
    """
    import pyarrow as pa

    dtype = {"varint": np.int64, "<f4": np.float64, "<f8": np.float64, "bool": np.uint8}[kind]
    m = len(children[0])
    values = np.empty((len(children), m), dtype)
    valid = None
    by_type: dict[Any, list[int]] = {}
    for row, child in enumerate(children):
        by_type.setdefault(child.type, []).append(row)
    for rows in by_type.values():
        joined = pa.concat_arrays([children[r] for r in rows]) if len(rows) > 1 else (
            children[rows[0]])
        v, ok = _column(joined, kind, f"{where}.{names[rows[0]]}")
        values[rows] = v.reshape(len(rows), m)
        if ok is not None:
            if valid is None:
                valid = np.ones(values.shape, bool)
            valid[rows] = ok.reshape(len(rows), m)
    if valid is not None and kind == "varint":
        values[~valid] = 0  # whatever the buffers held: keep the varints short
    return values, valid


class _Layout:
    """Slots of a record's fields (union branch byte + value bytes), filled group by group."""

    def __init__(self, m: int, n: int) -> None:
        self.m = m
        self.slots: list[list[np.ndarray]] = [[] for _ in range(n)]  # (m, w) pieces per field
        self.widths = np.zeros(n, np.int64)
        self.lens = np.zeros((m, n), np.uint8)
        self.full = True

    def add(self, fields: list[int], data: np.ndarray, lens: np.ndarray | None,
            branch: np.ndarray | None = None) -> None:
        """Slots of ``fields``: ``data`` ``(f, m, w)`` value bytes, ``lens`` ``(f, m)`` slot
        lengths (None: all full), ``branch`` ``(f, m)`` union branch bytes put in front."""
        width = data.shape[2] + (branch is not None)
        for i, k in enumerate(fields):
            self.slots[k] = [data[i]] if branch is None else [branch[i][:, None], data[i]]
        self.widths[fields] = width
        if lens is None:
            self.lens[:, fields] = width
        else:
            self.lens[:, fields] = lens.T
            self.full = False

    def assemble(self) -> _Fixed | _Ragged:
        m = self.m
        whole = np.concatenate([piece for slot in self.slots for piece in slot], axis=1)
        width = whole.shape[1]
        if self.full:
            return _Fixed(whole, np.full(m, width, np.int64), True)
        starts = np.zeros(len(self.widths) + 1, np.int64)
        np.cumsum(self.widths, out=starts[1:])
        pos = (np.arange(width) - np.repeat(starts[:-1], self.widths)).astype(np.uint8)
        mask = pos[None, :] < np.repeat(self.lens, self.widths, axis=1)
        offsets = np.zeros(m + 1, np.int64)
        np.cumsum(self.lens.sum(axis=1, dtype=np.int64), out=offsets[1:])
        return _Ragged(whole[mask], offsets)


def encode_flat(plan: Plan, arr: Any, where: str, *,
                nan_null: bool = False) -> _Fixed | _Ragged | None:
    """Encode a StructArray (no top-level nulls) as the flat record of ``plan``.

    With ``nan_null``, NaN of nullable floats is written as null.  Returns None when a
    string of the batch is too long for the padded layout (the caller then uses the
    per-field encoder).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    m = len(arr)
    if m == 0:
        return _Fixed(np.zeros((0, 0), np.uint8), np.zeros(0, np.int64), True)
    present = {arr.type.field(i).name for i in range(arr.type.num_fields)}
    layout = _Layout(m, len(plan))
    groups: dict[tuple[str, Any, bool], list[int]] = {}
    children: list[Any] = [None] * len(plan)
    nulls: list[int] = []
    for k, (name, kind, null_index, default_null) in enumerate(plan):
        if name not in present:
            if not default_null or null_index is None:
                raise FormatError(f"{where}.{name} is required by the schema but absent")
            nulls.append(k)
            continue
        child = arr.field(name)
        if child.null_count == m:
            if null_index is None:
                raise FormatError(f"{where}.{name} is required by the schema but {m} value(s) "
                                  "are null")
            nulls.append(k)
            continue
        key = (kind, k if kind == "bin" else None, null_index is not None)
        children[k] = child
        groups.setdefault(key, []).append(k)
    if nulls:
        branch = np.array([2 * plan[k][2] for k in nulls], np.uint8)
        layout.add(nulls, np.broadcast_to(branch[:, None, None], (len(nulls), m, 1)), None)
    for (kind, _, nullable), members in groups.items():
        null_index = np.array([plan[k][2] or 0 for k in members])
        if kind == "bin":
            k = members[0]
            child = children[k]
            valid = None
            if child.null_count:
                valid = np.asarray(child.is_valid().to_numpy(zero_copy_only=False), bool)[None]
                child = pc.fill_null(child.cast(pa.large_binary()), b"")
            prefix, body = _binary(child)
            if isinstance(body, _Ragged) or body.mat.shape[1] > _SMALL_STRING:
                return None
            data = np.concatenate([prefix.mat, body.mat], axis=1)
            lens = None
            if not (prefix.dense and body.dense):  # the prefix's padding: re-pack the row
                lens = (prefix.lens + body.lens)[None]
                data = np.zeros_like(data)
                _pack_pair(data, prefix, body)
            data = data[None]
        else:
            values, valid = _group_values([children[k] for k in members], kind, where,
                                          [plan[k][0] for k in members])
            lens = None
            if kind == "varint":
                data, vlens = _varints(values)
                if int(vlens.min()) != data.shape[2]:
                    lens = vlens
            else:
                w = {"<f4": 4, "<f8": 8, "bool": 1}[kind]
                if nan_null and kind != "bool" and nullable:
                    nan = np.isnan(values)
                    if nan.any():
                        valid = ~nan if valid is None else valid & ~nan
                data = values.astype(np.uint8 if kind == "bool" else kind).view(np.uint8)
                data = data.reshape(len(members), m, w)
        if valid is not None and valid.all():
            valid = None
        if valid is not None and not nullable:
            row = int(np.flatnonzero(~valid.all(axis=1))[0])
            raise FormatError(f"{where}.{plan[members[row]][0]} is required by the schema but "
                              f"{int((~valid[row]).sum())} value(s) are null")
        branch = None
        if nullable:  # the union branch byte in front of each value
            nonnull = (2 * (1 - null_index)).astype(np.uint8)[:, None]
            if valid is None:
                branch = np.broadcast_to(nonnull, (len(members), m))
            else:
                branch = np.where(valid, nonnull, (2 * null_index).astype(np.uint8)[:, None])
                branch = branch.astype(np.uint8, copy=False)
            if valid is not None or lens is not None:
                vl = data.shape[2] if lens is None else lens
                lens = 1 + (vl if valid is None else np.where(valid, vl, 0))
        layout.add(members, data, lens, branch)
    return layout.assemble()


def _pack_pair(out: np.ndarray, prefix: _Fixed, body: _Fixed) -> None:
    """Write each row's prefix bytes then body bytes, left-aligned, into ``out``."""
    pw, bw = prefix.mat.shape[1], body.mat.shape[1]
    mask_p = np.arange(pw)[None, :] < prefix.lens[:, None]
    out[:, :pw][mask_p] = prefix.mat[mask_p]
    cols = prefix.lens[:, None] + np.arange(bw)[None, :]
    mask_b = np.arange(bw)[None, :] < body.lens[:, None]
    rows = np.broadcast_to(np.arange(len(prefix.lens))[:, None], cols.shape)
    out[rows[mask_b], cols[mask_b]] = body.mat[mask_b]

"""Columnar building of the alert packets of a batch (a detector-visit), no dict per row.

:func:`build_alert_table` takes the DiaSources of a batch, their DiaObjects, the history
(previous DiaSources and DiaForcedSources, as the APDB history queries return them) and
optional SSSources and cutouts, all as tables (pyarrow, pandas or mappings of arrays), and
returns the alerts as one ``pyarrow.Table`` (one row per DiaSource, the schema's top-level
fields as columns).  :func:`build_alerts` also encodes them (the vectorized encoder of
:mod:`pachon.alerts.avro_encode`), optionally in the Confluent wire format.

The packets are those :func:`pachon.alerts.packet.build_alert` builds one by one, field for
field: each record field is taken from the column of the same name, cast to its Avro type,
NaN of nullable numbers written as null, absent nullable columns as null; the history of an
alert is the rows of its DiaObject within ``history_days`` before (and at) its time, the
triggering source left out, oldest first (ties keep the input order).  Each record is
converted once per batch, column by column: history rows go through a vectorized
(object, time) sort and one gather.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pachon.alerts.packet import CUTOUT_FIELDS, HISTORY_DAYS, _record_schema
from pachon.alerts.schema import latest_version, load_schema
from pachon.core.errors import FormatError

__all__ = ["build_alert_table", "build_alerts", "as_arrow_table"]

log = logging.getLogger(__name__)

_FLOATS = ("float", "double")


def as_arrow_table(data: Any, what: str) -> Any:
    """Return ``data`` (pyarrow Table/RecordBatch, pandas DataFrame, mapping of arrays,
    list of row mappings) as a ``pyarrow.Table``; None stays None.

    Parameters
    ----------
    data
        The table.
    what
        What it holds, for error messages (``"dia_sources"``...).

    Returns
    -------
    pyarrow.Table or None
    """
    import pyarrow as pa

    if data is None or isinstance(data, pa.Table):
        return data
    try:
        if isinstance(data, pa.RecordBatch):
            return pa.Table.from_batches([data])
        if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas
            return pa.Table.from_pandas(data, preserve_index=False)
        if isinstance(data, Mapping):
            return pa.table(dict(data))
        return pa.Table.from_pylist(list(data))
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise FormatError(f"{what}: cannot be read as a table ({exc}); pass a pyarrow Table, "
                          "a pandas DataFrame or a mapping of equal-length arrays") from exc


@functools.cache
def _record_plan(version: str, record: str) -> tuple[tuple[str, Any, str, bool], ...]:
    """(name, Arrow type, Avro kind, nullable) of every field of a record, in schema order."""
    from pachon.alerts.avro_encode import arrow_schema

    definition = _record_schema(version, record)
    struct = arrow_schema(definition)
    plan = []
    for field, arrow_field in zip(definition["fields"], struct, strict=True):
        avro_type = field["type"]
        nullable = isinstance(avro_type, list)
        if nullable:
            avro_type = next(t for t in avro_type if t != "null")
        kind = avro_type["type"] if isinstance(avro_type, dict) else avro_type
        plan.append((field["name"], arrow_field.type, kind, nullable))
    return tuple(plan)


def _where(record: str, name: str, ids: np.ndarray | None, bad: np.ndarray) -> str:
    first = int(np.flatnonzero(bad)[0])
    row = f"diaSourceId={int(ids[first])}" if ids is not None and first < len(ids) else (
        f"row {first}")
    return f"{record}.{name} ({row}, {int(bad.sum())} row(s) in all)"


_COMPATIBLE = {  # Arrow types written as the Avro type without a cast (same bytes)
    "long": "is_integer", "int": "is_integer", "float": "is_floating", "double": "is_floating",
    "boolean": "is_boolean", "string": "is_string", "bytes": "is_binary",
}


def _compatible(arrow_type: Any, kind: str) -> bool:
    import pyarrow as pa

    if kind == "string" and pa.types.is_large_string(arrow_type):
        return True
    if kind == "bytes" and pa.types.is_large_binary(arrow_type):
        return True
    if kind in ("float", "double") and pa.types.is_float16(arrow_type):
        return False
    return getattr(pa.types, _COMPATIBLE[kind])(arrow_type)


def _convert_record(table: Any, version: str, record: str, ids: np.ndarray | None, *,
                    nan_to_null: bool = True) -> Any:
    """The rows of ``table`` as a StructArray of the schema record (see the module docstring).

    Columns keep their Arrow type where the Avro type takes it as is (float32 for a
    ``float``, int16 for an ``int``...).  With ``nan_to_null`` False, NaN of nullable
    floats stays in the array (for an encoder that writes it as null).  ``ids`` (the
    alerts' diaSourceIds, row-aligned) only serve the error messages.
    """
    import pyarrow as pa

    m = table.num_rows
    present = set(table.column_names)
    arrays, names = [], []
    for name, arrow_type, kind, nullable in _record_plan(version, record):
        names.append(name)
        if name not in present:
            if not nullable:
                raise FormatError(
                    f"{record}.{name} is required by the alert schema but the table has no "
                    f"column {name!r}; fill the column before building the packets")
            arrays.append(pa.nulls(m, arrow_type))
            continue
        arr = table.column(name)
        arr = arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
        if not _compatible(arr.type, kind):
            try:
                arr = arr.cast(arrow_type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise FormatError(f"{record}.{name}: column of {arr.type} cannot be written as "
                                  f"Avro {kind} ({exc})") from exc
        if kind in _FLOATS and (nan_to_null or not nullable):
            values = arr.to_numpy(zero_copy_only=False)  # null → NaN
            bad = np.isnan(values)
            if bad.any():
                if not nullable:
                    raise FormatError(
                        f"{_where(record, name, ids, bad)} is required by the alert schema but "
                        "the row has no value; fill the column before building the packets")
                arr = pa.array(values, arr.type, mask=bad)
        elif arr.null_count and not nullable:
            bad = ~np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), bool)
            raise FormatError(
                f"{_where(record, name, ids, bad)} is required by the alert schema but the row "
                "has no value; fill the column before building the packets")
        arrays.append(arr)
    return pa.StructArray.from_arrays(arrays, names=names)


def _int_column(table: Any, name: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Values (int64, 0 where null) and validity of an integer id column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if name not in table.column_names:
        raise FormatError(f"{what} has no column {name!r}")
    col = table.column(name)
    valid = np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), bool) if (
        col.null_count) else np.ones(table.num_rows, bool)
    try:
        values = pc.fill_null(col, 0).cast(pa.int64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise FormatError(f"{what}.{name} is not an integer id column ({exc})") from exc
    return np.asarray(values, np.int64), valid


def _lookup_last(keys: np.ndarray, keys_valid: np.ndarray, wanted: np.ndarray,
                 wanted_valid: np.ndarray) -> np.ndarray:
    """Index of the last row of ``keys`` equal to each ``wanted`` (-1 where none)."""
    rows = np.flatnonzero(keys_valid)
    out = np.full(len(wanted), -1, np.int64)
    if rows.size == 0 or len(wanted) == 0:
        return out
    order = rows[np.argsort(keys[rows], kind="stable")]
    sorted_keys = keys[order]
    pos = np.searchsorted(sorted_keys, wanted, side="right") - 1
    hit = wanted_valid & (pos >= 0)
    hit[hit] &= sorted_keys[pos[hit]] == wanted[hit]
    out[hit] = order[pos[hit]]
    return out


def _taken_record(table: Any, index: np.ndarray, version: str, record: str,
                  ids: np.ndarray, nan_to_null: bool) -> Any:
    """Rows ``index`` of ``table`` as schema records; null where ``index`` is -1."""
    import pyarrow as pa

    m = len(index)
    found = index >= 0
    struct = _convert_record(table.take(pa.array(index[found])), version, record, ids[found],
                             nan_to_null=nan_to_null)
    if found.all():
        return struct
    where = np.full(m, -1, np.int64)
    where[found] = np.arange(int(found.sum()))
    return struct.take(pa.array(where, mask=~found))


def _history(table: Any, alert_obj: np.ndarray, alert_obj_valid: np.ndarray,
             alert_id: np.ndarray, t_now: np.ndarray, t_min: np.ndarray, id_key: str,
             version: str, record: str, nan_to_null: bool) -> Any:
    """The history lists of the alerts (one large_list of records per alert)."""
    import pyarrow as pa

    m = len(alert_obj)
    empty_offsets = pa.array(np.zeros(m + 1, np.int64))
    if table is None or table.num_rows == 0:
        struct = _convert_record(_empty_table(version, record), version, record, None)
        return pa.LargeListArray.from_arrays(empty_offsets, struct)
    what = "prv_sources" if record == "diaSource" else "prv_forced"
    h_obj, h_obj_valid = _int_column(table, "diaObjectId", what)
    if "midpointMjdTai" not in table.column_names:
        raise FormatError(f"{what} has no column 'midpointMjdTai'")
    h_t = np.asarray(table.column("midpointMjdTai").to_numpy(), np.float64)  # null → NaN
    if id_key in table.column_names:
        h_id, h_id_valid = _int_column(table, id_key, what)
    else:
        h_id, h_id_valid = np.zeros(table.num_rows, np.int64), np.zeros(table.num_rows, bool)
    rows = np.flatnonzero(h_obj_valid)
    order = rows[np.lexsort((h_t[rows], h_obj[rows]))]  # by object, then time; stable
    s_obj = h_obj[order]
    lo = np.searchsorted(s_obj, alert_obj, side="left")
    hi = np.searchsorted(s_obj, alert_obj, side="right")
    counts = np.where(alert_obj_valid, hi - lo, 0)
    total = int(counts.sum())
    alert_of = np.repeat(np.arange(m), counts)
    starts = np.zeros(m, np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    cand = order[np.repeat(lo - starts, counts) + np.arange(total)]
    t = h_t[cand]
    keep = (t >= t_min[alert_of]) & (t <= t_now[alert_of])
    keep &= ~(h_id_valid[cand] & (h_id[cand] == alert_id[alert_of]))
    chosen = cand[keep]
    offsets = np.zeros(m + 1, np.int64)
    np.cumsum(np.bincount(alert_of[keep], minlength=m), out=offsets[1:])
    struct = _convert_record(table.take(pa.array(chosen)), version, record,
                             alert_id[alert_of[keep]], nan_to_null=nan_to_null)
    return pa.LargeListArray.from_arrays(pa.array(offsets), struct)


@functools.cache
def _top_level(version: str) -> Any:
    from pachon.alerts.avro_encode import arrow_schema

    return arrow_schema(load_schema(version))


@functools.cache
def _empty_table(version: str, record: str) -> Any:
    import pyarrow as pa

    plan = _record_plan(version, record)
    return pa.table({name: pa.array([], arrow_type) for name, arrow_type, _, _ in plan})


def _cutout_column(values: Any, m: int, kind: str) -> Any:
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        values = pa.array([None if v is None else bytes(v) for v in values], pa.large_binary())
    if len(values) != m:
        raise FormatError(f"cutouts[{kind!r}] holds {len(values)} values for {m} DiaSources; "
                          "give one (or None) per DiaSource")
    return values.cast(pa.large_binary()) if values.type != pa.large_binary() else values


def build_alert_table(
    dia_sources: Any,
    dia_objects: Any = None,
    prv_sources: Any = None,
    prv_forced: Any = None,
    ss_sources: Any = None,
    cutouts: Mapping[str, Sequence[bytes | None] | Any] | None = None,
    *,
    version: str | None = None,
    history_days: float = HISTORY_DAYS,
) -> Any:
    """Build the alerts of a batch of DiaSources as one Arrow table (no dict per row).

    Parameters
    ----------
    dia_sources
        The triggering DiaSources (APDB column names), one alert per row.
    dia_objects
        Their DiaObjects, matched on ``diaObjectId`` (the last row of an id wins); alerts
        without one get ``diaObject`` null.
    prv_sources, prv_forced
        History rows (DiaSources, DiaForcedSources) of the objects, matched on
        ``diaObjectId``; rows outside ``[t - history_days, t]`` of an alert, and the
        triggering source itself, are left out (see the module docstring).
    ss_sources
        SSSources matched on ``diaSourceId``; alerts without one get ``ssSource`` null.
    cutouts
        ``{"science"|"template"|"difference": one FITS bytes (or None) per DiaSource}``.
    version
        Alert schema version; the latest when None.
    history_days
        Span of history carried (days).

    Returns
    -------
    pyarrow.Table
        One row per DiaSource, the schema's top-level fields as columns (what
        :func:`pachon.alerts.serialize.serialize_alerts` encodes; ``to_pylist()`` gives the
        alert dicts of :func:`pachon.alerts.packet.build_alert`).

    Raises
    ------
    FormatError
        When a column cannot hold its field, or a required field is missing or null (the
        field and the DiaSource are named).
    """
    return _alert_table(dia_sources, dia_objects, prv_sources, prv_forced, ss_sources, cutouts,
                        version or latest_version(), history_days, nan_to_null=True)


def _alert_table(dia_sources: Any, dia_objects: Any, prv_sources: Any, prv_forced: Any,
                 ss_sources: Any, cutouts: Mapping[str, Any] | None, version: str,
                 history_days: float, *, nan_to_null: bool) -> Any:
    """:func:`build_alert_table`; NaN of nullable floats left as is unless ``nan_to_null``."""
    import pyarrow as pa

    sources = as_arrow_table(dia_sources, "dia_sources")
    m = sources.num_rows
    src_ids = _int_column(sources, "diaSourceId", "dia_sources")[0] if (
        "diaSourceId" in sources.column_names) else None
    dia_source = _convert_record(sources, version, "diaSource", src_ids, nan_to_null=nan_to_null)
    alert_id = np.asarray(dia_source.field("diaSourceId").to_numpy(), np.int64)
    t_now = np.asarray(dia_source.field("midpointMjdTai").to_numpy(), np.float64)
    t_min = t_now - history_days
    obj = dia_source.field("diaObjectId")
    obj_valid = np.asarray(obj.is_valid().to_numpy(zero_copy_only=False), bool)
    obj_ids = np.asarray(obj.fill_null(0).to_numpy(), np.int64)

    columns: dict[str, Any] = {
        "diaSourceId": dia_source.field("diaSourceId"),
        "diaSource": dia_source,
        "prvDiaSources": _history(as_arrow_table(prv_sources, "prv_sources"), obj_ids, obj_valid,
                                  alert_id, t_now, t_min, "diaSourceId", version, "diaSource",
                                  nan_to_null),
        "prvDiaForcedSources": _history(as_arrow_table(prv_forced, "prv_forced"), obj_ids,
                                        obj_valid, alert_id, t_now, t_min, "diaForcedSourceId",
                                        version, "diaForcedSource", nan_to_null),
    }
    objects = as_arrow_table(dia_objects, "dia_objects")
    if objects is not None and objects.num_rows:
        keys, valid = _int_column(objects, "diaObjectId", "dia_objects")
        index = _lookup_last(keys, valid, obj_ids, obj_valid)
        columns["diaObject"] = _taken_record(objects, index, version, "diaObject", alert_id,
                                             nan_to_null)
    ss = as_arrow_table(ss_sources, "ss_sources")
    if ss is not None and ss.num_rows:
        keys, valid = _int_column(ss, "diaSourceId", "ss_sources")
        index = _lookup_last(keys, valid, alert_id, np.ones(m, bool))
        columns["ssSource"] = _taken_record(ss, index, version, "ssSource", alert_id, nan_to_null)
    cutouts = cutouts or {}
    unknown = set(cutouts) - set(CUTOUT_FIELDS)
    if unknown:
        raise FormatError(f"unknown cutout kinds {sorted(unknown)}; use {sorted(CUTOUT_FIELDS)}")
    for kind, field in CUTOUT_FIELDS.items():
        if cutouts.get(kind) is not None:
            columns[field] = _cutout_column(cutouts[kind], m, kind)

    arrays, fields = [], []
    for field in _top_level(version):
        value = columns.get(field.name)
        if value is None:
            value = pa.nulls(m, field.type)
        arrays.append(value)
        fields.append(pa.field(field.name, value.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def build_alerts(
    dia_sources: Any,
    dia_objects: Any = None,
    prv_sources: Any = None,
    prv_forced: Any = None,
    ss_sources: Any = None,
    cutouts: Mapping[str, Sequence[bytes | None] | Any] | None = None,
    *,
    version: str | None = None,
    history_days: float = HISTORY_DAYS,
    wire: bool = False,
) -> list[bytes]:
    """Build and serialize the alert packets of a batch of DiaSources, columnar.

    Parameters
    ----------
    dia_sources, dia_objects, prv_sources, prv_forced, ss_sources, cutouts, version, history_days
        As for :func:`build_alert_table`.
    wire
        Prefix each packet with the Confluent wire-format header (magic byte + schema id).

    Returns
    -------
    list of bytes
        One packet per DiaSource, byte-for-byte what ``serialize_alert(build_alert(...))``
        gives for each.
    """
    from pachon.alerts.avro_encode import encode_records
    from pachon.alerts.serialize import wire_header

    version = version or latest_version()
    table = _alert_table(dia_sources, dia_objects, prv_sources, prv_forced, ss_sources, cutouts,
                         version, history_days, nan_to_null=False)
    return encode_records(load_schema(version), table, prefix=wire_header(version) if wire else b"",
                          nan_null=True)

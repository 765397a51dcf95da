"""VOTable output shared by the services: result tables (BINARY2) and IVOA error documents.

Results come from the back ends as `pyarrow.Table`s; `arrow_to_votable` converts them through
astropy (nulls become VOTable nulls through masks, timestamps ISO-8601 strings with
``xtype="timestamp"``, unsigned integers a wider signed type) and writes the BINARY2
serialization.  Column units, UCDs and descriptions are read from the Arrow field metadata
(keys ``unit``, ``ucd``, ``description``, ``utype``: what `pachon.core.schemas.arrow_schema`
writes) or from an explicit mapping.  DALI's ``QUERY_STATUS`` INFO is written before the table
(``OK``) and, when MAXREC truncated the result, a second one (``OVERFLOW``) after it.

Errors follow DALI: a VOTable whose RESOURCE ``type="results"`` holds
``<INFO name="QUERY_STATUS" value="ERROR">message</INFO>``; we add a stable machine-readable
code in ``<INFO name="ERROR_CODE" value="...">`` (``UsageError``, ``NotFound``, ``Forbidden``,
``Unauthorized``, ``LimitExceeded``, ``ServiceError``).
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["arrow_to_votable", "error_votable", "VOTABLE_MEDIA_TYPE", "ERROR_CODES"]

_log = logging.getLogger(__name__)

VOTABLE_MEDIA_TYPE = "application/x-votable+xml"
ERROR_CODES = {
    400: "UsageError",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    413: "LimitExceeded",
    429: "LimitExceeded",
    500: "ServiceError",
    503: "ServiceError",
}


def error_votable(message: str, code: str = "UsageError") -> bytes:
    """A DALI error document carrying ``message`` and the stable error ``code``."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">\n'
        '<RESOURCE type="results">\n'
        f'<INFO name="QUERY_STATUS" value="ERROR">{escape(message)}</INFO>\n'
        f'<INFO name="ERROR_CODE" value={quoteattr(code)}/>\n'
        "</RESOURCE>\n</VOTABLE>\n"
    ).encode()


def _column_to_numpy(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None, str | None, bool]:
    """A column as (values, null mask or None, xtype, ASCII-only string column)."""
    typ = col.type
    xtype = None
    if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
        col = pc.strftime(col, format="%Y-%m-%dT%H:%M:%S" if pa.types.is_timestamp(typ) else "%Y-%m-%d")
        typ, xtype = pa.string(), "timestamp"
    elif pa.types.is_dictionary(typ):
        col = col.cast(typ.value_type)
        typ = typ.value_type
    elif pa.types.is_decimal(typ):
        col, typ = col.cast(pa.float64()), pa.float64()
    elif pa.types.is_unsigned_integer(typ) and typ.bit_width < 64:
        wider = {8: pa.int16(), 16: pa.int32(), 32: pa.int64()}[typ.bit_width]
        col, typ = col.cast(wider), wider
    elif pa.types.is_unsigned_integer(typ):
        col, typ = col.cast(pa.int64(), safe=False), pa.int64()
    elif pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
        col = pc.binary_to_string(col) if hasattr(pc, "binary_to_string") else col.cast(pa.string())
        typ = pa.string()
    elif pa.types.is_null(typ):
        col, typ = col.cast(pa.string()), pa.string()
    mask = col.is_null().to_numpy(zero_copy_only=False) if col.null_count else None
    ascii_only = False
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        values = np.array(col.fill_null("").to_pylist(), dtype=object if len(col) else "U1")
        ascii_only = len(col) == 0 or bool(pc.all(pc.string_is_ascii(col.fill_null(""))).as_py())
    elif pa.types.is_boolean(typ):
        values = col.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
    elif pa.types.is_integer(typ) or pa.types.is_floating(typ):
        values = col.fill_null(0).to_numpy(zero_copy_only=False)
        if pa.types.is_float16(typ):
            values = values.astype(np.float32)
    else:
        values = np.array([str(v) if v is not None else "" for v in col.to_pylist()], dtype=object)
    return values, mask, xtype, ascii_only


def arrow_to_votable(
    table: pa.Table,
    *,
    overflow: bool = False,
    infos: Mapping[str, str] | None = None,
    column_meta: Mapping[str, Mapping[str, Any]] | None = None,
    table_name: str = "result",
) -> bytes:
    """Serialize ``table`` as a VOTable 1.4 document with BINARY2 data.

    Parameters
    ----------
    table
        The rows.
    overflow
        Add the DALI ``QUERY_STATUS=OVERFLOW`` INFO after the table (MAXREC reached).
    infos
        Further INFO elements of the results RESOURCE (e.g. the query).
    column_meta
        Column name -> ``unit``/``ucd``/``description``/``utype``, overriding field metadata.
    table_name
        The TABLE's name attribute.
    """
    from astropy.io.votable.tree import Info, Resource, VOTableFile
    from astropy.table import Column, MaskedColumn, Table

    at = Table(masked=True)
    xtypes: dict[str, str] = {}
    ascii_columns: set[str] = set()
    for name, col in zip(table.column_names, table.columns, strict=True):
        values, mask, xtype, ascii_only = _column_to_numpy(col)
        if ascii_only:
            ascii_columns.add(name)
        if values.dtype.kind in "OU":  # strings: a null is the empty string in VOTable
            at[name] = Column(values)
        else:
            at[name] = MaskedColumn(values, mask=mask if mask is not None else np.zeros(len(values), bool))
        if xtype:
            xtypes[name] = xtype
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vot = VOTableFile.from_table(at)
        vot.version = "1.4"
        resource: Resource = vot.resources[0]
        resource.type = "results"
        resource.infos.append(Info(name="QUERY_STATUS", value="OK"))
        for key, value in (infos or {}).items():
            resource.infos.append(Info(name=key, value=str(value)))
        vtable = resource.tables[0]
        vtable.name = table_name
        for field_ in vtable.fields:
            meta = _field_meta(table.schema.field(field_.name), (column_meta or {}).get(field_.name))
            for key in ("ucd", "utype"):
                if meta.get(key):
                    setattr(field_, key, meta[key])
            if meta.get("unit"):
                field_.unit = meta["unit"]
            if meta.get("description"):
                field_.description = meta["description"]
            if field_.name in xtypes:
                field_.xtype = xtypes[field_.name]
            elif meta.get("xtype"):
                field_.xtype = meta["xtype"]
            if field_.datatype in ("char", "unicodeChar"):
                field_.arraysize = "*"
            if field_.name in ascii_columns:
                field_.datatype = "char"
            if field_.datatype == "bit":
                field_.datatype = "boolean"
        buf = io.BytesIO()
        vot.to_xml(buf, tabledata_format="binary2")
    data = buf.getvalue()
    if overflow:
        idx = data.rfind(b"</TABLE>")
        marker = b'</TABLE>\n<INFO name="QUERY_STATUS" value="OVERFLOW"/>'
        data = data[:idx] + marker + data[idx + len(b"</TABLE>") :]
    return data


def _field_meta(field: pa.Field, override: Mapping[str, Any] | None) -> dict[str, str]:
    meta: dict[str, str] = {}
    for key, value in (field.metadata or {}).items():
        meta[key.decode()] = value.decode(errors="replace")
    meta.update({k: str(v) for k, v in (override or {}).items() if v})
    return meta

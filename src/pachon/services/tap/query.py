"""Running one TAP query: parameters, uploads, translation, execution with limits, output.

Used by the sync endpoint and by async jobs alike.  A query runs on its own DuckDB cursor; a
timer interrupts it past the time limit.  Results are `pyarrow.Table`s rendered as VOTable
(BINARY2), CSV or Parquet.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from pachon.core.errors import QueryError
from pachon.services.auth.store import User
from pachon.services.tap.adql import translate
from pachon.services.tap.apdb_tables import APDB_COLLECTION
from pachon.services.tap.catalogs import QueryTimeoutError
from pachon.services.votable import VOTABLE_MEDIA_TYPE, arrow_to_votable

__all__ = [
    "QueryParams",
    "QueryResult",
    "parse_params",
    "run_query",
    "render",
    "FORMATS",
    "read_upload",
    "QueryTimeoutError",
]

_log = logging.getLogger(__name__)

#: RESPONSEFORMAT value -> (format, media type)
FORMATS: dict[str, tuple[str, str]] = {
    "votable": ("votable", VOTABLE_MEDIA_TYPE),
    "application/x-votable+xml": ("votable", VOTABLE_MEDIA_TYPE),
    "application/x-votable+xml;serialization=binary2": ("votable", VOTABLE_MEDIA_TYPE),
    "text/xml": ("votable", VOTABLE_MEDIA_TYPE),
    "votable/b2": ("votable", VOTABLE_MEDIA_TYPE),
    "csv": ("csv", "text/csv"),
    "text/csv": ("csv", "text/csv"),
    "parquet": ("parquet", "application/vnd.apache.parquet"),
    "application/vnd.apache.parquet": ("parquet", "application/vnd.apache.parquet"),
    "application/x-parquet": ("parquet", "application/vnd.apache.parquet"),
}
_UPLOAD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
MAX_UPLOAD_BYTES = 20 * 1024 * 1024


@dataclass
class QueryParams:
    """The TAP parameters of one query."""

    query: str
    format: str = "votable"
    maxrec: int | None = None
    uploads: dict[str, pa.Table] = field(default_factory=dict)


def read_upload(data: bytes, name: str) -> pa.Table:
    """An uploaded VOTable as an Arrow table.

    Raises
    ------
    QueryError
        Not a readable VOTable, too big, or no table in it.
    """
    import warnings

    from astropy.io.votable import parse

    if len(data) > MAX_UPLOAD_BYTES:
        raise QueryError(f"upload {name!r} has {len(data)} bytes; the limit is {MAX_UPLOAD_BYTES}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = parse(io.BytesIO(data)).get_first_table().to_table(use_names_over_ids=True)
    except Exception as exc:  # astropy raises many kinds on bad input
        raise QueryError(f"upload {name!r} is not a readable VOTable: {str(exc)[:200]}") from None
    arrays, names = [], []
    for col in table.itercols():
        values = col.data
        mask = getattr(values, "mask", None)
        raw = values.data if mask is not None else values
        if raw.dtype.kind == "O" or raw.dtype.kind in "US":
            raw = raw.astype(str)
        if raw.ndim != 1:
            continue  # array-valued cells are not queryable in ADQL
        arrays.append(pa.array(raw, mask=None if mask is None or not mask.any() else mask))
        names.append(col.name)
    fields = []
    for name, arr in zip(names, arrays, strict=True):
        meta = {
            k: str(v)
            for k in ("xtype", "unit", "ucd")
            if (v := table[name].meta.get(k) or getattr(table[name], k, None))
        }
        fields.append(pa.field(name, arr.type, metadata=meta or None))
    return pa.table(arrays, schema=pa.schema(fields))


def parse_params(
    params: Mapping[str, Any], files: Mapping[str, bytes], max_rows: int, default_maxrec: int
) -> QueryParams:
    """Validate TAP parameters (names case-insensitive) into `QueryParams`.

    Raises
    ------
    QueryError
        A missing QUERY, unknown LANG/REQUEST/RESPONSEFORMAT, bad MAXREC or UPLOAD.
    """
    p = {k.upper(): v for k, v in params.items()}
    request = p.get("REQUEST")
    if request is not None and request.lower() != "doquery":
        raise QueryError(f"REQUEST={request!r} is not supported; use REQUEST=doQuery")
    lang = p.get("LANG", "ADQL")
    if lang.upper() not in ("ADQL", "ADQL-2.0", "ADQL-2.1"):
        raise QueryError(f"LANG={lang!r} is not supported; use LANG=ADQL")
    query = p.get("QUERY")
    if not query or not str(query).strip():
        raise QueryError("missing QUERY parameter (an ADQL SELECT statement)")
    fmt_name = (p.get("RESPONSEFORMAT") or p.get("FORMAT") or "votable").strip()
    fmt = FORMATS.get(fmt_name.lower().replace(" ", ""))
    if fmt is None:
        raise QueryError(f"RESPONSEFORMAT={fmt_name!r} is not supported; use votable, csv or parquet")
    maxrec = default_maxrec
    if p.get("MAXREC") not in (None, ""):
        try:
            maxrec = int(p["MAXREC"])
        except ValueError:
            raise QueryError(f"MAXREC={p['MAXREC']!r} is not an integer") from None
        if maxrec < 0:
            raise QueryError(f"MAXREC={maxrec} is negative")
    maxrec = min(maxrec, max_rows)
    uploads: dict[str, pa.Table] = {}
    for item in filter(None, (p.get("UPLOAD") or "").split(";")):
        name, _, source = item.partition(",")
        name, source = name.strip(), source.strip()
        if not _UPLOAD_NAME.match(name):
            raise QueryError(f"UPLOAD table name {name!r} is not a valid ADQL identifier")
        if source.startswith(("http://", "https://")):
            uploads[name.lower()] = read_upload(_fetch(source, name), name)
            continue
        if not source.startswith("param:"):
            raise QueryError(f"UPLOAD {name}: use name,param:part or name,http(s)://..., not {source!r}")
        part = source[len("param:") :]
        if part not in files:
            raise QueryError(f"UPLOAD {name}: no multipart part named {part!r} in the request")
        uploads[name.lower()] = read_upload(files[part], name)
    return QueryParams(str(query), fmt[0], maxrec, uploads)


def _fetch(url: str, name: str) -> bytes:
    """Download an UPLOAD table given by URL (size- and time-limited)."""
    import httpx

    try:
        with httpx.stream("GET", url, timeout=10.0, follow_redirects=True) as r:
            r.raise_for_status()
            chunks, size = [], 0
            for chunk in r.iter_bytes():
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise QueryError(f"UPLOAD {name}: {url} is larger than {MAX_UPLOAD_BYTES} bytes")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise QueryError(f"UPLOAD {name}: cannot read {url}: {exc}") from None
    return b"".join(chunks)


@dataclass
class QueryResult:
    """Rows of a query, whether MAXREC cut them, and column metadata."""

    table: pa.Table
    overflow: bool
    column_meta: dict[str, dict[str, Any]]
    sql: str


def run_query(context: Any, user: User, params: QueryParams, *, timeout_s: float) -> QueryResult:
    """Translate and execute ``params.query`` as ``user`` within ``timeout_s``.

    Raises
    ------
    QueryError
        Translation or execution errors, and timeouts (`QueryTimeoutError`).
    """
    db = context.catalogs
    refresh_apdb = getattr(db, "refresh_apdb", None)
    if refresh_apdb is not None:
        refresh_apdb()
    visible = None
    if not user.is_admin:  # RUN collections, and the pseudo-collection of the APDB rows
        visible = context.visible_runs(user)
        if context.auth.visible(user, APDB_COLLECTION):
            visible.append(APDB_COLLECTION)
    upload_names = {n: f"tap_upload_{n}" for n in params.uploads}
    tr = translate(
        params.query,
        db.tables,
        visible_runs=visible,
        maxrec=params.maxrec,
        uploads=upload_names,
        dialect=getattr(db, "dialect", "duckdb"),
        upload_columns={n: t.column_names for n, t in params.uploads.items()},
    )
    table = db.execute(tr.sql, {upload_names[n]: t for n, t in params.uploads.items()}, timeout_s)
    overflow = params.maxrec is not None and (table.num_rows > params.maxrec or params.maxrec == 0)
    if params.maxrec is not None and table.num_rows > params.maxrec:
        table = table.slice(0, params.maxrec)
    meta = {
        name: {"unit": c.unit, "ucd": c.ucd, "utype": c.utype, "description": c.description, "xtype": c.xtype}
        for name, c in tr.column_meta().items()
    }
    for up in params.uploads.values():
        for f in up.schema:
            if f.metadata and f.name not in meta:
                meta[f.name] = {k.decode(): v.decode() for k, v in f.metadata.items()}
    return QueryResult(table, overflow, meta, tr.sql)


def render(result: QueryResult, fmt: str, base_url: str | None = None) -> tuple[bytes, str]:
    """Serialize a result as ``fmt`` (votable, csv, parquet); returns (bytes, media type)."""
    table = _absolute_urls(result.table, base_url)
    if fmt == "csv":
        import pyarrow.csv as pcsv

        buf = io.BytesIO()
        pcsv.write_csv(_csv_safe(table), buf)
        return buf.getvalue(), "text/csv"
    if fmt == "parquet":
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(table, buf)
        return buf.getvalue(), "application/vnd.apache.parquet"
    return arrow_to_votable(
        table, overflow=result.overflow, column_meta=result.column_meta
    ), VOTABLE_MEDIA_TYPE


def _csv_safe(table: pa.Table) -> pa.Table:
    cols = [c.cast(pa.string()) if pa.types.is_binary(c.type) else c for c in table.columns]
    return pa.table(cols, names=table.column_names)


def _absolute_urls(table: pa.Table, base_url: str | None) -> pa.Table:
    """Root-relative ``access_url`` values (ObsCore) made absolute with the service base URL."""
    if not base_url or "access_url" not in table.column_names or table.num_rows == 0:
        return table
    import pyarrow.compute as pc

    idx = table.schema.get_field_index("access_url")
    col = table.column(idx)
    relative = pc.starts_with(col, "/")
    fixed = pc.if_else(relative, pc.binary_join_element_wise(pa.scalar(base_url.rstrip("/")), col, ""), col)
    return table.set_column(idx, table.schema.field(idx), fixed)

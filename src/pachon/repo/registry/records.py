"""Dimension records: insert-or-check ("sync"), look up, and data-ID expansion."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from pachon.core.errors import ConflictError, DataIdError
from pachon.repo.dimensions import UNIVERSE, DimensionElement, element
from pachon.repo.refs import DatasetType, coerce_value
from pachon.repo.times import to_ns

__all__ = ["RecordsMixin", "region_to_text", "region_from_text", "skypix_envelope"]

_log = logging.getLogger(__name__)


def region_to_text(region: Any) -> str | None:
    """Serialize a region (``Region``, its dict, or JSON text) to JSON text."""
    if region is None or isinstance(region, str):
        return region
    if isinstance(region, dict):
        return json.dumps(region, sort_keys=True)
    return json.dumps(region.to_dict(), sort_keys=True)


def region_from_text(text: str | None) -> Any:
    """Rebuild a ``pachon.core.sphgeom.Region`` from JSON text (None stays None)."""
    if text is None:
        return None
    from pachon.core.sphgeom import Region

    return Region.from_dict(json.loads(text))


def skypix_envelope(region: Any) -> list[int]:
    """HEALPix pixels (registry level) that may overlap ``region``."""
    if isinstance(region, str):
        return list(_envelope_of_text(region))
    from pachon.core.skypix import DEFAULT_SKYPIX_LEVEL, SkyPixelization

    return sorted({int(p) for p in SkyPixelization(DEFAULT_SKYPIX_LEVEL).envelope(region)})


@functools.lru_cache(maxsize=4096)
def _envelope_of_text(text: str) -> tuple[int, ...]:
    # ingest indexes the same pointing circle for an exposure and its visit, and every detector
    # of a visit shares it: compute each envelope once
    return tuple(skypix_envelope(region_from_text(text)))


def _normalize_value(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "time":
        return to_ns(value)
    if kind == "region":
        return region_to_text(value)
    if kind == "json":
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    return str(value)


def normalize_record(elem: DimensionElement, record: dict[str, Any]) -> dict[str, Any]:
    """Map a record dict (keys by column or by dimension name) to table column values."""
    row: dict[str, Any] = {}
    for dim in (*elem.requires, elem.name):
        col = elem.column_for(dim) if elem.is_dimension or dim != elem.name else elem.key
        value = record.get(col, record.get(dim))
        if value is None and dim == elem.name and not elem.is_dimension:
            value = record.get(elem.key)
        if value is None:
            raise DataIdError(f"{elem.name} record {record!r} lacks its key {col!r}")
        row[col] = coerce_value(dim if dim in UNIVERSE and UNIVERSE[dim].is_dimension else col, value)
    for dim in elem.implies:
        value = record.get(dim)
        row[dim] = None if value is None else coerce_value(dim, value)
    for name, kind in elem.fields.items():
        row[name] = _normalize_value(kind, record.get(name))
    return row


class RecordsMixin:
    """Dimension-record methods of the registry (needs ``self.db``)."""

    def insert_dimension_records(
        self, element_name: str, records: Iterable[dict[str, Any]], *, replace: bool = False
    ) -> int:
        """Insert records of one element, or check that identical ones exist.

        Parameters
        ----------
        element_name
            Dimension element (``"exposure"``, ``"detector"``, ...).
        records
            Dicts keyed by column (``id``/``name``) or dimension name, plus fields.
        replace
            Overwrite differing existing records instead of raising.

        Returns
        -------
        count
            Number of records inserted or replaced.

        Raises
        ------
        ConflictError
            An existing record differs (naming the element, key and field).
        """
        elem = element(element_name)
        rows = [normalize_record(elem, r) for r in records]
        if not rows:
            return 0
        table = self.db.tables[f"dim_{elem.name}"]
        pk = [c.name for c in table.primary_key.columns]
        changed = 0
        with self.db.transaction() as conn:
            wanted = {tuple(r[c] for c in pk): r for r in rows}
            existing = self._fetch_existing(conn, table, pk, list(wanted))
            new, replaced = [], []
            for key, row in wanted.items():
                old = existing.get(key)
                if old is None:
                    new.append(row)
                    continue
                diff = [c for c, v in row.items() if v is not None and old[c] != v]
                if diff and not replace:
                    raise ConflictError(
                        f"{elem.name} record {dict(zip(pk, key, strict=True))} already exists with "
                        f"{diff[0]}={old[diff[0]]!r}, not {row[diff[0]]!r}; pass replace=True to overwrite"
                    )
                if diff:
                    replaced.append(row)
            if new:
                try:
                    conn.execute(table.insert(), new)
                except sa.exc.IntegrityError as exc:
                    raise ConflictError(
                        f"{elem.name} records {list(wanted)[:3]}... could not be inserted: another "
                        f"process inserted some of them meanwhile, or a referenced record is "
                        f"missing ({str(exc.orig).splitlines()[0] if exc.orig else exc}); try again"
                    ) from exc
            for row in replaced:
                conn.execute(table.update().where(*[table.c[c] == row[c] for c in pk]).values(row))
            changed = len(new) + len(replaced)
            if elem.has_region:
                self._index_regions(conn, elem, [*new, *replaced])
        return changed

    def _fetch_existing(
        self, conn: sa.Connection, table: sa.Table, pk: list[str], keys: list[tuple]
    ) -> dict[tuple, dict[str, Any]]:
        out: dict[tuple, dict[str, Any]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            cond = (
                sa.tuple_(*[table.c[c] for c in pk]).in_(chunk)
                if len(pk) > 1
                else table.c[pk[0]].in_([k[0] for k in chunk])
            )
            for row in conn.execute(sa.select(table).where(cond)).mappings():
                out[tuple(row[c] for c in pk)] = dict(row)
        return out

    def _index_regions(self, conn: sa.Connection, elem: DimensionElement, rows: list[dict[str, Any]]) -> None:
        ov = self.db.tables["region_overlap"]
        entries = []
        for row in rows:
            keys = [
                row[elem.column_for(d)] if d != elem.name or elem.is_dimension else row[elem.key]
                for d in (*elem.requires, elem.name)
            ]
            k0, k1, k2 = (
                str(keys[0]),
                int(keys[1]) if len(keys) > 1 else -1,
                int(keys[2]) if len(keys) > 2 else -1,
            )
            conn.execute(
                ov.delete().where(
                    ov.c.element == elem.name, ov.c.key0 == k0, ov.c.key1 == k1, ov.c.key2 == k2
                )
            )
            if row.get("region") is None:
                continue
            entries += [
                {"element": elem.name, "key0": k0, "key1": k1, "key2": k2, "skypix": p}
                for p in skypix_envelope(row["region"])
            ]
        if entries:
            conn.execute(ov.insert(), entries)

    def dimension_record(self, element_name: str, **keys: Any) -> dict[str, Any] | None:
        """Return one record as a dict (times as int ns TAI, region as JSON text), or None."""
        elem = element(element_name)
        table = self.db.tables[f"dim_{elem.name}"]
        cond = []
        for dim in (*elem.requires, elem.name):
            col = elem.column_for(dim)
            if dim not in keys and col not in keys:
                raise DataIdError(f"looking up a {elem.name} record needs {dim!r}; got {sorted(keys)}")
            value = keys.get(dim, keys.get(col))
            cond.append(
                table.c[col] == coerce_value(dim if UNIVERSE[dim].is_dimension else col, value)
                if dim in UNIVERSE
                else table.c[col] == value
            )
        with self.db.reading() as conn:
            row = conn.execute(sa.select(table).where(*cond)).mappings().first()
        return None if row is None else dict(row)

    def expand_data_id(
        self, dataset_type: DatasetType, data_id: dict[str, Any], cache: dict | None = None
    ) -> dict[str, Any]:
        """Validate a data ID against a dataset type and add its implied values.

        Raises
        ------
        DataIdError
            A required key is missing, a key is unknown to the dataset type, a dimension
            record does not exist, or a given implied value contradicts the record.
        """
        allowed = set(dataset_type.dimensions) | set(dataset_type.implied)
        unknown = sorted(set(data_id) - allowed)
        if unknown:
            raise DataIdError(
                f"data ID key {unknown[0]!r} is not a dimension of dataset type {dataset_type.name!r} "
                f"(dimensions: {', '.join(dataset_type.dimensions)})"
            )
        missing = [d for d in dataset_type.dimensions if data_id.get(d) is None]
        if missing:
            raise DataIdError(
                f"data ID {data_id!r} for dataset type {dataset_type.name!r} lacks {missing[0]!r} "
                f"(needs {', '.join(dataset_type.dimensions)})"
            )
        out = {d: coerce_value(d, data_id[d]) for d in dataset_type.dimensions}
        cache = {} if cache is None else cache
        for dim in dataset_type.dimensions:
            elem = UNIVERSE[dim]
            key = (dim, *(out[r] for r in elem.requires), out[dim])
            if key not in cache:
                rec = self.dimension_record(dim, **{r: out[r] for r in elem.requires}, **{dim: out[dim]})
                if rec is None and dim == "band":
                    rec = {}
                if rec is None:
                    where = ", ".join(f"{r}={out[r]!r}" for r in (*elem.requires, dim))
                    raise DataIdError(
                        f"no {dim} record with {where}; register it (ingest raws or "
                        f"insert_dimension_records) before using it in a data ID"
                    )
                cache[key] = rec
            rec = cache[key]
            for imp in elem.implies:
                if rec.get(imp) is not None:
                    out.setdefault(imp, rec[imp])
        if "physical_filter" in out and "band" not in out:
            rec = self.dimension_record(
                "physical_filter", instrument=out["instrument"], physical_filter=out["physical_filter"]
            )
            if rec and rec.get("band"):
                out["band"] = rec["band"]
        for imp in dataset_type.implied:
            if imp in data_id and data_id[imp] is not None and imp in out:
                if coerce_value(imp, data_id[imp]) != out[imp]:
                    raise DataIdError(
                        f"data ID gives {imp}={data_id[imp]!r} but the record says "
                        f"{out[imp]!r}; drop the key or fix it"
                    )
            elif imp in data_id and data_id[imp] is not None:
                out[imp] = coerce_value(imp, data_id[imp])
        return out

"""Queries: datasets (with collection search order), data IDs and dimension records."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from pachon.core.errors import QueryError
from pachon.repo.dimensions import (
    DIMENSION_NAMES,
    UNIVERSE,
    element,
    implied_dimensions,
    normalize_dimensions,
)
from pachon.repo.refs import DatasetRef
from pachon.repo.registry.builder import QueryBuilder, parse_region_arg
from pachon.repo.registry.collections import CollectionType
from pachon.repo.registry.records import region_from_text
from pachon.repo.times import to_ns

__all__ = ["QueriesMixin"]

_log = logging.getLogger(__name__)


class QueriesMixin:
    """Query methods of the registry."""

    def _execute(self, q: Any, what: str, where: str | None, mappings: bool = False) -> list[Any]:
        """Run a query, turning database errors into a `QueryError` quoting the expression."""
        try:
            with self.db.reading() as conn:
                result = conn.execute(q)
                return list(result.mappings()) if mappings else result.all()
        except sa.exc.DBAPIError as exc:
            lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            detail = lines[0] if lines else type(exc).__name__
            raise QueryError(
                f"the database rejected the {what} query (where {where!r}): {detail}; check the "
                f"names and the types of the values in the expression"
            ) from exc

    def query_datasets(
        self,
        dataset_type: str,
        collections: str | Sequence[str],
        *,
        where: str | None = None,
        bind: dict[str, Any] | None = None,
        data_id: dict[str, Any] | None = None,
        find_first: bool = True,
        time: Any = None,
        region: Any = None,
    ) -> list[DatasetRef]:
        """Find datasets of one type in collections.

        Parameters
        ----------
        dataset_type
            Registered dataset type name.
        collections
            Collections searched in order (chains are flattened).
        where
            Expression over dimension values and record fields, e.g.
            ``"exposure.exposure_time > 10 AND detector IN (1, 2)"``.
        bind
            Values of bind parameters named in ``where``.
        data_id
            Equality constraints (a partial data ID).
        find_first
            Keep, per data ID, only the dataset of the first collection that has one.
        time
            For CALIBRATION collections: keep certifications valid at this time.
        region
            A sphgeom ``Region`` or ``(ra, dec)``: keep datasets whose visit/exposure/tract/patch
            region overlaps it.

        Returns
        -------
        refs
            Sorted by data ID.
        """
        type_id, dt = self._dataset_type_row(dataset_type)
        searched = self.resolve_collections(collections)
        t = self.db.tables
        ds = t["dataset"]
        runs = [(i, cid) for i, (_, cid, ct) in enumerate(searched) if ct is CollectionType.RUN]
        others = [(i, cid, ct) for i, (_, cid, ct) in enumerate(searched) if ct is not CollectionType.RUN]
        t_ns = to_ns(time) if time is not None else None
        base: sa.FromClause = ds
        conds = [ds.c.dataset_type_id == type_id]
        if others:
            parts = []
            if runs:
                parts.append(
                    sa.select(
                        ds.c.id.label("did"),
                        sa.case({cid: i for i, cid in runs}, value=ds.c.run_id).label("rank"),
                    ).where(ds.c.dataset_type_id == type_id, ds.c.run_id.in_([c for _, c in runs]))
                )
            for i, cid, ct in others:
                member = t["dataset_tag"] if ct is CollectionType.TAGGED else t["calib"]
                q = sa.select(member.c.dataset_id.label("did"), sa.literal(i).label("rank")).where(
                    member.c.collection_id == cid, member.c.dataset_type_id == type_id
                )
                if ct is CollectionType.CALIBRATION and t_ns is not None:
                    q = q.where(member.c.begin_ns <= t_ns, member.c.end_ns > t_ns)
                parts.append(q)
            u = sa.union_all(*parts).subquery("member") if len(parts) > 1 else parts[0].subquery("member")
            base = ds.join(u, u.c.did == ds.c.id)
            rank = u.c.rank
        else:
            conds.append(
                ds.c.run_id.in_([c for _, c in runs]) if len(runs) > 1 else ds.c.run_id == runs[0][1]
            )
            rank = sa.case({cid: i for i, cid in runs}, value=ds.c.run_id) if len(runs) > 1 else sa.literal(0)
        qb = QueryBuilder(t, {c: ds.c[c] for c in (*dt.dimensions, *dt.implied)})
        qb.add_data_id(data_id)
        qb.add_where(where, bind)
        region_col = None
        if region is not None:
            _, pixels, exact = parse_region_arg(region)
            region_col = qb.add_region(qb.region_element((*dt.dimensions, *dt.implied)), pixels)
        cols = [ds, rank.label("rank")]
        if region_col is not None:
            cols.append(region_col.label("query_region"))
        q = sa.select(*cols).select_from(qb.from_clause(base)).where(*conds, *qb.conditions)
        if find_first and len(searched) > 1:
            rn = sa.func.row_number().over(partition_by=ds.c.data_key, order_by=rank).label("rn")
            inner = q.add_columns(rn).subquery("ranked")
            q = sa.select(inner).where(inner.c.rn == 1)
        rows = self._execute(q, f"{dataset_type} datasets", where)
        if region_col is not None:
            rows = [r for r in rows if r.query_region is not None and exact(region_from_text(r.query_region))]
        seen: set = set()
        unique = []
        for r in rows:
            if r.id not in seen:
                seen.add(r.id)
                unique.append(r)
        refs = self._refs_from_rows(unique)
        refs.sort(key=lambda ref: tuple((d, str(ref.data_id.get(d))) for d in DIMENSION_NAMES))
        return refs

    def query_data_ids(
        self,
        dimensions: Sequence[str],
        *,
        where: str | None = None,
        bind: dict[str, Any] | None = None,
        data_id: dict[str, Any] | None = None,
        region: Any = None,
    ) -> list[dict[str, Any]]:
        """Data IDs (required and implied values) of existing dimension records.

        ``dimensions`` such as ``["exposure", "detector"]`` are joined on their shared keys
        (here ``instrument``); ``where``, ``data_id`` and ``region`` as in `query_datasets`.
        """
        dims = normalize_dimensions(tuple(dimensions))
        qb = QueryBuilder(self.db.tables, {})
        for dim in dims:
            qb.element_table(dim)
        qb.add_data_id(data_id)
        qb.add_where(where, bind)
        keys = (*dims, *[d for d in implied_dimensions(dims) if d in qb.columns])
        region_col = None
        if region is not None:
            _, pixels, exact = parse_region_arg(region)
            region_col = qb.add_region(qb.region_element(dims), pixels)
        cols = [qb.columns[k].label(k) for k in keys]
        if region_col is not None:
            cols.append(region_col.label("query_region"))
        q = sa.select(*cols).select_from(qb.from_clause(None)).where(*qb.conditions).distinct()
        q = q.order_by(*[qb.columns[k] for k in dims])
        rows = self._execute(q, "data ID", where)
        if region_col is not None:
            rows = [r for r in rows if r.query_region is not None and exact(region_from_text(r.query_region))]
        return [{k: getattr(r, k) for k in keys} for r in rows]

    def query_dimension_records(
        self,
        element_name: str,
        *,
        where: str | None = None,
        bind: dict[str, Any] | None = None,
        data_id: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Records of one dimension element (all columns), filtered like `query_data_ids`."""
        elem = element(element_name)
        qb = QueryBuilder(self.db.tables, {})
        for dim in (*elem.requires, element_name) if elem.is_dimension else elem.requires:
            if dim in UNIVERSE and dim not in qb.columns:
                qb.element_table(dim)
        alias = qb.element_table(element_name) if elem.is_dimension else None
        if alias is None:
            alias = self.db.tables[f"dim_{element_name}"].alias("target")
            qb.joins.append((alias, [alias.c[d] == qb.columns[d] for d in elem.requires]))
        qb.add_data_id(data_id)
        qb.add_where(where, bind)
        q = sa.select(alias).select_from(qb.from_clause(None)).where(*qb.conditions)
        q = q.order_by(*[alias.c[c.name] for c in self.db.tables[f"dim_{element_name}"].primary_key.columns])
        return [dict(r) for r in self._execute(q, f"{element_name} record", where, mappings=True)]

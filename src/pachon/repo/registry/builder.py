"""Build SQL for queries: dimension columns, element-table joins, where and region filters."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from pachon.core.errors import QueryError
from pachon.repo.dimensions import SKYPIX_DIMENSION, UNIVERSE
from pachon.repo.refs import coerce_value

__all__ = ["QueryBuilder", "parse_region_arg"]

_log = logging.getLogger(__name__)


def parse_region_arg(region: Any) -> tuple[Any, list[int], Callable[[Any], bool]]:
    """Turn a ``region=`` argument into (region, envelope pixels, exact predicate on a Region).

    ``region`` is a ``pachon.core.sphgeom.Region`` or an ``(ra, dec)`` point in degrees.
    """
    import numpy as np

    from pachon.core.skypix import DEFAULT_SKYPIX_LEVEL, SkyPixelization

    pix = SkyPixelization(DEFAULT_SKYPIX_LEVEL)
    if isinstance(region, tuple | list) and len(region) == 2:
        ra, dec = float(region[0]), float(region[1])
        pixels = [int(p) for p in np.atleast_1d(pix.index(ra, dec))]
        return region, pixels, lambda r: bool(np.all(r.contains(ra, dec)))
    if not hasattr(region, "overlaps"):
        raise QueryError(f"region must be a sphgeom Region or an (ra, dec) tuple, got {region!r}")
    pixels = sorted({int(p) for p in pix.envelope(region)})
    return region, pixels, lambda r: bool(r.overlaps(region))


class QueryBuilder:
    """Accumulate element-table joins and resolve where-expression identifiers.

    Parameters
    ----------
    tables
        The registry tables.
    columns
        Expression of each dimension value already available (e.g. dataset columns).
    """

    def __init__(self, tables: Any, columns: dict[str, sa.ColumnElement]) -> None:
        self.tables = tables
        self.columns = dict(columns)
        self.joined: dict[str, sa.Alias] = {}
        self.joins: list[tuple[sa.Alias, list[sa.ColumnElement]]] = []
        self.conditions: list[sa.ColumnElement] = []

    def element_table(self, name: str) -> sa.Alias:
        """Join (once) the table of element ``name`` on the dimension values available."""
        if name in self.joined:
            return self.joined[name]
        elem = UNIVERSE[name]
        alias = self.tables[f"dim_{name}"].alias(f"e_{name}")
        conds = []
        for dim in (*elem.requires, name) if elem.is_dimension else (*elem.requires, elem.key):
            col = elem.column_for(dim)
            if dim in self.columns:
                conds.append(alias.c[col] == self.columns[dim])
            elif dim == name:
                self.columns[dim] = alias.c[col]
            else:
                raise QueryError(
                    f"cannot use {name!r} here: its key {dim!r} is not among the query's dimensions"
                )
        for imp in elem.implies:
            self.columns.setdefault(imp, alias.c[imp])
        self.joined[name] = alias
        self.joins.append((alias, conds))
        return alias

    def resolve(self, ident: tuple[str, ...]) -> sa.ColumnElement:
        """Column for a where identifier: ``("visit",)`` or ``("exposure", "exposure_time")``."""
        if len(ident) == 1:
            name = ident[0]
            if name in self.columns:
                return self.columns[name]
            if name in UNIVERSE:
                raise QueryError(
                    f"dimension {name!r} is not part of this query "
                    f"(available: {', '.join(sorted(self.columns))})"
                )
            owners = [e.name for e in UNIVERSE.values() if name in e.fields]
            hint = f"; write it as {owners[0]}.{name}" if owners else ""
            raise QueryError(f"unknown name {name!r} in where expression{hint}")
        if len(ident) != 2:
            raise QueryError(f"identifier {'.'.join(ident)!r} has too many parts; use element.field")
        name, fld = ident
        if name not in UNIVERSE:
            raise QueryError(f"unknown dimension element {name!r} in {name}.{fld}")
        elem = UNIVERSE[name]
        alias = self.element_table(name)
        if fld in ("id", "name") and fld == elem.key:
            return alias.c[elem.key]
        if fld not in alias.c or fld == "region":
            raise QueryError(
                f"{name} has no field {fld!r}; fields: "
                f"{', '.join(c for c in alias.c.keys() if c != 'region')}"
            )
        return alias.c[fld]

    def add_where(self, where: str | None, bind: dict[str, Any] | None) -> None:
        """Parse ``where`` with `pachon.repo.expr` and add it as a condition."""
        if not where:
            return
        from pachon.repo.expr import parse_where, to_sqlalchemy

        node = parse_where(where)
        self.conditions.append(to_sqlalchemy(node, self.resolve, bind=bind))

    def add_data_id(self, data_id: dict[str, Any] | None) -> None:
        """Add equality constraints for each key of a (partial) data ID."""
        for key, value in (data_id or {}).items():
            if key not in UNIVERSE or not UNIVERSE[key].is_dimension:
                raise QueryError(f"data ID key {key!r} is not a dimension")
            self.conditions.append(self.resolve((key,)) == coerce_value(key, value))

    def region_element(self, dimensions: tuple[str, ...]) -> str:
        """The most specific element with a region among ``dimensions``."""
        for name in ("patch", "tract", "visit", "exposure", SKYPIX_DIMENSION):
            if name in dimensions:
                return name
        raise QueryError(
            f"no dimension with a sky region among {', '.join(dimensions)}; "
            f"a region constraint needs visit, exposure, tract, patch or {SKYPIX_DIMENSION}"
        )

    def add_region(self, element_name: str, pixels: list[int]) -> sa.ColumnElement:
        """Constrain to records of ``element_name`` whose overlap pixels meet ``pixels``.

        Returns the region column, for the exact test done afterwards.
        """
        elem = UNIVERSE[element_name]
        alias = self.element_table(element_name)
        ov = self.tables["region_overlap"]
        keys = [alias.c[elem.column_for(d)] for d in (*elem.requires, element_name)]
        conds = [
            ov.c.element == element_name,
            ov.c.key0 == sa.cast(keys[0], sa.String),
            ov.c.skypix.in_(pixels),
        ]
        conds.append(ov.c.key1 == (keys[1] if len(keys) > 1 else -1))
        conds.append(ov.c.key2 == (keys[2] if len(keys) > 2 else -1))
        self.conditions.append(sa.exists(sa.select(ov.c.skypix).where(*conds)))
        return alias.c["region"]

    def from_clause(self, base: sa.FromClause | None) -> sa.FromClause:
        """The FROM clause: ``base`` joined with every element table."""
        out = base
        for alias, conds in self.joins:
            if out is None:
                out = alias
            else:
                out = out.join(alias, sa.and_(*conds) if conds else sa.true())
        return out

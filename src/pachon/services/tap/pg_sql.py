"""Writing a translated ADQL tree as PostgreSQL (used by `pachon.services.tap.adql.translate`).

ADQL identifiers are case-insensitive unless quoted; PostgreSQL folds unquoted names to lower
case while the served tables keep the Rubin spelling (``sourceId``, ``dp1.Source``).  So every
unquoted identifier is first given its canonical spelling (the served column, uploaded column or
the first spelling of a query alias it matches case-insensitively) and the whole query is then
written with every identifier quoted: result columns keep the names the DuckDB back end gives.

PostgreSQL lacks ``ROUND(double, n)`` and ``TRUNC(double, n)``: the value goes through
``NUMERIC`` and back to ``DOUBLE PRECISION``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from sqlglot import exp

from pachon.services.tap.catalogs import ServedTable

__all__ = ["canonical_identifiers", "postgres_sql"]

_log = logging.getLogger(__name__)


def canonical_identifiers(
    tree: exp.Expression, tables: Mapping[str, ServedTable], upload_columns: Mapping[str, Sequence[str]]
) -> None:
    """Respell the unquoted identifiers of ``tree`` (in place) as the names they denote."""
    spelling: dict[str, str] = {}
    for t in tables.values():
        for c in t.columns:
            spelling.setdefault(c.name.lower(), c.name)
    for cols in upload_columns.values():
        for c in cols:
            spelling.setdefault(c.lower(), c)
    for node in tree.find_all(exp.Alias, exp.TableAlias):
        ident = node.args.get("alias") if isinstance(node, exp.Alias) else node.this
        if isinstance(ident, exp.Identifier):
            spelling.setdefault(ident.name.lower(), ident.name)
    for ident in tree.find_all(exp.Identifier):
        if ident.quoted or isinstance(ident.parent, exp.Table):
            continue
        ident.set("this", spelling.get(ident.name.lower(), ident.name))


def _through_numeric(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Round) and node.args.get("decimals") is not None:
        inner = node.this
        node.set("this", exp.Cast(this=inner.copy(), to=exp.DataType.build("DECIMAL")))
        return exp.Cast(this=node, to=exp.DataType.build("DOUBLE"))
    if isinstance(node, exp.Anonymous) and node.name.upper() == "TRUNC" and len(node.expressions) == 2:
        value, digits = node.expressions
        node.set("expressions", [exp.Cast(this=value.copy(), to=exp.DataType.build("DECIMAL")), digits])
        return exp.Cast(this=node, to=exp.DataType.build("DOUBLE"))
    return node


def postgres_sql(tree: exp.Expression) -> str:
    """PostgreSQL text of a translated tree, every identifier quoted."""
    tree = tree.transform(_through_numeric, copy=False)
    return tree.sql(dialect="postgres", identify=True)

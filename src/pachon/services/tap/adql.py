"""ADQL 2.0/2.1 -> DuckDB SQL, with the read-only rules enforced on the parsed query.

Parser choice: sqlglot, with a small ADQL dialect (the generic SQL grammar plus ``TOP``).  On the
query set of ``benchmarks/bench_tap.py --parsers`` (TAP_SCHEMA lookup, cone search, join,
aggregate, subquery, DISTANCE) both parsers accepted all six queries; sqlglot parsed and
regenerated each in about 1.4 ms, queryparser-python3 (the ANTLR ADQL grammar) took about 320 ms
per query (over 200x slower) and emits only MySQL or PostgreSQL/pgSphere, so DuckDB would need a
second translation anyway.  sqlglot gives a typed tree we can check node by node and regenerate
for DuckDB (and later PostgreSQL); it is pure Python and actively maintained.

Safety is by whitelist, not blacklist:

- exactly one statement, a SELECT or a set operation of SELECTs (no WITH, DDL, DML, PRAGMA...);
- every node of the tree must be of an allowed kind; function calls must be ADQL functions
  (math, string, aggregates, geometry): ``read_csv``, ``read_parquet``, ``glob``, ``getenv`` and
  anything else are refused;
- every table must be a served table (``TAP_SCHEMA.tables``) or an uploaded ``TAP_UPLOAD.x``;
  data tables are replaced by a subquery keeping only rows of RUN collections the user may see.

The DuckDB connection is itself read-only with external access disabled (see
`pachon.services.tap.catalogs`), so this module is the first of two walls.  The same tree is
written for PostgreSQL with ``dialect="postgres"`` (`pachon.services.tap.pg_sql`: Q3C geometry,
exact-case quoted identifiers, explicit column lists); there the second wall is the read-only
database role (`pachon.services.tap.postgres`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.tokens import Tokenizer, TokenType

from pachon.core.errors import QueryError
from pachon.services.tap.catalogs import RUN_COLUMN, ServedColumn, ServedTable
from pachon.services.tap.geometry import (
    Geometry,
    area_sql,
    constant,
    contains_sql,
    intersects_sql,
    separation_sql,
)

__all__ = ["Translation", "translate", "ADQL", "MAX_QUERY_LENGTH"]

_log = logging.getLogger(__name__)

MAX_QUERY_LENGTH = 100_000


class ADQL(Dialect):
    """sqlglot dialect of ADQL: the generic grammar with ``SELECT TOP n``."""

    class Tokenizer(Tokenizer):
        """Tokenizer knowing ``TOP``."""

        KEYWORDS = {**Tokenizer.KEYWORDS, "TOP": TokenType.TOP}


_ALLOWED_NODES = tuple(
    getattr(exp, n)
    for n in (
        "Select",
        "Union",
        "Intersect",
        "Except",
        "From",
        "Join",
        "Where",
        "Group",
        "Having",
        "Order",
        "Ordered",
        "Limit",
        "Offset",
        "Subquery",
        "Table",
        "TableAlias",
        "Alias",
        "Column",
        "Identifier",
        "Star",
        "Literal",
        "Null",
        "Boolean",
        "Paren",
        "Neg",
        "Not",
        "And",
        "Or",
        "EQ",
        "NEQ",
        "GT",
        "GTE",
        "LT",
        "LTE",
        "Is",
        "In",
        "Between",
        "Like",
        "ILike",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Mod",
        "DPipe",
        "Case",
        "If",
        "Cast",
        "DataType",
        "Coalesce",
        "Count",
        "Avg",
        "Min",
        "Max",
        "Sum",
        "Distinct",
        "Abs",
        "Ceil",
        "Floor",
        "Exp",
        "Ln",
        "Log",
        "Sqrt",
        "Pow",
        "Round",
        "Lower",
        "Upper",
        "Exists",
        "Anonymous",
        "Contains",
        "Degrees",
        "Radians",
        "Pi",
        "Rand",
        "Trunc",
        "Sin",
        "Cos",
        "Tan",
        "Cot",
        "Asin",
        "Acos",
        "Atan",
        "Atan2",
        "Tuple",
        "Dot",
        "Var",
        "Sign",
        "Length",
        "Substring",
        "Trim",
        "Greatest",
        "Least",
        "Nullif",
        "Stddev",
        "StddevPop",
        "StddevSamp",
        "Variance",
        "VariancePop",
        "JoinHint",
        "Interval",
    )
    if hasattr(exp, n)
)
_MATH = {
    "DEGREES",
    "RADIANS",
    "PI",
    "RAND",
    "TRUNCATE",
    "LOG10",
    "MOD",
    "COT",
    "ATAN2",
    "SIGN",
    "POWER",
    "SQRT",
    "ABS",
    "CEILING",
    "FLOOR",
    "EXP",
    "ROUND",
    "SIN",
    "COS",
    "TAN",
    "ASIN",
    "ACOS",
    "ATAN",
    "LOWER",
    "UPPER",
    "COALESCE",
}
_RENAMED = {"TRUNCATE": "TRUNC", "RAND": "RANDOM", "CEILING": "CEIL"}
_GEOMETRY = {"POINT": 2, "CIRCLE": 3, "BOX": 4, "POLYGON": 6}
_PREDICATES = {"CONTAINS", "INTERSECTS"}
_OTHER_GEO = {"DISTANCE", "COORD1", "COORD2", "COORDSYS", "AREA"}


@dataclass
class Translation:
    """A translated query: DuckDB SQL, the tables it reads and the row limit applied."""

    sql: str
    tables: list[ServedTable] = field(default_factory=list)
    limit: int | None = None

    def column_meta(self) -> dict[str, ServedColumn]:
        """Metadata of columns named like a column of one of the tables read."""
        out: dict[str, ServedColumn] = {}
        for t in self.tables:
            for c in t.columns:
                out.setdefault(c.name, c)
        return out


def _fname(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return node.name.upper()
    if isinstance(node, exp.Contains):
        return "CONTAINS"
    return type(node).__name__.upper()


def _geometry(node: exp.Expression) -> Geometry:
    """The geometry a constructor call denotes (the coordinate system argument is dropped)."""
    if isinstance(node, exp.Paren):
        return _geometry(node.this)
    name = _fname(node)
    if name not in _GEOMETRY:
        raise QueryError(
            f"expected POINT, CIRCLE, BOX or POLYGON, got {node.sql()[:80]!r}; geometry held in "
            "columns (e.g. s_region) is not supported: use the position columns (s_ra, s_dec)"
        )
    args = list(node.expressions)
    if args and isinstance(args[0], exp.Literal) and args[0].is_string:
        args = args[1:]
    if name == "CIRCLE" and len(args) == 2:  # ADQL 2.1 CIRCLE(POINT, r)
        centre = _geometry(args[0])
        return Geometry("circle", (*centre.args, _sql(args[1])))
    if any(_fname(a) in _GEOMETRY for a in args):
        raise QueryError(f"unsupported nesting of geometries in {node.sql()[:80]!r}")
    texts = tuple(_sql(a) for a in args)
    wanted = {"POINT": 2, "CIRCLE": 3, "BOX": 4}.get(name)
    if wanted is not None and len(texts) != wanted:
        raise QueryError(f"{name} takes a coordinate system and {wanted} numbers, got {len(texts)}")
    if name == "POINT":
        return Geometry("point", texts)
    if name == "CIRCLE":
        return Geometry("circle", texts)
    if name == "BOX":
        vals = [constant(t) for t in texts]
        if any(v is None for v in vals):
            raise QueryError("BOX arguments must be numeric constants in this service")
        cx, cy, cw, ch = vals
        xs, ys = (
            (cx - cw / 2, cx + cw / 2, cx + cw / 2, cx - cw / 2),
            (cy - ch / 2, cy - ch / 2, cy + ch / 2, cy + ch / 2),
        )
        flat = [v for pair in zip(xs, ys, strict=True) for v in pair]
        return Geometry("polygon", tuple(repr(v) for v in flat))
    if len(texts) < 6 or len(texts) % 2:
        raise QueryError(
            f"POLYGON takes a coordinate system and pairs of numbers (>= 3 vertices), got "
            f"{len(texts)} numbers"
        )
    return Geometry("polygon", texts)


def _sql(node: exp.Expression) -> str:
    return node.sql(dialect="duckdb")


def _rewrite_functions(tree: exp.Expression, q3c: bool = False) -> exp.Expression:
    """Geometry predicates and ADQL-only functions -> DuckDB SQL (Q3C prefilters if ``q3c``)."""
    predicates: set[int] = set()

    def fn(node: exp.Expression) -> exp.Expression:
        name = _fname(node)
        if isinstance(node, (exp.Anonymous, exp.Contains)) and name in _PREDICATES:
            if len(node.expressions if isinstance(node, exp.Anonymous) else (0, 0)) != 2:
                raise QueryError(f"{name} takes two geometries")
            a, b = node.expressions if isinstance(node, exp.Anonymous) else (node.this, node.expression)
            to_sql = contains_sql if name == "CONTAINS" else intersects_sql
            sql = to_sql(_geometry(a), _geometry(b), q3c=q3c)
            new = exp.Cast(
                this=exp.Paren(this=sqlglot.parse_one(sql, read="duckdb")), to=exp.DataType.build("INT")
            )
            predicates.add(id(new))
            return new
        if isinstance(node, exp.Anonymous) and name in _OTHER_GEO:
            args = list(node.expressions)
            if name == "DISTANCE":
                if len(args) == 4:
                    pts = [_sql(a) for a in args]
                elif len(args) == 2:
                    p1, p2 = _geometry(args[0]), _geometry(args[1])
                    if p1.kind != "point" or p2.kind != "point":
                        raise QueryError("DISTANCE takes two POINTs")
                    pts = [*p1.args, *p2.args]
                else:
                    raise QueryError("DISTANCE takes two POINTs or four numbers")
                return sqlglot.parse_one(separation_sql(*pts), read="duckdb")
            if len(args) != 1:
                raise QueryError(f"{name} takes one geometry")
            if name == "AREA":
                return sqlglot.parse_one(area_sql(_geometry(args[0])), read="duckdb")
            if name == "COORDSYS":
                return exp.Literal.string("ICRS")
            g = _geometry(args[0])
            if g.kind != "point":
                raise QueryError(f"{name} takes a POINT")
            return sqlglot.parse_one(g.args[0 if name == "COORD1" else 1], read="duckdb")
        if isinstance(node, exp.Anonymous) and name in _GEOMETRY:
            raise QueryError(
                f"{name} values cannot be selected or compared here; use them inside "
                "CONTAINS, INTERSECTS or DISTANCE (or COORD1/COORD2)"
            )
        if isinstance(node, exp.Anonymous):
            if name not in _MATH:
                raise QueryError(f"unknown or forbidden function {node.name!r}; ADQL functions only")
            node.set("this", _RENAMED.get(name, name))
            return node
        if isinstance(node, exp.Log) and node.expression is None:  # ADQL LOG is the natural log
            return exp.Ln(this=node.this)
        return node

    tree = tree.transform(fn, copy=False)

    def simplify(node: exp.Expression) -> exp.Expression:
        if isinstance(node, (exp.EQ, exp.NEQ)):
            left, right = node.this, node.expression
            if id(right) in predicates:
                left, right = right, left
            if id(left) in predicates and isinstance(right, exp.Literal) and not right.is_string:
                value = right.this.strip()
                if value in ("1", "0"):
                    pred = left.this
                    truthy = (value == "1") == isinstance(node, exp.EQ)
                    return pred if truthy else exp.Not(this=pred)
        return node

    return tree.transform(simplify, copy=False)


def _check_nodes(tree: exp.Expression) -> None:
    for node in tree.walk():
        if not isinstance(node, _ALLOWED_NODES):
            raise QueryError(f"{type(node).__name__} is not allowed in an ADQL query ({node.sql()[:60]!r})")
        if isinstance(node, exp.Table) and not isinstance(node.this, exp.Identifier):
            raise QueryError(
                f"table functions are not allowed ({node.sql()[:60]!r}); name a table "
                "listed in TAP_SCHEMA.tables"
            )


def _replace_tables(
    tree: exp.Expression,
    tables: Mapping[str, ServedTable],
    visible_runs: Sequence[str] | None,
    uploads: Mapping[str, str],
    used: list[ServedTable],
    dialect: str = "duckdb",
) -> exp.Expression:
    by_name: dict[str, list[ServedTable]] = {}
    for t in tables.values():
        by_name.setdefault(t.name.lower(), []).append(t)
    stripped: dict[str, str] = {}

    def fn(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Table):
            return node
        if node.catalog:
            raise QueryError(f"table {node.sql()!r}: catalog-qualified names are not supported")
        schema, name = node.db.lower(), node.name.lower()
        alias = node.alias or node.name
        if schema == "tap_upload":
            if name not in uploads:
                raise QueryError(f"TAP_UPLOAD.{node.name} was not uploaded (UPLOAD={node.name},param:...)")
            stripped[f"tap_upload.{name}"] = alias
            return exp.Table(
                this=exp.to_identifier(uploads[name], quoted=True),
                alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)),
            )
        if schema:
            served = tables.get(f"{schema}.{name}")
        else:
            cands = by_name.get(name, [])
            served = cands[0] if len(cands) == 1 else None
        if served is None:
            known = ", ".join(sorted(t.qualified for t in tables.values()))
            raise QueryError(f"no table {node.sql(dialect='duckdb')!r}; tables: {known}")
        used.append(served)
        stripped[served.qualified.lower()] = alias
        target = f'"{served.schema}"."{served.name}"'
        if not served.run_filtered:
            return exp.Table(
                this=exp.to_identifier(served.name, quoted=True),
                db=exp.to_identifier(served.schema, quoted=True),
                alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)),
            )
        where = ""
        if visible_runs is not None:
            runs = ", ".join(exp.Literal.string(r).sql(dialect="duckdb") for r in visible_runs) or "NULL"
            where = f" WHERE {RUN_COLUMN} IN ({runs})"
        if dialect == "postgres":  # no EXCLUDE: list the served columns
            listed = ", ".join('"' + c.name.replace('"', '""') + '"' for c in served.columns)
            sub = sqlglot.parse_one(f"SELECT {listed} FROM {target}{where}", read="duckdb")
        else:
            sub = sqlglot.parse_one(f"SELECT * EXCLUDE ({RUN_COLUMN}) FROM {target}{where}", read="duckdb")
        return exp.Subquery(this=sub, alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))

    tree = tree.transform(fn, copy=False)
    for column in tree.find_all(exp.Column):  # dp1.Source.ra -> Source.ra
        if column.args.get("db") is not None:
            key = f"{column.db}.{column.table}".lower()
            if key in stripped:
                column.set("db", None)
                column.set("table", exp.to_identifier(stripped[key], quoted=True))
    return tree


def translate(
    adql: str,
    tables: Mapping[str, ServedTable],
    *,
    visible_runs: Sequence[str] | None,
    maxrec: int | None,
    uploads: Mapping[str, str] | None = None,
    dialect: str = "duckdb",
    upload_columns: Mapping[str, Sequence[str]] | None = None,
) -> Translation:
    """Translate an ADQL query into SQL that reads only what the user may see.

    Parameters
    ----------
    adql
        The query.
    tables
        Served tables by lower-case qualified name.
    visible_runs
        RUN collections whose rows may be returned (None: every run).
    maxrec
        Rows wanted at most; the SQL asks for ``maxrec + 1`` so overflow can be detected.
    uploads
        Lower-case upload name -> name of the registered relation.
    dialect
        ``duckdb`` (default back end) or ``postgres`` (with the Q3C extension).
    upload_columns
        Lower-case upload name -> its column names (used by ``postgres`` to spell them).

    Raises
    ------
    QueryError
        Syntax errors, forbidden constructs, unknown tables or functions.
    """
    if len(adql) > MAX_QUERY_LENGTH:
        raise QueryError(f"query of {len(adql)} characters exceeds the limit of {MAX_QUERY_LENGTH}")
    try:
        statements = [s for s in sqlglot.parse(adql, dialect=ADQL) if s is not None]
    except SqlglotError as exc:
        raise QueryError(f"ADQL syntax error: {str(exc).splitlines()[0][:300]}") from None
    except (RecursionError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise QueryError(f"ADQL syntax error: {type(exc).__name__}") from None
    if len(statements) != 1:
        raise QueryError(f"expected exactly one SELECT statement, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, (exp.Select, exp.Union, exp.Intersect, exp.Except)):
        raise QueryError(f"only SELECT queries are allowed, got {type(tree).__name__.upper()}")
    if tree.find(exp.With) is not None:
        raise QueryError("WITH (common table expressions) is not part of ADQL")
    _check_nodes(tree)
    if dialect not in ("duckdb", "postgres"):
        raise QueryError(f"unknown SQL dialect {dialect!r}; use duckdb or postgres")
    used: list[ServedTable] = []
    try:
        postgres = dialect == "postgres"
        tree = _rewrite_functions(tree, q3c=postgres)
        if postgres:
            from pachon.services.tap.pg_sql import canonical_identifiers

            canonical_identifiers(tree, tables, upload_columns or {})
        tree = _replace_tables(tree, tables, visible_runs, uploads or {}, used, dialect)
        limit = None
        if maxrec is not None:
            current = tree.args.get("limit")
            existing = None
            if current is not None and isinstance(current.expression, exp.Literal):
                existing = int(current.expression.this)
            elif current is not None:
                raise QueryError("TOP/LIMIT must be an integer literal")
            limit = maxrec + 1 if existing is None else min(existing, maxrec + 1)
            tree = tree.limit(limit, copy=False)
        if postgres:
            from pachon.services.tap.pg_sql import postgres_sql

            sql = postgres_sql(tree)
        else:
            sql = tree.sql(dialect="duckdb")
    except SqlglotError as exc:
        raise QueryError(f"cannot translate the query: {str(exc).splitlines()[0][:300]}") from None
    except RecursionError:
        raise QueryError("query nested too deeply") from None
    return Translation(sql, used, limit)

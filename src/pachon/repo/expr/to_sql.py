"""Translation of query expressions into SQLAlchemy boolean clauses."""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy
from sqlalchemy.sql.elements import ClauseElement

from pachon.core.errors import QueryError
from pachon.repo.expr.nodes import (
    BindParam,
    BoolOp,
    Compare,
    Identifier,
    InList,
    Node,
    Not,
    RangeLiteral,
    located_error,
)
from pachon.repo.expr.values import bind_value, constant_value

__all__ = ["to_sqlalchemy", "check_literal"]

_LOG = logging.getLogger(__name__)

Resolver = Callable[[tuple[str, ...]], "sqlalchemy.ColumnElement[Any]"]

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_MIRRORED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _kind(column: Any) -> str | None:
    """'int', 'float', 'str' or 'bool' for a column's SQL type (None: unchecked)."""
    try:
        python_type = column.type.python_type
    except (AttributeError, NotImplementedError):
        return None
    if python_type is bool:
        return "bool"
    if python_type is int:
        return "int"
    if python_type is float:
        return "float"
    if python_type is str:
        return "str"
    return None


_ACCEPTED = {
    "int": (int, float),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
}
_NAMES = {"int": "an integer", "float": "a number", "str": "a string", "bool": "a boolean"}


def check_literal(column: Any, value: Any, name: str, node: Node | None = None) -> None:
    """Raise `QueryError` when ``value`` cannot be compared with ``column``'s type.

    Both back ends then behave alike (SQLite would compare anything and find nothing,
    PostgreSQL would fail with a type error).
    """
    kind = _kind(column)
    if kind is None or value is None:
        return
    ok = isinstance(value, _ACCEPTED[kind]) and not (kind != "bool" and isinstance(value, bool))
    if ok:
        return
    hint = ""
    if kind == "int" and isinstance(value, str) and name.split(".")[-1].startswith("datetime"):
        hint = "; write times as T'2024-01-01T00:00:00'"
    elif kind == "str" and isinstance(value, int | float):
        hint = f"; quote it: '{value}'"
    message = (
        f"{name} is {_NAMES[kind]} ({kind}) column and cannot be compared with "
        f"{value!r} ({type(value).__name__}){hint}"
    )
    source = getattr(node, "source", "")
    raise located_error(message, source, getattr(node, "pos", -1))


class _Translator:
    def __init__(self, resolve: Resolver, bind: Mapping[str, Any] | None) -> None:
        self.resolve = resolve
        self.bind = bind

    def operand(self, node: Node) -> Any:
        """A column for an identifier, a plain Python value for a constant."""
        if not isinstance(node, Identifier):
            return constant_value(node, self.bind)
        try:
            return self.resolve(node.parts)
        except QueryError as exc:
            if not node.source or getattr(exc, "expression", None):
                raise
            raise located_error(str(exc), node.source, node.pos) from exc

    def clause(self, node: Node) -> sqlalchemy.ColumnElement[bool]:
        if isinstance(node, BoolOp):
            parts = [self.clause(operand) for operand in node.operands]
            return sqlalchemy.and_(*parts) if node.op == "AND" else sqlalchemy.or_(*parts)
        if isinstance(node, Not):
            return sqlalchemy.not_(self.clause(node.operand))
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, InList):
            return self.in_list(node)
        raise located_error(f"{node!r} is not a condition; compare it with a value", "", -1)

    def compare(self, node: Compare) -> sqlalchemy.ColumnElement[bool]:
        left, right, op = self.operand(node.left), self.operand(node.right), node.op
        ident = node.left
        if not isinstance(left, ClauseElement):
            if isinstance(right, ClauseElement):
                left, right, op = right, left, _MIRRORED[op]  # keep the column on the left
                ident = node.right
            else:
                left = sqlalchemy.literal(left)
        if isinstance(ident, Identifier) and not isinstance(right, ClauseElement):
            check_literal(left, right, ident.name, ident)
        return _OPERATORS[op](left, right)

    def in_list(self, node: InList) -> sqlalchemy.ColumnElement[bool]:
        column = self.operand(node.expr)
        if not isinstance(column, ClauseElement):
            column = sqlalchemy.literal(column)
        elif isinstance(node.expr, Identifier):
            name = node.expr.name
            for item in node.items:
                if isinstance(item, RangeLiteral):
                    check_literal(column, item.start, name, node.expr)
                elif isinstance(item, BindParam):
                    found = bind_value(item, self.bind, allow_list=True)
                    for value in found if isinstance(found, list) else [found]:
                        check_literal(column, value, name, node.expr)
                elif not isinstance(item, Identifier):
                    check_literal(column, constant_value(item, self.bind), name, node.expr)
        scalars: list[Any] = []
        clauses: list[sqlalchemy.ColumnElement[bool]] = []
        for item in node.items:
            if isinstance(item, RangeLiteral):
                between = column.between(item.start, item.stop)
                if item.stride != 1:
                    between = sqlalchemy.and_(between, (column - item.start) % item.stride == 0)
                clauses.append(between)
            elif isinstance(item, BindParam):
                found = bind_value(item, self.bind, allow_list=True)
                scalars += found if isinstance(found, list) else [found]
            else:
                scalars.append(self.operand(item))
        if scalars:
            clauses.insert(0, column.in_(scalars))
        if not clauses:  # an empty bound list: nothing is in it
            return sqlalchemy.true() if node.negated else sqlalchemy.false()
        result = clauses[0] if len(clauses) == 1 else sqlalchemy.or_(*clauses)
        return sqlalchemy.not_(result) if node.negated else result


def to_sqlalchemy(
    node: Node, resolve: Resolver, bind: Mapping[str, Any] | None = None
) -> sqlalchemy.ColumnElement[bool]:
    """Translate an expression into a SQLAlchemy boolean clause for a ``WHERE``.

    Parameters
    ----------
    node
        The expression from :func:`~pachon.repo.expr.parse_where`.
    resolve
        Maps an identifier's parts (``("visit", "day_obs")``) to a column; raises
        :class:`~pachon.core.errors.QueryError` for unknown names (the expression and a caret
        are added to its message here).
    bind
        Values of the ``:name`` parameters; lists and tuples are expanded inside ``IN``, and
        ``astropy.time.Time`` values become integer nanoseconds TAI.

    Returns
    -------
    sqlalchemy.ColumnElement
        The clause.  Ranges ``a..b`` become ``col BETWEEN a AND b``, with
        ``AND (col - a) % stride = 0`` added when the stride is not 1.

    Raises
    ------
    QueryError
        For unknown names or missing bind values.
    """
    clause = _Translator(resolve, bind).clause(node)
    _LOG.debug("translated %r", node)
    return clause

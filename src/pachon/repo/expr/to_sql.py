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

__all__ = ["to_sqlalchemy"]

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
        if not isinstance(left, ClauseElement):
            if isinstance(right, ClauseElement):
                left, right, op = right, left, _MIRRORED[op]  # keep the column on the left
            else:
                left = sqlalchemy.literal(left)
        return _OPERATORS[op](left, right)

    def in_list(self, node: InList) -> sqlalchemy.ColumnElement[bool]:
        column = self.operand(node.expr)
        if not isinstance(column, ClauseElement):
            column = sqlalchemy.literal(column)
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

"""Pure-Python evaluation of query expressions, for filtering records in memory.

The evaluator follows SQL's three-valued logic so that it selects the same rows as the SQL
translation: a comparison with a missing value (``None``) is *unknown*, ``NOT unknown`` is
unknown, and only rows whose result is true are selected.  An explicit ``NULL`` (literal or
bind value) compared with ``=`` / ``!=`` means ``IS NULL`` / ``IS NOT NULL``.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Mapping
from typing import Any

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

__all__ = ["evaluate"]

_LOG = logging.getLogger(__name__)

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class _Evaluator:
    def __init__(self, row: Mapping[Any, Any], bind: Mapping[str, Any] | None) -> None:
        self.row = row
        self.bind = bind

    def value(self, node: Node) -> Any:
        if not isinstance(node, Identifier):
            return constant_value(node, self.bind)
        for key in (node.parts, node.name):
            if key in self.row:
                return self.row[key]
        known = ", ".join(sorted(k if isinstance(k, str) else ".".join(k) for k in self.row))
        raise located_error(f"Unknown name {node.name!r}; the records have: {known}", node.source, node.pos)

    def truth(self, node: Node) -> bool | None:
        if isinstance(node, BoolOp):
            results = [self.truth(operand) for operand in node.operands]
            decisive = node.op == "OR"  # True decides an OR, False decides an AND
            if decisive in results:
                return decisive
            return None if None in results else not decisive
        if isinstance(node, Not):
            result = self.truth(node.operand)
            return None if result is None else not result
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, InList):
            result = self.contains(node)
            return None if result is None else result != node.negated
        raise located_error(f"{node!r} is not a condition; compare it with a value", "", -1)

    def compare(self, node: Compare) -> bool | None:
        left, right = self.value(node.left), self.value(node.right)
        explicit_null = (left is None and not isinstance(node.left, Identifier)) or (
            right is None and not isinstance(node.right, Identifier)
        )
        if explicit_null and node.op in ("=", "!="):
            both_null = left is None and right is None
            return both_null if node.op == "=" else not both_null
        if left is None or right is None:
            return None
        try:
            return bool(_OPERATORS[node.op](left, right))
        except TypeError:
            where = node.left if isinstance(node.left, Identifier) else node.right
            raise located_error(
                f"Cannot compare {left!r} with {right!r} using {node.op!r}; check the type of the value",
                getattr(where, "source", ""),
                getattr(where, "pos", -1),
            ) from None

    def contains(self, node: InList) -> bool | None:
        value = self.value(node.expr)
        candidates: list[Any] = []
        ranges: list[RangeLiteral] = []
        for item in node.items:
            if isinstance(item, RangeLiteral):
                ranges.append(item)
            elif isinstance(item, BindParam):
                found = bind_value(item, self.bind, allow_list=True)
                candidates += found if isinstance(found, list) else [found]
            else:
                candidates.append(self.value(item))
        if not candidates and not ranges:
            return False
        if value is None:
            return None
        if any(c is not None and c == value for c in candidates):
            return True
        if any(r.contains(value) for r in ranges):
            return True
        return None if any(c is None for c in candidates) else False


def evaluate(node: Node, row: Mapping[Any, Any], bind: Mapping[str, Any] | None = None) -> bool:
    """Evaluate an expression on one record.

    Parameters
    ----------
    node
        The expression from :func:`~pachon.repo.expr.parse_where`.
    row
        Values by identifier, keyed by the identifier's parts (``("visit", "day_obs")``) or by
        its dotted name (``"visit.day_obs"``); ``None`` is a missing value (SQL ``NULL``).
    bind
        Values of the ``:name`` parameters; sequences are allowed inside ``IN``.

    Returns
    -------
    bool
        True only when the expression is true for this row (false and unknown give False).

    Raises
    ------
    QueryError
        For a name absent from ``row``, a missing bind value or values that cannot be compared.
    """
    return _Evaluator(row, bind).truth(node) is True

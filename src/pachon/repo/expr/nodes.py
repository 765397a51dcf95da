"""The syntax tree of ``--where`` query expressions.

Nodes are frozen dataclasses, hashable and comparable by value.  :class:`Identifier` and
:class:`BindParam` also remember where they sit in the source text (fields excluded from
comparison and ``repr``) so that errors found later, while translating to SQL or evaluating,
can still point at the offending name with a caret.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pachon.core.errors import QueryError

__all__ = [
    "Node",
    "Identifier",
    "Literal",
    "TimeLiteral",
    "BindParam",
    "RangeLiteral",
    "Compare",
    "InList",
    "BoolOp",
    "Not",
    "COMPARISON_OPERATORS",
    "identifiers",
    "located_error",
]

_LOG = logging.getLogger(__name__)

COMPARISON_OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
"""Canonical comparison operators stored in :attr:`Compare.op` (``<>`` becomes ``!=``)."""


@dataclass(frozen=True)
class Node:
    """Base class of every syntax-tree node."""


@dataclass(frozen=True)
class Identifier(Node):
    """A dimension or dimension field: ``("visit",)`` or ``("visit", "day_obs")``."""

    parts: tuple[str, ...]
    pos: int = field(default=-1, compare=False, repr=False, kw_only=True)
    source: str = field(default="", compare=False, repr=False, kw_only=True)

    @property
    def name(self) -> str:
        """The dotted name as written, e.g. ``"visit.day_obs"``."""
        return ".".join(self.parts)


@dataclass(frozen=True)
class Literal(Node):
    """A string, integer, float or boolean constant, or ``None`` for ``NULL``."""

    value: str | int | float | bool | None


@dataclass(frozen=True)
class TimeLiteral(Node):
    """A time ``T'...'`` as integer nanoseconds TAI since 1970-01-01T00:00:00 TAI."""

    ns_tai: int


@dataclass(frozen=True)
class BindParam(Node):
    """A named value supplied at execution time: ``:name``."""

    name: str
    pos: int = field(default=-1, compare=False, repr=False, kw_only=True)
    source: str = field(default="", compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class RangeLiteral(Node):
    """Integers ``start..stop:stride``, both ends included (only inside ``IN`` lists)."""

    start: int
    stop: int
    stride: int = 1

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one of the integers of the range."""
        return self.start <= value <= self.stop and (value - self.start) % self.stride == 0


@dataclass(frozen=True)
class Compare(Node):
    """A comparison; ``op`` is one of :data:`COMPARISON_OPERATORS`."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class InList(Node):
    """``expr [NOT] IN (items...)``; items are values, bind parameters or ranges."""

    expr: Node
    items: tuple[Node, ...]
    negated: bool = False


@dataclass(frozen=True)
class BoolOp(Node):
    """``AND`` or ``OR`` of two or more operands (flattened: ``a AND b AND c`` is one node)."""

    op: str
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Not(Node):
    """Logical negation."""

    operand: Node


def identifiers(node: Node) -> set[tuple[str, ...]]:
    """Return every identifier used in an expression.

    Parameters
    ----------
    node
        The root of a tree from :func:`~pachon.repo.expr.parse_where`.

    Returns
    -------
    set of tuple of str
        The ``parts`` of each :class:`Identifier`, e.g. ``{("visit",), ("visit", "day_obs")}``;
        the registry joins the tables these name.
    """
    found: set[tuple[str, ...]] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Identifier):
            found.add(current.parts)
        elif isinstance(current, Compare):
            stack += [current.left, current.right]
        elif isinstance(current, InList):
            stack += [current.expr, *current.items]
        elif isinstance(current, BoolOp):
            stack += current.operands
        elif isinstance(current, Not):
            stack.append(current.operand)
    return found


def located_error(message: str, source: str, pos: int) -> QueryError:
    """Build a :class:`QueryError` that quotes ``source`` with a caret under column ``pos``.

    Parameters
    ----------
    message
        What went wrong and what to do about it.
    source
        The whole expression text; when empty only ``message`` is used.
    pos
        0-based index of the offending character in ``source``.

    Returns
    -------
    QueryError
        The error, with ``position`` and ``expression`` attributes set for programs.
    """
    if source and pos >= 0:
        shown = source.replace("\n", " ").replace("\t", " ").replace("\r", " ")
        text = f"{message} (column {pos + 1}):\n    {shown}\n    {' ' * pos}^"
    else:
        text = message
    error = QueryError(text)
    error.position = pos  # type: ignore[attr-defined]
    error.expression = source  # type: ignore[attr-defined]
    _LOG.debug("query error: %s", text)
    return error

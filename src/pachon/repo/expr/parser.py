"""Tokenizer and recursive-descent parser of ``--where`` query expressions.

Grammar (keywords are case-insensitive; precedence NOT > AND > OR)::

    expr      := and_expr ("OR" and_expr)*
    and_expr  := not_expr ("AND" not_expr)*
    not_expr  := "NOT" not_expr | "(" expr ")" | predicate
    predicate := operand (cmp_op operand
                          | ["NOT"] "IN" ("(" item ("," item)* ")" | bind)
                          | ["NOT"] "BETWEEN" operand "AND" operand
                          | "IS" ["NOT"] "NULL")
    item      := operand | int ".." int [":" int]
    operand   := name("." name)* | number | 'string' | T'time' | :bind | NULL | TRUE | FALSE

Strings escape a quote by doubling it (``'it''s'``).  Time literals are TAI in ISO format
(``T'2025-12-31T12:00:00.5'`` or ``T'2025-12-31'``) and become integer nanoseconds TAI since
1970-01-01T00:00:00 TAI, the registry's representation.  ``BETWEEN`` is rewritten as two
comparisons and ``IS [NOT] NULL`` as ``= NULL`` / ``!= NULL`` (SQLAlchemy's convention).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from pachon.repo.expr.nodes import (
    BindParam,
    BoolOp,
    Compare,
    Identifier,
    InList,
    Literal,
    Node,
    Not,
    RangeLiteral,
    TimeLiteral,
    located_error,
)
from pachon.repo.expr.values import tai_iso_to_ns

__all__ = ["parse_where"]

_LOG = logging.getLogger(__name__)

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<time>[Tt]'(?:[^']|'')*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>(?:\d+(?:\.(?!\.)\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<bind>:[A-Za-z_]\w*)
  | (?P<ident>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)
  | (?P<op><=|>=|<>|!=|=|<|>)
  | (?P<dotdot>\.\.)
  | (?P<punct>[(),:+-])
    """,
    re.VERBOSE,
)
_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "IS", "NULL", "BETWEEN", "TRUE", "FALSE"})
_VALUE_HINT = (
    "a value (a name such as visit or exposure.day_obs, a number, a 'string', "
    "a T'2025-12-31T12:00:00' time or a :bind parameter)"
)


@dataclass(frozen=True)
class _Token:
    kind: str  # ws/time/string/number/bind/ident/op/dotdot/punct, "kw" or "eof"
    text: str
    pos: int


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(source):
        match = _TOKEN_RE.match(source, pos)
        if match is None:
            if source[pos] == "'" or source[pos : pos + 2].lower() == "t'":
                raise located_error("Unterminated string: add the closing quote", source, pos)
            raise located_error(f"Unexpected character {source[pos]!r}", source, pos)
        kind = match.lastgroup
        assert kind is not None
        text = match.group()
        if kind == "ident" and text.upper() in _KEYWORDS:
            kind, text = "kw", text.upper()
        if kind != "ws":
            tokens.append(_Token(kind, text, pos))
        pos = match.end()
    tokens.append(_Token("eof", "", len(source)))
    return tokens


def _describe(token: _Token) -> str:
    return "the end of the expression" if token.kind == "eof" else repr(token.text)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokenize(source)
        self.index = 0

    @property
    def peek(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def accept(self, kind: str, text: str | None = None) -> _Token | None:
        token = self.peek
        if token.kind == kind and (text is None or token.text == text):
            return self.advance()
        return None

    def error(self, expected: str, token: _Token | None = None) -> Exception:
        token = token or self.peek
        return located_error(f"Expected {expected}, found {_describe(token)}", self.source, token.pos)

    def expect(self, kind: str, text: str, expected: str) -> _Token:
        token = self.accept(kind, text)
        if token is None:
            raise self.error(expected)
        return token

    def parse(self) -> Node:
        node = self.parse_or()
        if self.peek.kind != "eof":
            raise self.error("AND, OR or the end of the expression")
        return node

    def parse_or(self) -> Node:
        operands = [self.parse_and()]
        while self.accept("kw", "OR"):
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else BoolOp("OR", tuple(operands))

    def parse_and(self) -> Node:
        operands = [self.parse_not()]
        while self.accept("kw", "AND"):
            operands.append(self.parse_not())
        return operands[0] if len(operands) == 1 else BoolOp("AND", tuple(operands))

    def parse_not(self) -> Node:
        if self.accept("kw", "NOT"):
            return Not(self.parse_not())
        if (opening := self.accept("punct", "(")) is not None:
            node = self.parse_or()
            self.expect("punct", ")", f"')' to close the '(' at column {opening.pos + 1}")
            return node
        return self.parse_predicate()

    def parse_predicate(self) -> Node:
        left = self.parse_operand()
        if (op := self.accept("op")) is not None:
            return Compare("!=" if op.text == "<>" else op.text, left, self.parse_operand())
        if self.accept("kw", "IS"):
            negated = self.accept("kw", "NOT") is not None
            self.expect("kw", "NULL", "NULL after IS" + (" NOT" if negated else ""))
            return Compare("!=" if negated else "=", left, Literal(None))
        negated = self.accept("kw", "NOT") is not None
        if self.accept("kw", "IN"):
            return InList(left, self.parse_items(), negated)
        if self.accept("kw", "BETWEEN"):
            low = self.parse_operand()
            self.expect("kw", "AND", "AND between the two bounds of BETWEEN")
            node = BoolOp("AND", (Compare(">=", left, low), Compare("<=", left, self.parse_operand())))
            return Not(node) if negated else node
        if negated:
            raise self.error("IN or BETWEEN after NOT")
        raise self.error("a comparison operator (=, !=, <>, <, <=, >, >=), IN, BETWEEN or IS NULL")

    def parse_items(self) -> tuple[Node, ...]:
        if self.peek.kind == "bind":
            return (self.parse_operand(),)
        opening = self.expect("punct", "(", "'(' starting the list of values after IN")
        items = [self.parse_item()]
        while self.accept("punct", ","):
            items.append(self.parse_item())
        self.expect("punct", ")", f"',' or ')' to close the IN list opened at column {opening.pos + 1}")
        return tuple(items)

    def parse_item(self) -> Node:
        start_token = self.peek
        item = self.parse_operand()
        if not self.accept("dotdot"):
            return item
        start = self._range_bound(item, start_token)
        stop_token = self.peek
        stop = self._range_bound(self.parse_operand(), stop_token)
        stride = 1
        if self.accept("punct", ":"):
            stride_token = self.peek
            stride = self._range_bound(self.parse_operand(), stride_token)
            if stride <= 0:
                raise located_error("Range stride must be a positive integer", self.source, stride_token.pos)
        if stop < start:
            raise located_error(
                f"Range {start}..{stop} is empty: write the smaller bound first", self.source, start_token.pos
            )
        return RangeLiteral(start, stop, stride)

    def _range_bound(self, node: Node, token: _Token) -> int:
        if isinstance(node, Literal) and type(node.value) is int:
            return node.value
        raise located_error("Range bounds and stride must be integers", self.source, token.pos)

    def parse_operand(self) -> Node:
        token = self.advance()
        if token.kind == "ident":
            return Identifier(tuple(token.text.split(".")), pos=token.pos, source=self.source)
        if token.kind == "string":
            return Literal(token.text[1:-1].replace("''", "'"))
        if token.kind == "bind":
            return BindParam(token.text[1:], pos=token.pos, source=self.source)
        if token.kind == "time":
            try:
                return TimeLiteral(tai_iso_to_ns(token.text[2:-1].replace("''", "'")))
            except ValueError as exc:
                raise located_error(
                    f"Cannot read time literal {token.text}: write TAI in ISO format, "
                    "e.g. T'2025-12-31T12:00:00' or T'2025-12-31'",
                    self.source,
                    token.pos,
                ) from exc
        if token.kind == "kw" and token.text in ("NULL", "TRUE", "FALSE"):
            return Literal({"NULL": None, "TRUE": True, "FALSE": False}[token.text])
        sign = 1
        if token.kind == "punct" and token.text in "+-":
            sign = -1 if token.text == "-" else 1
            if self.peek.kind != "number":
                raise self.error(f"a number after {token.text!r}")
            token = self.advance()
        if token.kind == "number":
            text = token.text
            value = float(text) if any(c in text for c in ".eE") else int(text)
            return Literal(sign * value)
        raise self.error(_VALUE_HINT, token)


def parse_where(text: str) -> Node:
    """Parse a ``--where`` expression into an immutable syntax tree.

    Parameters
    ----------
    text
        The expression, e.g. ``"instrument = 'LSSTComCam' AND visit IN (100..200:10)"``.

    Returns
    -------
    Node
        The root node (see :mod:`pachon.repo.expr.nodes`).

    Raises
    ------
    QueryError
        When the text is not a valid expression; the message quotes it with a caret under the
        offending character and says what was expected there.
    """
    if not text.strip():
        raise located_error(
            'Empty query expression: give a condition such as "visit > 100" or leave it out', text, -1
        )
    node = _Parser(text).parse()
    _LOG.debug("parsed %r as %r", text, node)
    return node

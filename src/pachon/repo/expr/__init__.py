"""The ``--where`` query expression language of the data repository.

Users select data as with Rubin's Butler::

    instrument = 'LSSTComCam' AND visit IN (100..200:10) AND band IN ('g', 'r')
    exposure.datetime_begin > T'2025-12-31T12:00:00' AND exposure.exposure_time >= :t

:func:`parse_where` turns the text into an immutable syntax tree, :func:`identifiers` lists the
names it uses (the registry joins their tables), :func:`to_sqlalchemy` translates it into a
SQLAlchemy ``WHERE`` clause and :func:`evaluate` applies it to an in-memory record.  The
grammar is documented in :mod:`pachon.repo.expr.parser`.
"""

from __future__ import annotations

from pachon.repo.expr.evaluate import evaluate
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
    identifiers,
)
from pachon.repo.expr.parser import parse_where
from pachon.repo.expr.to_sql import to_sqlalchemy
from pachon.repo.expr.values import tai_iso_to_ns, time_to_ns_tai

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
    "parse_where",
    "identifiers",
    "to_sqlalchemy",
    "evaluate",
    "tai_iso_to_ns",
    "time_to_ns_tai",
]

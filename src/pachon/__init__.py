"""Pachón: a survey-telescope data management system.

The facade names are imported lazily so that ``import pachon`` stays fast; heavy
dependencies (astropy, SQLAlchemy, felis) load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["__version__", "Exposure", "Repository", "get_instrument", "PachonError"]

__version__ = "0.1.0.dev0"

_LAZY = {
    "Exposure": "pachon.core.exposure",
    "Repository": "pachon.repo",
    "get_instrument": "pachon.instruments",
    "PachonError": "pachon.core.errors",
}

if TYPE_CHECKING:  # pragma: no cover
    from pachon.core.errors import PachonError
    from pachon.core.exposure import Exposure
    from pachon.instruments import get_instrument
    from pachon.repo import Repository


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pachon' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

"""The survey simulator: raw frames with instrument signatures, calibration frames, a reference
catalogue and the truth behind every pixel.

Entry point: :func:`simulate_survey` (see :mod:`pachon.sim.api`); configuration:
:class:`SimConfig` (:mod:`pachon.sim.config`); lower level: :class:`Simulator`
(:mod:`pachon.sim.engine`) simulates any single visit x detector.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["SimConfig", "SimulationResult", "Simulator", "simulate_survey"]

_LAZY = {
    "SimConfig": "pachon.sim.config",
    "SimulationResult": "pachon.sim.api",
    "simulate_survey": "pachon.sim.api",
    "Simulator": "pachon.sim.engine",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pachon.sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

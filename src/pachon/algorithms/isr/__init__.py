"""Instrument signature removal: from raw amplifiers to a calibrated detector Exposure.

Entry point: :func:`run_isr` with an :class:`IsrConfig` (which steps) and :class:`IsrCalibs`
(the calibrations).  The steps live in their own modules (overscan, crosstalk, linearity,
brighter_fatter, defects, interpolate, linear_features, ghosts, vignetting) as pure functions
on arrays, usable alone.
"""

from __future__ import annotations

from pachon.algorithms.isr.config import GhostModel, IsrCalibs, IsrConfig
from pachon.algorithms.isr.isr import run_isr

__all__ = ["run_isr", "IsrConfig", "IsrCalibs", "GhostModel"]

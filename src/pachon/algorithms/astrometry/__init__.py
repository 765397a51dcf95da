"""Astrometric calibration: pattern matching to a reference catalogue, TAN-SIP fitting, blind solving."""

from __future__ import annotations

from pachon.algorithms.astrometry.dss import DssHeaderError, DssPlateSolution, dss_to_tan_sip
from pachon.algorithms.astrometry.matching import AstrometryError, match_triangles
from pachon.algorithms.astrometry.sip import fit_tan_sip
from pachon.algorithms.astrometry.solve import AstrometryResult, blind_solve, solve_astrometry

__all__ = [
    "AstrometryError",
    "AstrometryResult",
    "DssHeaderError",
    "DssPlateSolution",
    "blind_solve",
    "dss_to_tan_sip",
    "fit_tan_sip",
    "match_triangles",
    "solve_astrometry",
]

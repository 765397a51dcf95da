"""Camera definitions: Rubin's LSSTCam, LSSTComCam and LATISS, and generic YAML-defined cameras.

Detector geometry and amplifier layouts, pixel ↔ focal plane ↔ field angle transforms, the
Collimated Beam Projector transform, and header translation into :class:`ObservationInfo`.
Heavy pieces (astropy, pydantic, the 205-detector LSSTCam) load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "Amplifier", "Detector", "Instrument", "ObservationInfo", "RadialDistortion", "CbpTransform",
    "GenericInstrument", "LsstInstrument", "get_instrument", "list_instruments", "find_instrument",
    "register_instrument",
]

_LAZY = {
    "Amplifier": "pachon.instruments.base",
    "Detector": "pachon.instruments.base",
    "Instrument": "pachon.instruments.base",
    "ObservationInfo": "pachon.instruments.translator",
    "RadialDistortion": "pachon.instruments.geometry",
    "CbpTransform": "pachon.instruments.cbp",
    "GenericInstrument": "pachon.instruments.generic",
    "LsstInstrument": "pachon.instruments.lsst",
    "get_instrument": "pachon.instruments.registry",
    "list_instruments": "pachon.instruments.registry",
    "find_instrument": "pachon.instruments.registry",
    "register_instrument": "pachon.instruments.registry",
}

if TYPE_CHECKING:  # pragma: no cover
    from pachon.instruments.base import Amplifier, Detector, Instrument
    from pachon.instruments.cbp import CbpTransform
    from pachon.instruments.generic import GenericInstrument
    from pachon.instruments.geometry import RadialDistortion
    from pachon.instruments.lsst import LsstInstrument
    from pachon.instruments.registry import (
        find_instrument,
        get_instrument,
        list_instruments,
        register_instrument,
    )
    from pachon.instruments.translator import ObservationInfo


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pachon.instruments' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

"""The registry of known instruments: built-in Rubin cameras, shipped YAML definitions, user ones.

Instruments are built on first use (LSSTCam's 205 detectors are not made at import time).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pachon.core.errors import ConfigError, MetadataTranslationError

from .base import Instrument

__all__ = ["get_instrument", "list_instruments", "find_instrument", "register_instrument", "DATA_DIR"]

log = logging.getLogger(__name__)

#: Folder of the shipped generic definitions (one ``<name>.yaml`` per camera).
DATA_DIR = Path(__file__).with_name("data")

_lock = threading.RLock()
_instruments: dict[str, Instrument] = {}
_factories: dict[str, Callable[[], Instrument]] = {}


def _builtin_factories() -> dict[str, Callable[[], Instrument]]:
    from . import lsst, testcam

    factories: dict[str, Callable[[], Instrument]] = {
        "LSSTCam": lsst.make_lsstcam, "LSSTComCam": lsst.make_lsstcomcam, "LATISS": lsst.make_latiss,
        "PachonTestCam": testcam.make_testcam,
    }
    for path in sorted(DATA_DIR.glob("*.yaml")):
        factories[_yaml_name(path)] = lambda path=path: _from_yaml(path)
    return factories


def _yaml_name(path: Path) -> str:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
        return str(data["name"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: cannot read the instrument name ('name' field): {exc}") from None


def _from_yaml(path: Path) -> Instrument:
    from .generic import GenericInstrument

    return GenericInstrument.from_yaml(path)


def _ensure_factories() -> None:
    with _lock:
        if not _factories:
            for name, factory in _builtin_factories().items():
                _factories.setdefault(name, factory)


def register_instrument(instrument: Instrument, *, replace: bool = False) -> None:
    """Make ``instrument`` known to :func:`get_instrument` and :func:`find_instrument`."""
    _ensure_factories()
    with _lock:
        existing = _instruments.get(instrument.name)
        if not replace and existing is not None and existing is not instrument:
            raise ConfigError(f"an instrument named {instrument.name!r} is already registered; "
                              "pass replace=True to replace it")
        _instruments[instrument.name] = instrument
        _factories.setdefault(instrument.name, lambda: instrument)


def list_instruments() -> list[str]:
    """Names of all known instruments (built-in, shipped YAML and registered)."""
    _ensure_factories()
    with _lock:
        return sorted(set(_factories) | set(_instruments))


def get_instrument(name_or_path: str | Path) -> Instrument:
    """The instrument called ``name_or_path``, or loaded from that YAML definition file."""
    _ensure_factories()
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or Path(text).suffix in (".yaml", ".yml"):
        instrument = _from_yaml(Path(text))
        register_instrument(instrument, replace=True)
        return instrument
    with _lock:
        if text not in _instruments:
            factory = _factories.get(text)
            if factory is None:
                raise ConfigError(f"unknown instrument {text!r}; known: {list_instruments()} "
                                  "(or pass the path of a YAML definition file)")
            _instruments[text] = factory()
        return _instruments[text]


def find_instrument(header: Mapping[str, Any], *, filename: str | Path | None = None) -> Instrument:
    """The one instrument whose rules match ``header`` and that can translate it.

    Raises
    ------
    MetadataTranslationError
        When no instrument or several match (naming ``filename`` and the candidates), or when
        the matching instrument cannot translate the header (naming the missing keys).
    """
    where = str(filename) if filename is not None else "<header>"
    instruments = [get_instrument(n) for n in list_instruments()]
    candidates = [inst for inst in instruments if inst.can_translate(header)]
    if not candidates:
        hint = {k: header.get(k) for k in ("INSTRUME", "TELESCOP") if k in header}
        raise MetadataTranslationError(
            f"{where}: no known instrument matches this header {hint or '(no INSTRUME/TELESCOP)'}; "
            f"known: {list_instruments()}; write a YAML definition (see pachon.instruments.generic_schema)")
    if len(candidates) > 1:
        raise MetadataTranslationError(
            f"{where}: several instruments match this header: {[c.name for c in candidates]}; "
            "make their 'match' rules exclusive")
    instrument = candidates[0]
    instrument.translate_header(header, filename=None if filename is None else str(filename))
    return instrument

"""The Rubin alert schemas, read at run time from the ``lsst-alert-packet`` package.

The package ships one folder per schema version, ``schema/<major>/<minor>/``, holding
``lsst.v<major>_<minor>.alert.avsc`` and the named sub-schemas it references (diaSource,
diaObject, ...), plus ``schema/latest.txt``.  We never copy those files: they are located
through :mod:`importlib.resources` and parsed with fastavro, each version into its own
named-type table so versions never clobber each other.

Schema ids follow Rubin's registry convention ``major * 100 + minor`` (7.1 → 701,
10.0 → 1000, 11.1 → 1101), which is the id carried by the Confluent wire format.
"""

from __future__ import annotations

import functools
import logging
from importlib import resources
from pathlib import Path
from typing import Any

from pachon.core.errors import ConfigError, FormatError

__all__ = [
    "available_versions",
    "latest_version",
    "load_schema",
    "schema_id",
    "version_from_schema_id",
    "schema_path",
]

log = logging.getLogger(__name__)

_PACKAGE = "lsst.alert.packet"


def _schema_root() -> Path:
    try:
        root = resources.files(_PACKAGE).joinpath("schema")
    except ModuleNotFoundError as exc:  # pragma: no cover - dependency is declared
        raise ConfigError(
            "the Rubin alert schemas need the package 'lsst-alert-packet': "
            "pip install lsst-alert-packet"
        ) from exc
    return Path(str(root))


def _version_key(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)


@functools.cache
def available_versions() -> list[str]:
    """List the alert schema versions shipped by the installed ``lsst-alert-packet``.

    Returns
    -------
    list of str
        Versions such as ``"3.0"``, ..., ``"11.1"``, sorted numerically.
    """
    root = _schema_root()
    found = []
    for major_dir in root.iterdir():
        if not (major_dir.is_dir() and major_dir.name.isdigit()):
            continue
        for minor_dir in major_dir.iterdir():
            if not minor_dir.name.isdigit():
                continue
            version = f"{major_dir.name}.{minor_dir.name}"
            if (minor_dir / _alert_file_name(version)).is_file():
                found.append(version)
    return sorted(found, key=_version_key)


def _alert_file_name(version: str) -> str:
    major, minor = _version_key(version)
    return f"lsst.v{major}_{minor}.alert.avsc"


@functools.cache
def latest_version() -> str:
    """Return the newest schema version of the installed package (``latest.txt``).

    Returns
    -------
    str
        A version such as ``"11.1"``.
    """
    text = (_schema_root() / "latest.txt").read_text().strip()
    major, minor = _version_key(text)
    return f"{major}.{minor}"


@functools.lru_cache(maxsize=256)
def _normalize(version: str | None) -> str:
    if version is None:
        return latest_version()
    version = str(version).strip().removeprefix("lsst.v").replace("_", ".")
    try:
        major, minor = _version_key(version)
    except ValueError:
        raise ConfigError(
            f"alert schema version {version!r} is not of the form 'MAJOR.MINOR'; "
            f"known versions: {', '.join(available_versions())}"
        ) from None
    normalized = f"{major}.{minor}"
    if normalized not in available_versions():
        raise ConfigError(
            f"alert schema version {normalized!r} is not shipped by the installed "
            f"lsst-alert-packet; known versions: {', '.join(available_versions())}"
        )
    return normalized


def schema_path(version: str | None = None) -> Path:
    """Return the path of the top-level ``alert.avsc`` file of a version.

    Parameters
    ----------
    version
        Schema version (``"11.1"``); the latest when None.

    Returns
    -------
    pathlib.Path
        Path inside the installed ``lsst-alert-packet`` package.
    """
    version = _normalize(version)
    major, minor = _version_key(version)
    return _schema_root() / str(major) / str(minor) / _alert_file_name(version)


@functools.cache
def _load(version: str) -> Any:
    import fastavro.schema

    # A private named-type table per version: v10 and v11 both define
    # "lsst.v*.diaSource" under different namespaces, but keep them apart anyway.
    parsed = fastavro.schema.load_schema(str(schema_path(version)), named_schemas={})
    log.debug("loaded alert schema %s", version)
    return parsed


def load_schema(version: str | None = None) -> dict[str, Any]:
    """Load and parse (with fastavro) the alert schema of a version, cached.

    Parameters
    ----------
    version
        Schema version (``"11.1"``, ``"7.1"``); the latest when None.

    Returns
    -------
    dict
        The fastavro parsed schema of the ``alert`` record, ready for
        ``fastavro.schemaless_writer`` and friends.

    Raises
    ------
    ConfigError
        When the version is not shipped by the installed package.
    """
    return _load(_normalize(version))


def schema_id(version: str | None = None) -> int:
    """Return Rubin's schema registry id of a version: ``major * 100 + minor``.

    Parameters
    ----------
    version
        Schema version; the latest when None.

    Returns
    -------
    int
        E.g. 701 for ``"7.1"``, 1000 for ``"10.0"``.
    """
    major, minor = _version_key(_normalize(version))
    return major * 100 + minor


@functools.cache
def _ids() -> dict[int, str]:
    return {schema_id(v): v for v in available_versions()}


def version_from_schema_id(id_: int) -> str:
    """Return the schema version of a registry id (inverse of :func:`schema_id`).

    Parameters
    ----------
    id_
        Schema id as carried by the Confluent wire format.

    Returns
    -------
    str
        The version, e.g. ``"7.1"`` for 701.

    Raises
    ------
    FormatError
        When no installed schema version has this id.
    """
    known = _ids()
    try:
        return known[int(id_)]
    except KeyError:
        raise FormatError(
            f"unknown alert schema id {id_}; the installed lsst-alert-packet knows the ids "
            f"{', '.join(str(k) for k in sorted(known))} (major*100+minor); upgrade "
            "lsst-alert-packet or check the packet's header bytes"
        ) from None

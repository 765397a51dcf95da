"""Typed task configuration: overrides from pipeline YAML, serialization and hashing.

A task's ``config_class`` is a dataclass or a pydantic model with working defaults.  Overrides
are validated with pydantic (dataclasses included), so a wrong type or an unknown key fails
with the pipeline file, task label and key named.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from typing import Any

from pachon.core.errors import ConfigError

__all__ = ["make_config", "config_to_dict", "config_hash"]

_log = logging.getLogger(__name__)


def _known_fields(cls: type) -> dict[str, Any]:
    if dataclasses.is_dataclass(cls):
        return {f.name: f.type for f in dataclasses.fields(cls)}
    fields = getattr(cls, "model_fields", None)
    if fields is not None:
        return {name: f.annotation for name, f in fields.items()}
    raise ConfigError(f"config class {cls.__name__} must be a dataclass or a pydantic model")


def _check_keys(cls: type, overrides: dict[str, Any], where: str) -> None:
    known = _known_fields(cls)
    for key, value in overrides.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown config key {key!r} for {cls.__name__}; known keys: "
                              f"{', '.join(sorted(known)) or '(none)'}")
        sub = known[key]
        if isinstance(value, dict) and isinstance(sub, type) and (
                dataclasses.is_dataclass(sub) or hasattr(sub, "model_fields")):
            _check_keys(sub, value, f"{where}.{key}")


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-able dict of a dataclass or pydantic config."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        import pydantic

        return pydantic.TypeAdapter(type(config)).dump_python(config, mode="json")
    if hasattr(config, "model_dump"):
        return config.model_dump(mode="json")
    raise ConfigError(f"config {config!r} is neither a dataclass nor a pydantic model")


def make_config(config_class: type, overrides: dict[str, Any] | None = None, *, where: str = "config") -> Any:
    """Build a config from its defaults and ``overrides`` (nested dicts override nested configs).

    Parameters
    ----------
    config_class
        Dataclass or pydantic model with defaults.
    overrides
        Key → value; keys must be fields of the class.
    where
        Where the overrides come from (``"pipe.yaml: tasks.isr.config"``), for error messages.

    Raises
    ------
    ConfigError
        Unknown key or invalid value (the message names ``where`` and the key).
    """
    import pydantic

    overrides = overrides or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}: config overrides must be a mapping, got {type(overrides).__name__}")
    _check_keys(config_class, overrides, where)
    try:
        default = config_class()
    except TypeError as exc:
        raise ConfigError(f"{config_class.__name__} must have defaults for every field: {exc}") from exc
    if not overrides:
        return default
    merged = _merge(config_to_dict(default), overrides)
    try:
        return pydantic.TypeAdapter(config_class).validate_python(merged)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{where}: invalid value for {key!r}: {err['msg']} "
                          f"(got {err.get('input')!r})") from None


def config_hash(task_class: str, config: Any) -> str:
    """``sha256:<hex>`` of the task class path and its configuration (canonical JSON)."""
    text = json.dumps({"task": task_class, "config": config_to_dict(config)}, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

"""Dataset references, dataset types and data-ID helpers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from pachon.core.errors import DataIdError
from pachon.repo.dimensions import DIMENSION_NAMES, UNIVERSE, implied_dimensions, normalize_dimensions

__all__ = ["DatasetRef", "DatasetType", "data_key", "coerce_value", "RAW_NAMESPACE", "deterministic_id"]

#: Namespace of the deterministic (UUID5) ids given to ingested raws.
RAW_NAMESPACE = uuid.UUID("5b1f0c4e-6a3d-4f7e-9a51-7f3c0e2d9b11")


@dataclass(frozen=True)
class DatasetType:
    """A named kind of dataset: its dimensions and storage class.

    ``dimensions`` is normalized on construction (required dimensions added, redundant implied
    ones dropped), so two spellings of the same type compare equal.
    """

    name: str
    dimensions: tuple[str, ...]
    storage_class: str
    is_calibration: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "dimensions", normalize_dimensions(tuple(self.dimensions)))

    @property
    def implied(self) -> tuple[str, ...]:
        """Dimensions whose values follow from the required ones."""
        return implied_dimensions(self.dimensions)


@dataclass(frozen=True, eq=False)
class DatasetRef:
    """A resolved dataset: its unique id, type name, (expanded) data ID and RUN collection."""

    id: uuid.UUID
    dataset_type: str
    data_id: dict[str, Any] = field(hash=False)
    run: str

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatasetRef) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        did = ", ".join(f"{k}={v!r}" for k, v in self.data_id.items())
        return f"DatasetRef({self.dataset_type}, {{{did}}}, run={self.run!r}, id={self.id})"


def coerce_value(dimension: str, value: Any) -> Any:
    """Convert a data-ID value to its dimension's key type, naming the key when it cannot."""
    elem = UNIVERSE[dimension]
    try:
        if elem.key_type is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        return str(value)
    except (TypeError, ValueError):
        raise DataIdError(
            f"data ID key {dimension!r} must be {elem.key_type.__name__}, got {value!r}"
        ) from None


def data_key(dimensions: tuple[str, ...], data_id: dict[str, Any]) -> str:
    """The canonical text key of a data ID over the required ``dimensions``."""
    return ",".join(f"{d}={data_id[d]}" for d in DIMENSION_NAMES if d in dimensions)


def deterministic_id(dataset_type: str, key: str, run: str) -> uuid.UUID:
    """UUID5 of (dataset type, data key, run): re-ingest gives the same id."""
    return uuid.uuid5(RAW_NAMESPACE, f"{dataset_type}|{key}|{run}")

"""Finding prerequisite inputs: by data ID, by calibration validity time, by sky region."""

from __future__ import annotations

import logging
from typing import Any

from pachon.pipe.pipeline import TaskDef
from pachon.pipe.task import PrerequisiteInput
from pachon.repo.dimensions import UNIVERSE, implied_dimensions, normalize_dimensions
from pachon.repo.refs import DatasetRef

__all__ = ["PrerequisiteFinder", "quantum_time"]

_log = logging.getLogger(__name__)
_REGION_ELEMENTS = ("patch", "tract", "visit", "exposure")


def quantum_time(record: dict[str, Any] | None) -> int | None:
    """Mid time (ns TAI) of an exposure/visit record, or its start when the end is unknown."""
    if not record or record.get("datetime_begin") is None:
        return None
    begin, end = record["datetime_begin"], record.get("datetime_end")
    return int(begin) if end is None else (int(begin) + int(end)) // 2


class PrerequisiteFinder:
    """Resolve the prerequisite inputs of quanta in the input collections.

    Parameters
    ----------
    repo
        The repository.
    collections
        Input collections, in search order.
    builder
        The graph builder (its ``existing``/``index`` caches serve data-ID lookups).
    """

    def __init__(self, repo: Any, collections: list[str], builder: Any) -> None:
        self.repo, self.collections, self.builder = repo, collections, builder
        self._records: dict[str, dict[tuple, dict[str, Any]]] = {}

    def _record(self, element: str, did: dict[str, Any]) -> dict[str, Any] | None:
        elem = UNIVERSE[element]
        if element not in self._records:
            pk = (*elem.requires, elem.key)
            self._records[element] = {tuple(row[c] for c in pk): row
                                      for row in self.repo.query_dimension_records(element)}
        return self._records[element].get((*(did.get(r) for r in elem.requires), did.get(element)))

    def _time(self, did: dict[str, Any]) -> int | None:
        for element in ("exposure", "visit"):
            if element in did:
                return quantum_time(self._record(element, did))
        return None

    def _region(self, did: dict[str, Any]) -> Any:
        from pachon.repo.registry.records import region_from_text

        for element in _REGION_ELEMENTS:
            if element in did:
                rec = self._record(element, did)
                if rec and rec.get("region"):
                    region = rec["region"]
                    return region_from_text(region) if isinstance(region, str) else region
        return None

    def _one(self, tdef: TaskDef, name: str, pre: PrerequisiteInput,
             did: dict[str, Any]) -> list[DatasetRef]:
        if pre.lookup == "calibration":
            t = self._time(did)
            if t is None:
                _log.warning("task %s: no exposure/visit time for %s to find calibration %s", tdef.label,
                             did, pre.dataset_type)
                return []
            ref = self.repo.find_dataset(pre.dataset_type, did, collections=self.collections, time=t)
            return [ref] if ref is not None else []
        if pre.lookup == "region":
            region = self._region(did)
            if region is None:
                _log.warning("task %s: quantum %s has no sky region to find %s", tdef.label, did,
                             pre.dataset_type)
                return []
            return self.repo.query_datasets(pre.dataset_type, self.collections, region=region)
        self.builder.existing(pre.dataset_type)
        dims = normalize_dimensions(tuple(pre.dimensions))
        shared = tuple(k for k in (*dims, *implied_dimensions(dims)) if k in tdef.quantum_keys)
        hits = self.builder.index(pre.dataset_type, shared).get(tuple(did.get(k) for k in shared), [])
        return [r for r, _ in hits]

    def resolve(self, tdef: TaskDef, did: dict[str, Any]) -> dict[str, list[DatasetRef]] | None:
        """Prerequisites of one quantum (name → refs), or None when one is missing (logged)."""
        out = {}
        for name, pre in tdef.task.prerequisites.items():
            refs = self._one(tdef, name, pre, did)
            if not refs:
                _log.warning("task %s: prerequisite %s (%s) not found for %s in %s; quantum dropped",
                             tdef.label, name, pre.dataset_type, did, self.collections)
                return None
            out[name] = refs
        return out

"""Finding prerequisite inputs: by data ID, by calibration validity time, by sky region.

A prerequisite made by a task of the same pipeline is taken from the producing quantum (by
shared data-ID values); otherwise it is searched in the input collections.  What happens when
it is not found follows `PrerequisiteInput.on_missing`: the task gets None (optional), the
quantum fails with a record naming the data ID and the dataset (``"fail"``, the default for
calibrations) or the quantum is dropped from the graph (``"drop"``).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pachon.core.errors import DatasetNotFoundError, QueryError
from pachon.pipe.pipeline import TaskDef
from pachon.pipe.task import PrerequisiteInput
from pachon.repo.dimensions import UNIVERSE, implied_dimensions, normalize_dimensions
from pachon.repo.refs import DatasetRef, data_key

__all__ = ["PrerequisiteFinder", "PrerequisiteResult", "quantum_time"]

_log = logging.getLogger(__name__)
_REGION_ELEMENTS = ("patch", "tract", "visit", "exposure")
_Hits = list[tuple[DatasetRef, uuid.UUID | None]]


def quantum_time(record: dict[str, Any] | None) -> int | None:
    """Mid time (ns TAI) of an exposure/visit record, or its start when the end is unknown."""
    if not record or record.get("datetime_begin") is None:
        return None
    begin, end = record["datetime_begin"], record.get("datetime_end")
    return int(begin) if end is None else (int(begin) + int(end)) // 2


def _iso(ns: int) -> str:
    from pachon.repo.times import from_ns

    try:
        return str(from_ns(ns).isot)
    except Exception:  # noqa: BLE001 - only for a message
        return f"{ns} ns TAI"


@dataclass
class PrerequisiteResult:
    """Prerequisites of one quantum.

    Attributes
    ----------
    refs
        Name → datasets found.
    upstream
        Ids of the quanta of this graph that make some of them.
    missing
        Name → why a required prerequisite with policy ``"fail"`` was not found (the quantum
        fails with this message).
    absent_optional
        Names of optional prerequisites not found (the task receives None).
    """

    refs: dict[str, list[DatasetRef]] = field(default_factory=dict)
    upstream: set[uuid.UUID] = field(default_factory=set)
    missing: dict[str, str] = field(default_factory=dict)
    absent_optional: list[str] = field(default_factory=list)


class PrerequisiteFinder:
    """Resolve the prerequisite inputs of quanta in the input collections.

    Parameters
    ----------
    repo
        The repository.
    collections
        Input collections, in search order.
    builder
        The graph builder (its ``existing``/``index`` caches serve data-ID lookups and
        prerequisites made in the pipeline).
    """

    def __init__(self, repo: Any, collections: list[str], builder: Any) -> None:
        self.repo, self.collections, self.builder = repo, collections, builder
        self._records: dict[str, dict[tuple, dict[str, Any]]] = {}
        self.absent: Counter[tuple[str, str]] = Counter()

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

    def lookup_time(self, pre: PrerequisiteInput, did: dict[str, Any],
                    inputs: dict[str, list[DatasetRef]]) -> tuple[int | None, str]:
        """Validity time (ns TAI) of a calibration lookup under ``pre.time``, or None and why."""
        if pre.time == "any":
            return None, "any validity"
        if pre.time == "quantum":
            t = self._time(did)
            return t, ("at the quantum's time" if t is not None else
                       "the quantum has no exposure/visit time: declare the prerequisite with "
                       "time='latest', 'earliest', 'midpoint' or 'any'")
        times = [t for refs in inputs.values() for r in refs if (t := self._time(r.data_id)) is not None]
        if not times:
            return None, f"no gathered input has an exposure/visit time for time={pre.time!r}"
        t = {"latest": max(times), "earliest": min(times),
             "midpoint": (min(times) + max(times)) // 2}[pre.time]
        return t, f"at the {pre.time} time of {len(times)} inputs"

    def _calibration(self, pre: PrerequisiteInput, did: dict[str, Any],
                     inputs: dict[str, list[DatasetRef]]) -> tuple[_Hits, str]:
        t, how = self.lookup_time(pre, did, inputs)
        if t is None and pre.time != "any":
            return [], how
        dims = normalize_dimensions(tuple(pre.dimensions))
        lacking = [d for d in dims if d not in did]
        if lacking and not pre.multiple:
            return [], (f"the quantum lacks {lacking[0]!r} of {pre.dataset_type}; declare the "
                        f"prerequisite multiple=True")
        sub = {d: did[d] for d in dims if d in did}
        when = how if t is None else f"valid at {_iso(t)} ({how})"
        for coll in self.collections:
            try:
                refs = self.repo.query_datasets(pre.dataset_type, [coll], data_id=sub, time=t)
            except DatasetNotFoundError:
                return [], f"dataset type {pre.dataset_type!r} is not registered"
            if not refs:
                continue
            dup = [k for k, n in Counter(data_key(dims, r.data_id) for r in refs).items() if n > 1]
            if dup:
                return [], (f"ambiguous: several {pre.dataset_type} datasets for {dup[0]} in {coll!r} "
                            f"({when}); decertify all but one or choose another time rule")
            return [(r, None) for r in refs], ""
        return [], f"no {pre.dataset_type} {sub} in {self.collections} {when}"

    def _from_pipeline(self, tdef: TaskDef, pre: PrerequisiteInput, did: dict[str, Any]) -> _Hits:
        dims = normalize_dimensions(tuple(pre.dimensions))
        shared = tuple(k for k in (*dims, *implied_dimensions(dims)) if k in tdef.quantum_keys)
        return list(self.builder.index(pre.dataset_type, shared).get(tuple(did.get(k) for k in shared), []))

    def _one(self, tdef: TaskDef, name: str, pre: PrerequisiteInput, did: dict[str, Any],
             inputs: dict[str, list[DatasetRef]]) -> tuple[_Hits, str]:
        if pre.dataset_type in self.builder.pipeline.producers:
            hits = self._from_pipeline(tdef, pre, did)
            if len(hits) > 1 and not pre.multiple:
                raise QueryError(f"task {tdef.label!r} prerequisite {name!r}: {len(hits)} {pre.dataset_type} "
                                 f"datasets made in this pipeline match quantum {did}; declare it "
                                 f"multiple=True")
            if hits:
                return hits, ""
        if pre.lookup == "calibration":
            return self._calibration(pre, did, inputs)
        if pre.lookup == "region":
            region = self._region(did)
            if region is None:
                return [], "the quantum has no sky region"
            refs = self.repo.query_datasets(pre.dataset_type, self.collections, region=region)
            return [(r, None) for r in refs], f"no {pre.dataset_type} overlaps the quantum's region"
        self.builder.existing(pre.dataset_type)
        dims = normalize_dimensions(tuple(pre.dimensions))
        shared = tuple(k for k in (*dims, *implied_dimensions(dims)) if k in tdef.quantum_keys)
        if pre.where:
            idx = self.builder.filtered_index(pre.dataset_type, dims, shared, pre.where,
                                              f"task {tdef.label!r} prerequisite {name!r}")
        else:
            idx = self.builder.index(pre.dataset_type, shared)
        hits = idx.get(tuple(did.get(k) for k in shared), [])
        return list(hits), f"no {pre.dataset_type} with these data-ID values in {self.collections}"

    def find(self, tdef: TaskDef, did: dict[str, Any],
             inputs: dict[str, list[DatasetRef]] | None = None) -> PrerequisiteResult | None:
        """Prerequisites of one quantum; None when one with policy ``"drop"`` is missing (logged).

        ``inputs`` are the quantum's (non-prerequisite) inputs, whose exposure/visit times the
        ``latest``/``earliest``/``midpoint`` time rules use.
        """
        out = PrerequisiteResult()
        for name, pre in tdef.task.prerequisites.items():
            hits, why = self._one(tdef, name, pre, did, inputs or {})
            if hits:
                out.refs[name] = [r for r, _ in hits]
                out.upstream.update(q for _, q in hits if q is not None)
                continue
            policy = pre.on_missing
            self.absent[(tdef.label, name)] += 1
            if policy == "drop":
                _log.debug("task %s: prerequisite %s (%s) not found for %s: %s; quantum dropped",
                           tdef.label, name, pre.dataset_type, did, why)
                return None
            if policy == "none":
                _log.debug("task %s: optional prerequisite %s (%s) absent for %s: %s", tdef.label, name,
                           pre.dataset_type, did, why)
                out.absent_optional.append(name)
            else:
                out.missing[name] = f"required prerequisite {name!r} ({pre.dataset_type}) not found: {why}"
        return out

    def resolve(self, tdef: TaskDef, did: dict[str, Any]) -> dict[str, list[DatasetRef]] | None:
        """Prerequisites of one quantum (name → refs), or None when a required one is missing."""
        found = self.find(tdef, did)
        if found is None or found.missing:
            return None
        return found.refs

    def log_summary(self, tdef: TaskDef) -> None:
        """One log line per prerequisite of ``tdef`` that was absent for some quanta."""
        for name, pre in tdef.task.prerequisites.items():
            n = self.absent.get((tdef.label, name), 0)
            if n:
                what = {"none": "the task gets None", "fail": "those quanta will fail",
                        "drop": "those quanta are dropped"}[pre.on_missing]
                _log.warning("task %s: prerequisite %s (%s) not found for %d quanta in %s; %s", tdef.label,
                             name, pre.dataset_type, n, self.collections, what)

"""Which fields of the Rubin records a batch must decode: those the filters and outputs use.

The broker decodes only what the SQL filters name, what the filter table's own columns are
made from, and what the summary table writes; the other fields of ``diaSource`` and
``diaObject`` are skipped in the bytes (see :mod:`pachon.alerts.avro_decode`).  The SQL is
read conservatively: a record named other than as ``record.field`` (``diaSource`` alone,
``diaSource['snr']``, ``struct_extract(diaSource, ...)``, a ``*``, or a record name inside a
string) needs the whole record.  Python filters see the whole table, so with one of them
everything is decoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Needs", "ALWAYS_SOURCE_FIELDS", "sql_needs", "rubin_projection"]

#: diaSource fields the filter table and the summary are built from (ids, time, position,
#: band, flux for ``mag``/``magErr`` and the features, S/N).
ALWAYS_SOURCE_FIELDS = frozenset({
    "diaSourceId", "diaObjectId", "midpointMjdTai", "ra", "dec", "band", "psfFlux",
    "psfFluxErr", "snr"})

#: prvDiaSources fields the light-curve features use.
HISTORY_FIELDS = ("midpointMjdTai", "psfFlux", "band")

_RECORDS = {"diasource": "diaSource", "diaobject": "diaObject"}
_STRING = re.compile(r"'(?:[^']|'')*'")
_NAME = r'(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_$]*)'
_CHAIN = re.compile(rf"{_NAME}(?:\s*\.\s*{_NAME})*")


@dataclass(frozen=True)
class Needs:
    """Fields to decode per record: None for all of it, else lower-case field names."""

    everything: bool = False
    records: dict[str, frozenset[str] | None] = field(default_factory=dict)

    def union(self, other: Needs) -> Needs:
        """Fields either needs."""
        if self.everything or other.everything:
            return Needs(everything=True)
        merged: dict[str, frozenset[str] | None] = dict(self.records)
        for name, fields in other.records.items():
            if name in merged:
                mine = merged[name]
                merged[name] = None if mine is None or fields is None else mine | fields
            else:
                merged[name] = fields
        return Needs(records=merged)

    def key(self) -> tuple:
        """Hashable form (for caches)."""
        return (self.everything, tuple(sorted(
            (k, None if v is None else tuple(sorted(v))) for k, v in self.records.items())))


def sql_needs(where: str) -> Needs:
    """Record fields named by a SQL WHERE expression over the filter table.

    Parameters
    ----------
    where
        The expression (e.g. ``"diaSource.snr > 10 AND features.ndet >= 2"``).

    Returns
    -------
    Needs
        Per record (``diaSource``, ``diaObject``) the fields named, or None for the whole
        record when it is used otherwise than ``record.field``.
    """
    text = where
    for literal in _STRING.findall(text):
        if any(r in literal.lower() for r in _RECORDS):
            return Needs(everything=True)
    text = _STRING.sub("''", text)
    if "*" in text:
        return Needs(everything=True)
    records: dict[str, set[str] | None] = {}
    for match in _CHAIN.finditer(text):
        parts = [p.strip().strip('"').lower() for p in match.group(0).split(".")]
        if parts[0] == "alerts" and len(parts) > 1:  # the table's name as a qualifier
            parts = parts[1:]
        record = _RECORDS.get(parts[0])
        if record is None:
            continue
        if len(parts) == 1:
            records[record] = None
        elif records.get(record, set()) is not None:
            records.setdefault(record, set()).add(parts[1])
    return Needs(records={k: None if v is None else frozenset(v) for k, v in records.items()})


def rubin_projection(needs: Needs, record_fields: dict[str, Iterable[str]]) -> dict:
    """The decoder projection of a Rubin alert schema for ``needs``.

    Parameters
    ----------
    needs
        What the filters need.
    record_fields
        Field names of the schema's ``diaSource`` and ``diaObject`` records.

    Returns
    -------
    dict
        ``{"diaSource": ..., "diaObject": ..., "prvDiaSources": {...}}`` for
        :func:`pachon.alerts.avro_decode.decode_records`; ``diaObject`` only when needed.
    """
    history = {name: True for name in HISTORY_FIELDS}
    if needs.everything:
        return {"diaSource": True, "diaObject": True, "prvDiaSources": history}
    out: dict = {"prvDiaSources": history}
    for record in ("diaSource", "diaObject"):
        wanted = needs.records.get(record, frozenset())
        if record == "diaSource" and wanted is not None:
            wanted = wanted | {f.lower() for f in ALWAYS_SOURCE_FIELDS}
        if wanted is None:
            out[record] = True
        elif wanted:
            chosen = {name: True for name in record_fields[record] if name.lower() in wanted}
            if chosen:
                out[record] = chosen
    return out

"""The Alert Production Database facade: :class:`Apdb`.

Rows go in and come out with the Rubin column names of ``apdb.yaml``.  Inputs may be
pyarrow Tables, pandas DataFrames or sequences of dicts; outputs are pyarrow Tables typed by
:func:`pachon.core.schemas.arrow_schema` (without our ``pixelId`` column).

DiaObjects are versioned: each store of an object adds a row with ``validityStartMjdTai``
= the visit time and closes the previous version (``validityEndMjdTai``); the open version
is the "last" one, also mirrored in ``DiaObjectLast``.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from pachon.apdb.database import connect, create_tables, write_transaction
from pachon.apdb.tables import APDB_PIXEL_LEVEL, SPATIAL_TABLES, STORE_TABLE, make_metadata
from pachon.core.errors import ConfigError

__all__ = ["Apdb", "StoreResult"]

log = logging.getLogger(__name__)

_CHUNK = 900  # ids per IN (...) clause


@dataclasses.dataclass(frozen=True)
class StoreResult:
    """What :meth:`Apdb.store` did.

    Attributes
    ----------
    visit, detector
        The (visit, detector) stored.
    already_stored
        True when it had been stored before: nothing was written.
    n_dia_objects, n_dia_sources, n_dia_forced_sources
        Rows written.
    """

    visit: int
    detector: int
    already_stored: bool
    n_dia_objects: int = 0
    n_dia_sources: int = 0
    n_dia_forced_sources: int = 0


def _to_rows(data: Any) -> list[dict[str, Any]]:
    if data is None:
        return []
    if hasattr(data, "to_pylist"):
        return data.to_pylist()
    if hasattr(data, "to_dict") and hasattr(data, "columns"):
        return data.to_dict("records")
    return [dict(r) for r in data]


def _clean(rows: list[dict[str, Any]], columns: Sequence[str], table: str) -> list[dict]:
    """Keep the table's columns, NaN → None, numpy scalars → Python, pixelId added."""
    out = []
    for row in rows:
        clean = {}
        for name in columns:
            value = row.get(name)
            if isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, float) and math.isnan(value):
                value = None
            clean[name] = value
        out.append(clean)
    if table in SPATIAL_TABLES and out:
        from pachon.core.skypix import SkyPixelization

        try:
            ra = np.array([r["ra"] for r in out], float)
            dec = np.array([r["dec"] for r in out], float)
        except TypeError:
            raise ConfigError(f"{table} rows need ra and dec to be stored in the APDB") from None
        for r, pix in zip(out, SkyPixelization(APDB_PIXEL_LEVEL).index(ra, dec).tolist(), strict=True):
            r["pixelId"] = pix
    return out


def _pixel_ranges(pixels: np.ndarray) -> list[tuple[int, int]]:
    if pixels.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(pixels) != 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [pixels.size - 1]])
    return [(int(pixels[s]), int(pixels[e])) for s, e in zip(starts, ends, strict=True)]


class Apdb:
    """The Alert Production Database on SQLite (default) or PostgreSQL.

    Parameters
    ----------
    url
        SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://...``).  The tables
        are created when missing.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = connect(url)
        self.metadata = make_metadata()
        self.tables = self.metadata.tables
        create_tables(self.engine)

    def __repr__(self) -> str:
        return f"Apdb({self.url!r})"

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def _columns(self, table: str) -> list[str]:
        return [c.name for c in self.tables[table].columns if c.name != "pixelId"]

    def store(
        self,
        visit_time: float,
        dia_objects: Any,
        dia_sources: Any,
        dia_forced_sources: Any = None,
        *,
        ss_sources: Any = None,
        visit: int | None = None,
        detector: int | None = None,
    ) -> StoreResult:
        """Store the products of one detector of one visit, in one transaction.

        Parameters
        ----------
        visit_time
            Visit midpoint, MJD TAI: the ``validityStartMjdTai`` of the new DiaObject versions.
        dia_objects
            New versions of every DiaObject created or updated by this detector.
        dia_sources, dia_forced_sources, ss_sources
            The new rows.
        visit, detector
            Needed only when ``dia_sources`` is empty; otherwise taken from it.

        Returns
        -------
        StoreResult
            With ``already_stored=True`` (and nothing written) when this (visit, detector)
            had been stored before: re-running a visit never duplicates rows.
        """
        import sqlalchemy as sa

        sources = _clean(_to_rows(dia_sources), self._columns("DiaSource"), "DiaSource")
        pairs = {(r["visit"], r["detector"]) for r in sources}
        if visit is not None and detector is not None:
            pairs.add((int(visit), int(detector)))
        if len(pairs) != 1:
            raise ConfigError(
                f"Apdb.store stores one (visit, detector) at a time; got {sorted(pairs)[:5]} "
                "(pass visit= and detector= when there are no DiaSources)"
            )
        visit, detector = pairs.pop()
        objects = _clean(_to_rows(dia_objects), self._columns("DiaObject"), "DiaObject")
        for row in objects:
            row["validityStartMjdTai"] = float(visit_time)
            row["validityEndMjdTai"] = None
        forced = _clean(
            _to_rows(dia_forced_sources), self._columns("DiaForcedSource"), "DiaForcedSource"
        )
        ss_rows = _clean(_to_rows(ss_sources), self._columns("SSSource"), "SSSource")
        t = self.tables
        with write_transaction(self.engine) as conn:
            store = t[STORE_TABLE]
            done = conn.execute(
                sa.select(store.c.visit).where(
                    store.c.visit == visit, store.c.detector == detector
                )
            ).first()
            if done is not None:
                log.info("visit %s detector %s is already in the APDB: skipped", visit, detector)
                return StoreResult(visit, detector, True)
            self._write_objects(conn, objects, float(visit_time))
            for name, rows in (
                ("DiaSource", sources), ("DiaForcedSource", forced), ("SSSource", ss_rows)
            ):
                if rows:
                    conn.execute(t[name].insert(), rows)
            conn.execute(store.insert(), [{
                "visit": visit, "detector": detector, "visitTimeMjdTai": float(visit_time),
                "nDiaObjects": len(objects), "nDiaSources": len(sources),
                "nDiaForcedSources": len(forced),
                "storedAt": datetime.datetime.now(datetime.UTC).replace(tzinfo=None),
            }])
        log.debug("stored visit %s detector %s: %d objects, %d sources, %d forced",
                  visit, detector, len(objects), len(sources), len(forced))
        return StoreResult(visit, detector, False, len(objects), len(sources), len(forced))

    def _write_objects(self, conn: Any, objects: list[dict], visit_time: float) -> None:
        if not objects:
            return
        obj, last = self.tables["DiaObject"], self.tables["DiaObjectLast"]
        ids = [r["diaObjectId"] for r in objects]
        last_columns = [c.name for c in last.columns]
        for chunk in (ids[i:i + _CHUNK] for i in range(0, len(ids), _CHUNK)):
            # another detector of this visit may have written a version at the same time
            conn.execute(obj.delete().where(
                obj.c.diaObjectId.in_(chunk), obj.c.validityStartMjdTai == visit_time
            ))
            conn.execute(obj.update().where(
                obj.c.diaObjectId.in_(chunk),
                obj.c.validityEndMjdTai.is_(None),
                obj.c.validityStartMjdTai < visit_time,
            ).values(validityEndMjdTai=visit_time))
            conn.execute(last.delete().where(last.c.diaObjectId.in_(chunk)))
        conn.execute(obj.insert(), objects)
        conn.execute(last.insert(), [{k: r[k] for k in last_columns} for r in objects])

    def _select(self, table: str, where: Any, chunks: Iterable[Any] | None = None) -> Any:
        import pyarrow as pa
        import sqlalchemy as sa

        from pachon.core.schemas import arrow_schema

        columns = self._columns(table)
        tab = self.tables[table]
        rows: list[dict] = []
        with self.engine.connect() as conn:
            for clause in chunks if chunks is not None else [where]:
                query = sa.select(*[tab.c[c] for c in columns]).where(clause)
                rows.extend(dict(r._mapping) for r in conn.execute(query))
        return pa.Table.from_pylist(rows, schema=arrow_schema("apdb", table))

    def get_dia_objects(self, region: Any) -> Any:
        """The last version of every DiaObject inside a region.

        Parameters
        ----------
        region
            A :class:`pachon.core.sphgeom.Region` (a detector's polygon, a circle, ...).

        Returns
        -------
        pyarrow.Table
            DiaObject rows (``validityEndMjdTai`` null).
        """
        import sqlalchemy as sa

        from pachon.core.skypix import SkyPixelization

        tab = self.tables["DiaObject"]
        ranges = _pixel_ranges(SkyPixelization(APDB_PIXEL_LEVEL).envelope(region))
        if not ranges:
            return self._select("DiaObject", sa.false())
        spatial = sa.or_(*[tab.c.pixelId.between(a, b) for a, b in ranges])
        table = self._select("DiaObject", sa.and_(tab.c.validityEndMjdTai.is_(None), spatial))
        if table.num_rows == 0:
            return table
        inside = region.contains(table.column("ra").to_numpy(), table.column("dec").to_numpy())
        return table.filter(np.asarray(inside, bool))

    def get_dia_object_history(self, object_ids: Sequence[int]) -> Any:
        """Every stored version of the given DiaObjects, oldest first.

        Parameters
        ----------
        object_ids
            DiaObject ids.

        Returns
        -------
        pyarrow.Table
        """
        table = self._by_ids("DiaObject", object_ids, None)
        return table.sort_by([("diaObjectId", "ascending"), ("validityStartMjdTai", "ascending")])

    def _by_ids(self, table: str, object_ids: Sequence[int], since: float | None,
                time_column: str = "midpointMjdTai") -> Any:
        import sqlalchemy as sa

        tab = self.tables[table]
        ids = sorted({int(i) for i in np.asarray(object_ids).ravel().tolist()})
        clauses = []
        for i in range(0, max(len(ids), 1), _CHUNK):
            clause = tab.c.diaObjectId.in_(ids[i:i + _CHUNK])
            if since is not None:
                clause = sa.and_(clause, tab.c[time_column] >= float(since))
            clauses.append(clause)
        return self._select(table, None, clauses)

    def get_dia_sources(self, object_ids: Sequence[int], since: float | None = None) -> Any:
        """DiaSources of the given DiaObjects, optionally since a time.

        Parameters
        ----------
        object_ids
            DiaObject ids.
        since
            Earliest ``midpointMjdTai`` (MJD TAI), e.g. the visit time minus 365.25 days for
            the 12 months of history that alerts carry; None for all.

        Returns
        -------
        pyarrow.Table
            Sorted by object then time.
        """
        table = self._by_ids("DiaSource", object_ids, since)
        return table.sort_by([("diaObjectId", "ascending"), ("midpointMjdTai", "ascending")])

    def get_dia_forced_sources(
        self, object_ids: Sequence[int], since: float | None = None
    ) -> Any:
        """DiaForcedSources of the given DiaObjects, optionally since a time.

        Parameters
        ----------
        object_ids
            DiaObject ids.
        since
            Earliest ``midpointMjdTai`` (MJD TAI); None for all.

        Returns
        -------
        pyarrow.Table
            Sorted by object then time.
        """
        table = self._by_ids("DiaForcedSource", object_ids, since)
        return table.sort_by([("diaObjectId", "ascending"), ("midpointMjdTai", "ascending")])

    def stored_detectors(self, visit: int) -> list[int]:
        """The detectors of a visit already stored.

        Parameters
        ----------
        visit
            Visit id.

        Returns
        -------
        list of int
        """
        import sqlalchemy as sa

        store = self.tables[STORE_TABLE]
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(store.c.detector).where(store.c.visit == int(visit))
            ).scalars()
            return sorted(rows)

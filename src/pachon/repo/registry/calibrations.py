"""CALIBRATION collections: certify datasets with validity ranges, decertify, look up."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from pachon.core.errors import CollectionError, ConfigError, ConflictError, DatasetNotFoundError
from pachon.repo.refs import DatasetRef, data_key
from pachon.repo.registry.collections import CollectionType
from pachon.repo.times import MAX_NS, MIN_NS, to_ns

__all__ = ["CalibrationsMixin", "NotCalibrationError"]

_log = logging.getLogger(__name__)


class NotCalibrationError(CollectionError, ConfigError):
    """A dataset of a non-calibration type was given to certify (a CollectionError and a
    ConfigError: both were documented)."""


def _time_arg(name: str, value: Any, default: int) -> int:
    if value is None:
        return default
    try:
        return to_ns(value)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise ConfigError(
            f"{name} must be an astropy Time, an ISO time string (TAI) or int ns TAI, "
            f"got {value!r} ({exc})"
        ) from None


def _range(begin: Any, end: Any) -> tuple[int, int]:
    b = _time_arg("begin", begin, MIN_NS)
    e = _time_arg("end", end, MAX_NS)
    if b >= e:
        raise ConflictError(f"validity range begin ({begin}) must be before end ({end})")
    return b, e


class CalibrationsMixin:
    """Certification methods of the registry."""

    def _calib_collection(self, name: str) -> int:
        cid, ctype = self._collection(name)
        if ctype is not CollectionType.CALIBRATION:
            raise CollectionError(
                f"collection {name!r} is {ctype.value}; certification needs a CALIBRATION one"
            )
        return cid

    def certify(
        self, collection: str, refs: Iterable[DatasetRef], begin: Any = None, end: Any = None
    ) -> None:
        """Certify datasets as valid over ``[begin, end)`` (None: unbounded).

        Raises
        ------
        ConflictError
            Another certification of the same dataset type and data ID overlaps the range.
        """
        cid = self._calib_collection(collection)
        b, e = _range(begin, end)
        calib = self.db.tables["calib"]
        refs = list(refs)
        names = self._type_names()
        with self.db.transaction() as conn:
            rows = {r.id: r for r in self._dataset_rows(conn, [r.id for r in refs])}
            for ref in refs:
                row = rows.get(ref.id)
                if row is None:
                    raise DatasetNotFoundError(
                        f"cannot certify {ref}: dataset id {ref.id} is not registered; put or "
                        f"ingest it first"
                    )
                if row.dataset_type_id not in names:
                    names = self._type_names()
                type_id, dt = self._dataset_type_row(names[row.dataset_type_id])
                if not dt.is_calibration:
                    raise NotCalibrationError(
                        f"dataset type {dt.name!r} is not a calibration type "
                        f"(register it with is_calibration=True) and cannot be certified"
                    )
                key = row.data_key
                clash = conn.execute(
                    sa.select(calib.c.dataset_id, calib.c.begin_ns, calib.c.end_ns).where(
                        calib.c.collection_id == cid,
                        calib.c.dataset_type_id == type_id,
                        calib.c.data_key == key,
                        calib.c.begin_ns < e,
                        calib.c.end_ns > b,
                    )
                ).first()
                if clash is not None:
                    raise ConflictError(
                        f"{dt.name} {key} in {collection!r}: dataset {clash.dataset_id} is already "
                        f"certified over [{clash.begin_ns}, {clash.end_ns}) ns TAI, "
                        f"which overlaps the new range; decertify that range first"
                    )
                conn.execute(
                    calib.insert().values(
                        collection_id=cid,
                        dataset_id=row.id,
                        dataset_type_id=type_id,
                        data_key=key,
                        begin_ns=b,
                        end_ns=e,
                    )
                )

    def decertify(
        self,
        collection: str,
        dataset_type: str,
        begin: Any = None,
        end: Any = None,
        *,
        data_ids: Iterable[dict[str, Any]] | None = None,
    ) -> int:
        """Remove validity over ``[begin, end)``; ranges that stick out are split and kept.

        Returns
        -------
        count
            Number of certifications touched.
        """
        cid = self._calib_collection(collection)
        type_id, dt = self._dataset_type_row(dataset_type)
        b, e = _range(begin, end)
        calib = self.db.tables["calib"]
        conds = [
            calib.c.collection_id == cid,
            calib.c.dataset_type_id == type_id,
            calib.c.begin_ns < e,
            calib.c.end_ns > b,
        ]
        if data_ids is not None:
            conds.append(calib.c.data_key.in_([data_key(dt.dimensions, d) for d in data_ids]))
        with self.db.transaction() as conn:
            rows = conn.execute(sa.select(calib).where(*conds)).all()
            for row in rows:
                conn.execute(calib.delete().where(calib.c.id == row.id))
                keep = [(row.begin_ns, b), (e, row.end_ns)]
                for kb, ke in keep:
                    if kb < ke and (kb, ke) != (row.begin_ns, row.end_ns):
                        conn.execute(
                            calib.insert().values(
                                collection_id=cid,
                                dataset_id=row.dataset_id,
                                dataset_type_id=type_id,
                                data_key=row.data_key,
                                begin_ns=kb,
                                end_ns=ke,
                            )
                        )
        return len(rows)

    def certifications(self, collection: str, dataset_type: str | None = None) -> list[dict[str, Any]]:
        """Certifications of a CALIBRATION collection: dataset_id, data_key, begin_ns, end_ns."""
        cid = self._calib_collection(collection)
        calib = self.db.tables["calib"]
        q = sa.select(
            calib.c.dataset_id, calib.c.dataset_type_id, calib.c.data_key, calib.c.begin_ns, calib.c.end_ns
        ).where(calib.c.collection_id == cid)
        if dataset_type is not None:
            q = q.where(calib.c.dataset_type_id == self._dataset_type_row(dataset_type)[0])
        with self.db.reading() as conn:
            return [dict(r) for r in conn.execute(q.order_by(calib.c.data_key, calib.c.begin_ns)).mappings()]

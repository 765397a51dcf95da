"""CALIBRATION collections: certify datasets with validity ranges, decertify, look up."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from pachon.core.errors import CollectionError, ConflictError
from pachon.repo.refs import DatasetRef, data_key
from pachon.repo.registry.collections import CollectionType
from pachon.repo.times import MAX_NS, MIN_NS, to_ns

__all__ = ["CalibrationsMixin"]

_log = logging.getLogger(__name__)


def _range(begin: Any, end: Any) -> tuple[int, int]:
    b = MIN_NS if begin is None else to_ns(begin)
    e = MAX_NS if end is None else to_ns(end)
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
        with self.db.transaction() as conn:
            for ref in refs:
                type_id, dt = self._dataset_type_row(ref.dataset_type)
                if not dt.is_calibration:
                    raise CollectionError(
                        f"dataset type {dt.name!r} is not a calibration type "
                        f"(register it with is_calibration=True) and cannot be certified"
                    )
                key = data_key(dt.dimensions, ref.data_id)
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
                        dataset_id=ref.id,
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

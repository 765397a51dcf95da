"""Dataset types, dataset rows, file records and provenance."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from pachon.core.errors import CollectionError, ConflictError, DatasetNotFoundError
from pachon.repo.refs import DatasetRef, DatasetType
from pachon.repo.registry.collections import CollectionType
from pachon.repo.registry.tables import DATA_ID_COLUMNS

__all__ = ["DatasetsMixin", "FileRecord", "NewDataset"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileRecord:
    """Where and what a dataset's file is: path relative to the datastore root, size, checksum."""

    dataset_id: uuid.UUID
    path: str
    size: int
    checksum: str
    storage_class: str
    format: str
    source: str | None = None
    transfer: str | None = None


@dataclass
class NewDataset:
    """Everything one dataset insertion writes: the ref, its file and its provenance."""

    ref: DatasetRef
    data_key: str
    file: FileRecord
    provenance: dict[str, Any]
    inputs: Sequence[uuid.UUID] = ()


class DatasetsMixin:
    """Dataset methods of the registry (needs ``self.db``, ``self._type_cache``)."""

    def register_dataset_type(self, dataset_type: DatasetType) -> bool:
        """Register a dataset type; False when an identical one exists.

        Raises
        ------
        ConflictError
            A type with that name exists with other dimensions, storage class or calibration flag.
        """
        try:
            old = self.get_dataset_type(dataset_type.name)
        except DatasetNotFoundError:
            old = None
        if old is not None:
            if old != dataset_type:
                raise ConflictError(
                    f"dataset type {dataset_type.name!r} is already registered as {old}; "
                    f"cannot redefine it as {dataset_type}"
                )
            return False
        table = self.db.tables["dataset_type"]
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    table.insert().values(
                        name=dataset_type.name,
                        dimensions=",".join(dataset_type.dimensions),
                        storage_class=dataset_type.storage_class,
                        is_calibration=dataset_type.is_calibration,
                    )
                )
        except sa.exc.IntegrityError:
            if self.db._conn is not None:  # inside an outer transaction: it is aborted anyway
                raise
            return self.register_dataset_type(dataset_type)  # registered concurrently: compare
        return True

    def _dataset_type_row(self, name: str) -> tuple[int, DatasetType]:
        hit = self._type_cache.get(name)
        if hit is not None:
            return hit
        table = self.db.tables["dataset_type"]
        with self.db.reading() as conn:
            row = conn.execute(sa.select(table).where(table.c.name == name)).first()
        if row is None:
            raise DatasetNotFoundError(
                f"dataset type {name!r} is not registered; register_dataset_type first "
                f"(list them with Repository.registry.list_dataset_types())"
            )
        dt = DatasetType(
            row.name,
            tuple(row.dimensions.split(",")) if row.dimensions else (),
            row.storage_class,
            bool(row.is_calibration),
        )
        self._type_cache[name] = (row.id, dt)
        return row.id, dt

    def get_dataset_type(self, name: str) -> DatasetType:
        """The registered dataset type ``name`` (raises `DatasetNotFoundError`)."""
        return self._dataset_type_row(name)[1]

    def list_dataset_types(self) -> list[DatasetType]:
        """Every registered dataset type, by name."""
        table = self.db.tables["dataset_type"]
        with self.db.reading() as conn:
            names = list(conn.execute(sa.select(table.c.name).order_by(table.c.name)).scalars())
        return [self.get_dataset_type(n) for n in names]

    def insert_datasets(self, run: str, items: Sequence[NewDataset]) -> None:
        """Insert datasets with their file records and provenance in one transaction (bulk).

        Raises
        ------
        ConflictError
            A dataset of that type and data ID already exists in the run.
        """
        if not items:
            return
        run_id, rtype = self._collection(run)
        if rtype is not CollectionType.RUN:
            raise CollectionError(f"datasets can only be put into a RUN collection; {run!r} is {rtype.value}")
        t = self.db.tables
        ds_rows, file_rows, prov_rows, input_rows = [], [], [], []
        for item in items:
            type_id, _ = self._dataset_type_row(item.ref.dataset_type)
            row = {c: item.ref.data_id.get(c) for c in DATA_ID_COLUMNS}
            row.update(
                id=item.ref.id,
                dataset_type_id=type_id,
                run_id=run_id,
                data_key=item.data_key,
                ingest_time=item.provenance.get("created_ns"),
            )
            ds_rows.append(row)
            file_rows.append(vars(item.file).copy())
            prov_rows.append(
                {
                    "dataset_id": item.ref.id,
                    "run": run,
                    **{
                        k: item.provenance.get(k)
                        for k in (
                            "task",
                            "quantum_id",
                            "config_hash",
                            "software_version",
                            "host",
                            "created_ns",
                        )
                    },
                }
            )
            input_rows += [{"dataset_id": item.ref.id, "input_id": i} for i in dict.fromkeys(item.inputs)]
        try:
            with self.db.transaction() as conn:
                conn.execute(t["dataset"].insert(), ds_rows)
                conn.execute(t["file_record"].insert(), file_rows)
                conn.execute(t["provenance"].insert(), prov_rows)
                if input_rows:
                    conn.execute(t["dataset_input"].insert(), input_rows)
        except sa.exc.IntegrityError as exc:
            first = items[0]
            raise ConflictError(
                f"cannot insert {len(items)} dataset(s) into run {run!r} (first: {first.ref.dataset_type} "
                f"{first.data_key}): a dataset with that type and data ID, or that id or file path, "
                f"already exists; remove it first or use another run"
            ) from exc
        self.db.note_growth(len(ds_rows))

    def _dataset_rows(self, conn: sa.Connection, ids: Iterable[uuid.UUID]) -> list[Any]:
        ds = self.db.tables["dataset"]
        ids = list(ids)
        out = []
        for start in range(0, len(ids), 500):
            out += conn.execute(sa.select(ds).where(ds.c.id.in_(ids[start : start + 500]))).all()
        return out

    def _refs_from_rows(self, rows: Iterable[Any]) -> list[DatasetRef]:
        names = self._type_names()
        runs = self._run_names()
        out = []
        for row in rows:
            dt = self._dataset_type_row(names[row.dataset_type_id])[1]
            keys = (*dt.dimensions, *dt.implied)
            data_id = {
                c: getattr(row, c) for c in DATA_ID_COLUMNS if c in keys and getattr(row, c) is not None
            }
            out.append(DatasetRef(row.id, dt.name, data_id, runs[row.run_id]))
        return out

    def _type_names(self) -> dict[int, str]:
        table = self.db.tables["dataset_type"]
        with self.db.reading() as conn:
            return {r.id: r.name for r in conn.execute(sa.select(table.c.id, table.c.name))}

    def _run_names(self) -> dict[int, str]:
        table = self.db.tables["collection"]
        with self.db.reading() as conn:
            return {
                r.id: r.name
                for r in conn.execute(sa.select(table.c.id, table.c.name).where(table.c.type == "RUN"))
            }

    def get_dataset(self, dataset_id: uuid.UUID | str) -> DatasetRef | None:
        """The dataset with this id, or None."""
        with self.db.reading() as conn:
            rows = self._dataset_rows(conn, [uuid.UUID(str(dataset_id))])
        return self._refs_from_rows(rows)[0] if rows else None

    def file_records(self, ids: Iterable[uuid.UUID] | None = None) -> list[FileRecord]:
        """File records of the given datasets (all of them when ``ids`` is None)."""
        table = self.db.tables["file_record"]
        with self.db.reading() as conn:
            if ids is None:
                rows = conn.execute(sa.select(table)).mappings().all()
            else:
                ids = list(ids)
                rows = []
                for s in range(0, len(ids), 500):
                    rows += conn.execute(
                        sa.select(table).where(table.c.dataset_id.in_(ids[s : s + 500]))
                    ).mappings()
        return [FileRecord(**r) for r in rows]

    def delete_datasets(self, ids: Iterable[uuid.UUID]) -> int:
        """Delete dataset rows (with their tags, certifications, file records, provenance)."""
        ids = list(ids)
        ds = self.db.tables["dataset"]
        n = 0
        with self.db.transaction() as conn:
            for s in range(0, len(ids), 500):
                chunk = ids[s : s + 500]
                for name in ("dataset_tag", "calib", "file_record", "provenance", "dataset_input"):
                    table = self.db.tables[name]
                    conn.execute(table.delete().where(table.c.dataset_id.in_(chunk)))
                n += conn.execute(ds.delete().where(ds.c.id.in_(chunk))).rowcount
        return n

    def provenance(self, dataset_id: uuid.UUID) -> tuple[dict[str, Any], list[uuid.UUID]]:
        """The provenance record of a dataset and the ids of its inputs."""
        prov, inputs = self.db.tables["provenance"], self.db.tables["dataset_input"]
        with self.db.reading() as conn:
            row = conn.execute(sa.select(prov).where(prov.c.dataset_id == dataset_id)).mappings().first()
            ids = list(
                conn.execute(
                    sa.select(inputs.c.input_id)
                    .where(inputs.c.dataset_id == dataset_id)
                    .order_by(inputs.c.input_id)
                ).scalars()
            )
        if row is None:
            raise DatasetNotFoundError(f"no provenance for dataset {dataset_id}: it is not in the registry")
        return dict(row), ids

    def derived_ids(self, dataset_id: uuid.UUID) -> list[uuid.UUID]:
        """Ids of datasets that list ``dataset_id`` among their inputs."""
        inputs = self.db.tables["dataset_input"]
        with self.db.reading() as conn:
            return list(
                conn.execute(sa.select(inputs.c.dataset_id).where(inputs.c.input_id == dataset_id)).scalars()
            )

"""The `Repository` facade: registry + datastore behind one small API."""

from __future__ import annotations

import logging
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pachon.core.errors import ConflictError, DatasetNotFoundError, RepositoryError
from pachon.repo.config import RepoConfig
from pachon.repo.datastore import Datastore
from pachon.repo.formatters import check_object, get_storage_class
from pachon.repo.refs import DatasetRef, DatasetType, coerce_value, data_key
from pachon.repo.registry import CollectionType, FileRecord, NewDataset, Registry

__all__ = ["Repository", "Provenance", "now_ns"]

_log = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# TAI − UTC since 2017-01-01 (no leap second announced since)
_TAI_MINUS_UTC_NS = 37_000_000_000


def now_ns() -> int:
    """The current time in ns TAI."""
    return time.time_ns() + _TAI_MINUS_UTC_NS


@dataclass(frozen=True)
class Provenance:
    """Who made a dataset: its provenance record and its input datasets."""

    ref: DatasetRef
    run: str
    task: str | None
    quantum_id: str | None
    config_hash: str | None
    software_version: str | None
    host: str | None
    created_ns: int | None
    inputs: list[DatasetRef]


def _retry_once(func: Callable[[], None], registry: Registry) -> None:
    """Run ``func``; when another process inserted the same records meanwhile (a conflict
    found by the database, not by the comparison), run it once more to compare them."""
    try:
        func()
    except ConflictError as exc:
        if registry.db._conn is not None or "meanwhile" not in str(exc):
            raise
        func()


def _created_paths(root: Path) -> list[Path]:
    """Files and folders a `Repository.create` in ``root`` may make."""
    from pachon.repo.config import CONFIG_NAME

    names = [CONFIG_NAME, "datastore"] + [f"registry.sqlite3{s}" for s in ("", "-wal", "-shm", "-journal")]
    return [root / n for n in names]


def _cleanup_failed_create(root: Path, made: list[Path], before: set[Path]) -> None:
    """Remove what a failed `Repository.create` made (never what existed before it)."""
    for path in _created_paths(root):
        if path in before:
            continue
        if path.is_dir():
            try:
                path.rmdir()
            except OSError:
                _log.warning("left %s behind: it is not empty", path)
        elif path.is_file():
            path.unlink(missing_ok=True)
    for folder in made:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            break


class Repository:
    """A data repository: registry (SQL) and datastore (files).

    Parameters
    ----------
    root
        Repository folder holding ``pachon.yaml``.

    Raises
    ------
    RepositoryError
        ``root`` is not a repository.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.config = RepoConfig.read(self.root)
        self.registry = Registry(self.config.registry_url, create=False)
        self.datastore = Datastore(self.config.datastore_location(self.root))

    @classmethod
    def create(
        cls, root: str | Path, registry_url: str | None = None, datastore_root: str | None = None
    ) -> Repository:
        """Create a repository in ``root`` (made if needed) and return it.

        Raises
        ------
        RepositoryError
            ``root`` already holds a repository.
        """
        root = Path(root).resolve()
        if (root / "pachon.yaml").exists():
            raise RepositoryError(
                f"{root} already holds a repository; open it with Repository({str(root)!r})"
            )
        made = [p for p in (root, *root.parents) if not p.exists()]
        root.mkdir(parents=True, exist_ok=True)
        cfg = RepoConfig.default(root)
        cfg = RepoConfig(registry_url or cfg.registry_url, datastore_root or cfg.datastore_root)
        before = {p for p in _created_paths(root) if p.exists()}
        try:
            Registry(cfg.registry_url, create=True).close()
            cfg.write(root)
            repo = cls(root)
        except BaseException:
            _cleanup_failed_create(root, made, before)
            raise
        _log.info("created repository %s (registry %s)", root, repo.registry.db.safe_url)
        return repo

    def close(self) -> None:
        """Release database connections."""
        self.registry.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- definitions -------------------------------------------------------------------------
    def register_dataset_type(
        self, name: str, dimensions: Sequence[str], storage_class: str, *, is_calibration: bool = False
    ) -> DatasetType:
        """Register (or check) a dataset type and return it."""
        get_storage_class(storage_class)
        dt = DatasetType(name, tuple(dimensions), storage_class, is_calibration)
        self.registry.register_dataset_type(dt)
        return dt

    def register_collection(
        self,
        name: str,
        type: str | CollectionType = "RUN",  # noqa: A002
        doc: str | None = None,
    ) -> bool:
        """Create a collection (RUN, TAGGED, CHAINED or CALIBRATION); False if it exists."""
        return self.registry.register_collection(name, type, doc)

    def insert_dimension_records(
        self, element: str, records: Iterable[dict[str, Any]], *, replace: bool = False
    ) -> int:
        """Insert (or check) dimension records; see `Registry.insert_dimension_records`."""
        records = list(records)
        if element == "physical_filter":
            bands = {r.get("band") for r in records} - {None}
            self.registry.insert_dimension_records("band", [{"name": b} for b in sorted(bands)])
        return self.registry.insert_dimension_records(element, records, replace=replace)

    def register_instrument(self, instrument: Any) -> None:
        """Insert an instrument's ``instrument``, ``detector`` and ``physical_filter`` records."""
        def insert() -> None:
            with self.registry.transaction():
                for element, records in instrument.dimension_records().items():
                    self.insert_dimension_records(element, records)

        _retry_once(insert, self.registry)

    def register_skymap(self, skymap: Any, *, tracts: Any = None) -> None:
        """Insert a sky map's ``skymap``, ``tract`` and ``patch`` records (regions indexed)."""
        recs = skymap.dimension_records() if tracts is None else skymap.dimension_records(tracts=tracts)
        def insert() -> None:
            with self.registry.transaction():
                for element in ("skymap", "tract", "patch"):
                    self.insert_dimension_records(element, recs.get(element, []))

        _retry_once(insert, self.registry)

    # -- writing -----------------------------------------------------------------------------
    def file_path(
        self, dataset_type: DatasetType, data_id: dict[str, Any], run: str, dataset_id: uuid.UUID
    ) -> str:
        """The datastore path (relative) of a new dataset's file."""
        parts = "_".join(_UNSAFE.sub("-", str(data_id[d])) for d in dataset_type.dimensions)
        ext = get_storage_class(dataset_type.storage_class).extension
        run_dir = "/".join(_UNSAFE.sub("_", p) for p in run.split("/") if p)
        return f"{run_dir}/{dataset_type.name}/{dataset_type.name}_{parts}_{dataset_id.hex[:8]}{ext}"

    def put(
        self,
        obj: Any,
        dataset_type: str,
        data_id: dict[str, Any],
        *,
        run: str,
        provenance: dict[str, Any] | None = None,
        inputs: Iterable[DatasetRef | uuid.UUID] = (),
    ) -> DatasetRef:
        """Store ``obj`` as a new dataset in ``run`` (created when missing).

        Parameters
        ----------
        obj
            The object; its type must suit the dataset type's storage class.
        dataset_type
            Registered dataset type name.
        data_id
            Values of the dataset type's dimensions (implied values are filled in).
        run
            RUN collection.
        provenance
            ``task``, ``quantum_id``, ``config_hash`` (software version, host and time are added).
        inputs
            Datasets this one was made from.

        Raises
        ------
        ConflictError
            The run already has a dataset of that type and data ID.
        """
        ref = DatasetRef(uuid.uuid4(), dataset_type, data_id, run)
        self.registry.register_collection(run, CollectionType.RUN)
        return self.put_many([(ref, obj)], run=run, provenance=provenance, inputs=inputs)[0]

    def put_many(
        self,
        items: Sequence[tuple[DatasetRef, Any]],
        *,
        run: str,
        provenance: dict[str, Any] | None = None,
        inputs: Iterable[DatasetRef | uuid.UUID] = (),
        before_commit: Callable[[], None] | None = None,
        expand_cache: dict | None = None,
    ) -> list[DatasetRef]:
        """Store several objects under caller-chosen ids, registered together or not at all.

        Files are written first (each atomically); then every dataset, file record and
        provenance row is inserted in one registry transaction.  If anything fails, the files
        written by this call are removed and nothing is registered.  A file left by an
        interrupted earlier attempt at the same (unregistered) id is replaced.

        Parameters
        ----------
        items
            ``(ref, obj)`` pairs; each ref gives the dataset id, type and data ID to use (its
            ``run`` is ignored).
        run
            Existing RUN collection.
        provenance
            ``task``, ``quantum_id``, ``config_hash`` (software version, host and time are added).
        inputs
            Datasets these were made from.
        before_commit
            Called after the files are written and before the transaction; raise to abort.
        expand_cache
            Dimension-record cache kept between calls, for writers of many datasets.

        Returns
        -------
        refs
            The registered refs, data IDs expanded.

        Raises
        ------
        ConflictError
            One of the ids or (type, data ID) pairs is already registered in ``run``; nothing
            is written.
        """
        cache = {} if expand_cache is None else expand_cache
        input_ids = [getattr(i, "id", i) for i in inputs]
        prov = self._provenance_row(provenance)
        already = self.registry.file_records([ref.id for ref, _ in items])
        if already:
            raise ConflictError(
                f"dataset id {already[0].dataset_id} is already registered (file {already[0].path}); "
                f"nothing was written"
            )
        new: list[NewDataset] = []
        written: list[tuple[uuid.UUID, str]] = []
        try:
            for ref, obj in items:
                dt = self.registry.get_dataset_type(ref.dataset_type)
                sc = get_storage_class(dt.storage_class)
                check_object(sc, obj, dt.name)
                expanded = self.registry.expand_data_id(dt, ref.data_id, cache)
                key = data_key(dt.dimensions, expanded)
                if self.registry.query_datasets(
                    dt.name, run, data_id={d: expanded[d] for d in dt.dimensions}, find_first=False
                ):
                    raise ConflictError(
                        f"run {run!r} already holds {dt.name} {key}; remove it first or use another run"
                    )
                path = self.file_path(dt, expanded, run, ref.id)
                replace = False
                if self.datastore.exists(path):
                    if self.registry.file_records([ref.id]):
                        raise ConflictError(
                            f"dataset id {ref.id} was registered meanwhile (file {path}); "
                            f"nothing was written"
                        )
                    _log.info("replacing %s left by an interrupted attempt", path)
                    replace = True
                size, checksum = self.datastore.write(obj, sc, path, replace=replace)
                written.append((ref.id, path))
                final = DatasetRef(ref.id, dt.name, expanded, run)
                record = FileRecord(ref.id, path, size, checksum, sc.name, sc.format)
                new.append(NewDataset(final, key, record, prov, input_ids))
            if before_commit is not None:
                before_commit()
            self.registry.insert_datasets(run, new)
        except BaseException:
            self._discard_unregistered(written)
            raise
        return [n.ref for n in new]

    def _discard_unregistered(self, written: list[tuple[uuid.UUID, str]]) -> None:
        """Remove files written by a failed put, except those a dataset record points to."""
        if not written:
            return
        try:
            registered = {r.path for r in self.registry.file_records([i for i, _ in written])}
        except Exception:  # noqa: BLE001 - cannot tell: keep them (check --fix removes orphans)
            _log.warning("kept %d files of a failed put: could not read the registry", len(written))
            return
        for _, path in written:
            if path not in registered:
                self.datastore.remove(path)

    @staticmethod
    def _provenance_row(provenance: dict[str, Any] | None) -> dict[str, Any]:
        from pachon import __version__

        row = {"software_version": __version__, "host": socket.gethostname(), "created_ns": now_ns()}
        row.update(provenance or {})
        return row

    # -- reading -----------------------------------------------------------------------------
    def find_dataset(
        self,
        dataset_type: str,
        data_id: dict[str, Any],
        *,
        collections: str | Sequence[str],
        time: Any = None,
    ) -> DatasetRef | None:
        """The dataset of this type and data ID found first in ``collections`` (or None).

        Keys of ``data_id`` that are not dimensions of the type are ignored, so a raw's data ID
        can look up its bias; ``time`` picks the certification valid then in CALIBRATION
        collections.
        """
        dt = self.registry.get_dataset_type(dataset_type)
        missing = [d for d in dt.dimensions if d not in data_id]
        if missing:
            from pachon.core.errors import DataIdError

            raise DataIdError(
                f"data ID {data_id!r} lacks {missing[0]!r} needed by {dataset_type} "
                f"(dimensions: {', '.join(dt.dimensions)})"
            )
        did = {d: coerce_value(d, data_id[d]) for d in dt.dimensions}
        refs = self.registry.query_datasets(dataset_type, collections, data_id=did, time=time)
        if len(refs) > 1:
            from pachon.core.errors import DataIdError

            raise DataIdError(
                f"{dataset_type} {did} matches {len(refs)} datasets in {collections} "
                f"(several validity ranges?); pass time=..."
            )
        return refs[0] if refs else None

    def _resolve(
        self,
        ref_or_type: DatasetRef | str,
        data_id: dict[str, Any] | None,
        collections: str | Sequence[str] | None,
        time: Any,
    ) -> DatasetRef:
        if isinstance(ref_or_type, DatasetRef):
            return ref_or_type
        if collections is None:
            from pachon.core.errors import CollectionError

            raise CollectionError(f"get/exists of {ref_or_type!r} by data ID needs collections=...")
        ref = self.find_dataset(ref_or_type, data_id or {}, collections=collections, time=time)
        if ref is None:
            raise DatasetNotFoundError(
                f"no {ref_or_type} with data ID {data_id} in collections {collections}"
            )
        return ref

    def get(
        self,
        ref_or_type: DatasetRef | str,
        data_id: dict[str, Any] | None = None,
        *,
        collections: str | Sequence[str] | None = None,
        parameters: dict[str, Any] | None = None,
        time: Any = None,
    ) -> Any:
        """Read a dataset, by ref or by type + data ID + collections.

        ``parameters`` are storage-class read options such as ``{"bbox": Box(...)}``.
        """
        ref = self._resolve(ref_or_type, data_id, collections, time)
        recs = self.registry.file_records([ref.id])
        if not recs:
            raise DatasetNotFoundError(f"dataset {ref} has no file record; it was removed")
        rec = recs[0]
        return self.datastore.read(rec.path, get_storage_class(rec.storage_class), parameters or {})

    def exists(
        self,
        ref_or_type: DatasetRef | str,
        data_id: dict[str, Any] | None = None,
        *,
        collections: str | Sequence[str] | None = None,
        time: Any = None,
    ) -> bool:
        """Whether the dataset is registered and its file is present."""
        try:
            ref = self._resolve(ref_or_type, data_id, collections, time)
        except DatasetNotFoundError:
            return False
        recs = self.registry.file_records([ref.id])
        return bool(recs) and self.datastore.exists(recs[0].path)

    def query_datasets(
        self, dataset_type: str, collections: str | Sequence[str], **kwargs: Any
    ) -> list[DatasetRef]:
        """See `Registry.query_datasets` (``where``, ``bind``, ``data_id``, ``find_first``, ``time``,
        ``region``)."""
        return self.registry.query_datasets(dataset_type, collections, **kwargs)

    def query_data_ids(self, dimensions: Sequence[str], **kwargs: Any) -> list[dict[str, Any]]:
        """See `Registry.query_data_ids`."""
        return self.registry.query_data_ids(dimensions, **kwargs)

    def query_dimension_records(self, element: str, **kwargs: Any) -> list[dict[str, Any]]:
        """See `Registry.query_dimension_records`."""
        return self.registry.query_dimension_records(element, **kwargs)

    # -- definitions and collections (read) ---------------------------------------------------
    def get_dataset(self, dataset_id: uuid.UUID) -> DatasetRef | None:
        """The dataset with this id, or None."""
        return self.registry.get_dataset(dataset_id)

    def get_dataset_type(self, name: str) -> DatasetType:
        """A registered dataset type (raises `DatasetNotFoundError`-like errors naming it)."""
        return self.registry.get_dataset_type(name)

    def list_dataset_types(self) -> list[DatasetType]:
        """Every registered dataset type."""
        return self.registry.list_dataset_types()

    def list_collections(
        self, pattern: str | None = None, types: Iterable[str | CollectionType] | None = None
    ) -> list[tuple[str, CollectionType]]:
        """Collections as ``(name, type)``, sorted by name, filtered by a glob and types."""
        return self.registry.list_collections(pattern, types)

    def collection_type(self, name: str) -> CollectionType:
        """The type of collection ``name`` (raises `CollectionError` when it does not exist)."""
        return self.registry.collection_type(name)

    def get_chain(self, name: str) -> list[str]:
        """The children of CHAINED collection ``name``, in search order."""
        return self.registry.get_chain(name)

    # -- collections and calibrations ----------------------------------------------------------
    def set_chain(self, parent: str, children: Sequence[str]) -> None:
        """Define a CHAINED collection (created when missing)."""
        self.registry.set_chain(parent, children)

    def associate(self, tag: str, refs: Iterable[DatasetRef]) -> None:
        """Add datasets to a TAGGED collection."""
        self.registry.associate(tag, refs)

    def disassociate(self, tag: str, refs: Iterable[DatasetRef]) -> None:
        """Remove datasets from a TAGGED collection."""
        self.registry.disassociate(tag, refs)

    def certify(
        self, collection: str, refs: Iterable[DatasetRef], begin: Any = None, end: Any = None
    ) -> None:
        """Certify calibration datasets over ``[begin, end)`` in a CALIBRATION collection."""
        self.registry.certify(collection, refs, begin, end)

    def decertify(
        self,
        collection: str,
        dataset_type: str,
        begin: Any = None,
        end: Any = None,
        *,
        data_ids: Iterable[dict[str, Any]] | None = None,
    ) -> int:
        """Remove validity over ``[begin, end)``, splitting ranges that stick out."""
        return self.registry.decertify(collection, dataset_type, begin, end, data_ids=data_ids)

    # -- provenance ----------------------------------------------------------------------------
    def provenance(self, ref: DatasetRef) -> Provenance:
        """The provenance record of ``ref`` with its input datasets (removed inputs omitted)."""
        row, input_ids = self.registry.provenance(ref.id)
        inputs = [r for r in (self.registry.get_dataset(i) for i in input_ids) if r is not None]
        return Provenance(
            ref,
            row["run"],
            row["task"],
            row["quantum_id"],
            row["config_hash"],
            row["software_version"],
            row["host"],
            row["created_ns"],
            inputs,
        )

    def query_derived(self, ref: DatasetRef) -> list[DatasetRef]:
        """Datasets made (directly) from ``ref``."""
        return [r for r in (self.registry.get_dataset(i) for i in self.registry.derived_ids(ref.id)) if r]

    def file_record(self, ref: DatasetRef) -> FileRecord:
        """The file record of a dataset: path, size, checksum, storage class, format."""
        recs = self.registry.file_records([ref.id])
        if not recs:
            raise DatasetNotFoundError(f"dataset {ref} has no file record")
        return recs[0]

    # -- removal -------------------------------------------------------------------------------
    def remove(self, refs: Iterable[DatasetRef]) -> int:
        """Delete datasets: registry rows first (one transaction), then their files."""
        refs = list(refs)
        recs = self.registry.file_records([r.id for r in refs])
        n = self.registry.delete_datasets([r.id for r in refs])
        for rec in recs:
            self.datastore.remove(rec.path)
        return n

    def prune_collection(self, name: str) -> int:
        """Remove a collection; for a RUN, also every dataset in it (rows and files).

        Everything that could block the removal is checked first, and the registry part (the
        datasets and the collection) is one transaction, so a refused prune changes nothing.
        Files are deleted after the commit.

        Raises
        ------
        CollectionError
            The collection does not exist, or is a child of a CHAINED collection.
        """
        parents = self.registry.chain_parents(name)
        if parents:
            from pachon.core.errors import CollectionError

            raise CollectionError(
                f"collection {name!r} is a child of CHAINED collection(s) {', '.join(parents)}; "
                f"remove it from the chain first (pachon collection chain ...); nothing was deleted"
            )
        recs: list[FileRecord] = []
        n = 0
        with self.registry.transaction():
            if self.registry.collection_type(name) is CollectionType.RUN:
                ids = self.registry.run_dataset_ids(name)
                recs = self.registry.file_records(ids)
                n = self.registry.delete_datasets(ids)
            self.registry.remove_collection(name)
        for rec in recs:
            self.datastore.remove(rec.path)
        return n

    # -- ingest and check ----------------------------------------------------------------------
    def ingest_raws(self, paths: Iterable[str | Path], **kwargs: Any) -> Any:
        """Ingest raw FITS files; see `pachon.repo.ingest.ingest_raws`."""
        from pachon.repo.ingest import ingest_raws

        return ingest_raws(self, paths, **kwargs)

    def check(self, *, fix: bool = False) -> Any:
        """Verify every file against its checksum; see `pachon.repo.check.check_repository`."""
        from pachon.repo.check import check_repository

        return check_repository(self, fix=fix)

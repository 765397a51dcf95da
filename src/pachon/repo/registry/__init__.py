"""The registry: dimension records, dataset types, collections, datasets and provenance in SQL."""

from __future__ import annotations

from pachon.repo.registry.calibrations import CalibrationsMixin
from pachon.repo.registry.collections import CollectionsMixin, CollectionType
from pachon.repo.registry.database import Database
from pachon.repo.registry.datasets import DatasetsMixin, FileRecord, NewDataset
from pachon.repo.registry.queries import QueriesMixin
from pachon.repo.registry.records import RecordsMixin

__all__ = ["Registry", "CollectionType", "FileRecord", "NewDataset"]


class Registry(RecordsMixin, CollectionsMixin, DatasetsMixin, CalibrationsMixin, QueriesMixin):
    """The SQL side of a repository (SQLAlchemy Core; SQLite or PostgreSQL).

    Parameters
    ----------
    url
        SQLAlchemy database URL.
    create
        Create a new registry (`RepositoryError` when the database already holds one);
        otherwise check that it holds one of this schema version.
    """

    def __init__(self, url: str, *, create: bool = False) -> None:
        self.db = Database(url)
        try:
            if create:
                self.db.create_registry()
            #: ``registry_meta`` values: ``schema_version``, ``creation_id``, ``created``.
            self.meta: dict[str, str] = self.db.check_registry()
        except BaseException:
            self.db.engine.dispose()
            raise
        self._collection_cache: dict = {}
        self._type_cache: dict = {}

    def transaction(self):  # noqa: ANN201 - context manager of Database
        """One transaction spanning every registry call made inside it."""
        return self.db.transaction()

    def close(self) -> None:
        """Release the database connections."""
        self.db.engine.dispose()

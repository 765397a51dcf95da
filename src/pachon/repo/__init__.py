"""The data repository: registry (SQLite or PostgreSQL), datastore (fsspec) and ingest."""

from __future__ import annotations

from pachon.repo.butler import Provenance, Repository
from pachon.repo.refs import DatasetRef, DatasetType
from pachon.repo.registry import CollectionType, FileRecord

__all__ = ["Repository", "Provenance", "DatasetRef", "DatasetType", "CollectionType", "FileRecord"]

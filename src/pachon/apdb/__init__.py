"""The Alert Production Database (APDB): Rubin's ``apdb.yaml`` on SQLite or PostgreSQL."""

from __future__ import annotations

from pachon.apdb.apdb import Apdb, StoreResult
from pachon.apdb.tables import APDB_PIXEL_LEVEL

__all__ = ["Apdb", "StoreResult", "APDB_PIXEL_LEVEL"]

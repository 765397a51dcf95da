"""The APDB tables: Rubin's ``apdb.yaml`` through felis, plus a spatial index column.

The tables are copies of those of :func:`pachon.core.schemas.sqlalchemy_metadata` ("apdb"),
with one column added to ``DiaObject``, ``DiaObjectLast``, ``DiaSource`` and
``DiaForcedSource``: ``pixelId``, the nested HEALPix index at :data:`APDB_PIXEL_LEVEL` of the
row's (ra, dec), indexed, so that region queries become a few index range scans.  One table
of our own, ``pachon_apdb_store``, records each stored (visit, detector) so that storing it
again is a no-op.

Level 10 (pixels of ~3.4 arcmin) covers an LSSTCam detector (~13 arcmin) with ~35 pixels in
~13 contiguous index ranges: a short ``OR`` of ``BETWEEN`` clauses.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

__all__ = ["APDB_PIXEL_LEVEL", "SPATIAL_TABLES", "STORE_TABLE", "make_metadata"]

log = logging.getLogger(__name__)

APDB_PIXEL_LEVEL = 10
"""HEALPix order of the ``pixelId`` spatial index column."""

SPATIAL_TABLES = ("DiaObject", "DiaObjectLast", "DiaSource", "DiaForcedSource")
"""Tables that carry ``pixelId``."""

STORE_TABLE = "pachon_apdb_store"
"""Our bookkeeping table: one row per stored (visit, detector)."""


@functools.cache
def make_metadata() -> Any:
    """Build the SQLAlchemy metadata of the APDB (cached; do not modify it).

    Returns
    -------
    sqlalchemy.MetaData
        The ``apdb.yaml`` tables with ``pixelId`` columns, and ``pachon_apdb_store``.
    """
    import sqlalchemy as sa

    from pachon.core.schemas import sqlalchemy_metadata

    source = sqlalchemy_metadata("apdb")
    metadata = sa.MetaData()
    for table in source.tables.values():
        copy = table.to_metadata(metadata)
        if table.name in SPATIAL_TABLES:
            copy.append_column(sa.Column("pixelId", sa.BigInteger, nullable=False))
            sa.Index(f"IDX_{table.name}_pixelId", copy.c.pixelId)
    sa.Index("IDX_DiaSource_midpoint", metadata.tables["DiaSource"].c.midpointMjdTai)
    sa.Index(
        "IDX_DiaForcedSource_diaObjectId", metadata.tables["DiaForcedSource"].c.diaObjectId
    )
    sa.Index("IDX_DiaObject_validityEnd", metadata.tables["DiaObject"].c.validityEndMjdTai)
    sa.Table(
        STORE_TABLE,
        metadata,
        sa.Column("visit", sa.BigInteger, primary_key=True),
        sa.Column("detector", sa.Integer, primary_key=True),
        sa.Column("visitTimeMjdTai", sa.Float(53), nullable=False),
        sa.Column("nDiaObjects", sa.Integer, nullable=False),
        sa.Column("nDiaSources", sa.Integer, nullable=False),
        sa.Column("nDiaForcedSources", sa.Integer, nullable=False),
        sa.Column("storedAt", sa.DateTime, nullable=False),
    )
    return metadata

"""SQLAlchemy Core table definitions of the registry (one schema for SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa

from pachon.repo.dimensions import DIMENSION_NAMES, SKYPIX_DIMENSION, UNIVERSE, DimensionElement

__all__ = ["make_metadata", "DATA_ID_COLUMNS", "SQL_TYPES", "SCHEMA_VERSION"]

#: Version of the registry schema, stored in ``registry_meta`` and checked on open.
SCHEMA_VERSION = 1

SQL_TYPES = {
    "int": sa.BigInteger,
    "float": sa.Float,
    "str": lambda: sa.String(256),
    "time": sa.BigInteger,
    "region": sa.Text,
    "json": sa.Text,
}

#: Dimension columns carried by every dataset row (required and implied values).
DATA_ID_COLUMNS: tuple[str, ...] = DIMENSION_NAMES


def _key_type(name: str) -> sa.types.TypeEngine:
    return sa.String(128) if UNIVERSE[name].key_type is str else sa.BigInteger()


def _dimension_table(md: sa.MetaData, elem: DimensionElement) -> sa.Table:
    cols: list[sa.Column] = [sa.Column(r, _key_type(r), primary_key=True) for r in elem.requires]
    cols.append(
        sa.Column(elem.key, _key_type(elem.name if elem.is_dimension else elem.key), primary_key=True)
    )
    cols += [sa.Column(i, _key_type(i)) for i in elem.implies]
    cols += [sa.Column(f, SQL_TYPES[t]()) for f, t in elem.fields.items()]
    return sa.Table(f"dim_{elem.name}", md, *cols)


def make_metadata() -> sa.MetaData:
    """Build the registry schema.

    Returns
    -------
    metadata
        Tables: ``registry_meta`` (``schema_version``, ``creation_id``, ``created``),
        ``dim_<element>`` for each dimension element, ``dataset_type``, ``collection``,
        ``collection_chain``, ``dataset``, ``dataset_tag``, ``calib``, ``file_record``,
        ``provenance``, ``dataset_input``, ``region_overlap``.
    """
    md = sa.MetaData()
    sa.Table(
        "registry_meta",
        md,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    for elem in UNIVERSE.values():
        _dimension_table(md, elem)
    sa.Table(
        "dataset_type",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("dimensions", sa.String(512), nullable=False),
        sa.Column("storage_class", sa.String(64), nullable=False),
        sa.Column("is_calibration", sa.Boolean, nullable=False, default=False),
    )
    sa.Table(
        "collection",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False, unique=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("doc", sa.Text),
    )
    sa.Table(
        "collection_chain",
        md,
        sa.Column("parent_id", sa.ForeignKey("collection.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("child_id", sa.ForeignKey("collection.id"), nullable=False),
    )
    ds = sa.Table(
        "dataset",
        md,
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("dataset_type_id", sa.ForeignKey("dataset_type.id"), nullable=False),
        sa.Column("run_id", sa.ForeignKey("collection.id"), nullable=False),
        sa.Column("data_key", sa.String(512), nullable=False),
        *[sa.Column(c, _key_type(c)) for c in DATA_ID_COLUMNS],
        sa.Column("ingest_time", sa.BigInteger),
        sa.UniqueConstraint("dataset_type_id", "run_id", "data_key", name="dataset_unique_data_id"),
    )
    # leading columns without instrument/skymap: queries often give only exposure or visit
    sa.Index("dataset_exposure_idx", ds.c.exposure, ds.c.detector)
    sa.Index("dataset_visit_idx", ds.c.visit, ds.c.detector)
    sa.Index("dataset_patch_idx", ds.c.tract, ds.c.patch)
    sa.Index("dataset_skypix_idx", ds.c[SKYPIX_DIMENSION])
    sa.Index("dataset_run_idx", ds.c.run_id)
    sa.Table(
        "dataset_tag",
        md,
        sa.Column("collection_id", sa.ForeignKey("collection.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("dataset_id", sa.ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("dataset_type_id", sa.Integer, nullable=False),
        sa.Column("data_key", sa.String(512), nullable=False),
        sa.UniqueConstraint("collection_id", "dataset_type_id", "data_key", name="tag_unique_data_id"),
    )
    calib = sa.Table(
        "calib",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("collection_id", sa.ForeignKey("collection.id", ondelete="CASCADE"), nullable=False),
        sa.Column("dataset_id", sa.ForeignKey("dataset.id", ondelete="CASCADE"), nullable=False),
        sa.Column("dataset_type_id", sa.Integer, nullable=False),
        sa.Column("data_key", sa.String(512), nullable=False),
        sa.Column("begin_ns", sa.BigInteger, nullable=False),
        sa.Column("end_ns", sa.BigInteger, nullable=False),
    )
    sa.Index("calib_lookup_idx", calib.c.collection_id, calib.c.dataset_type_id, calib.c.data_key)
    sa.Table(
        "file_record",
        md,
        sa.Column("dataset_id", sa.ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("path", sa.String(1024), nullable=False, unique=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("checksum", sa.String(80), nullable=False),
        sa.Column("storage_class", sa.String(64), nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("source", sa.String(1024)),
        sa.Column("transfer", sa.String(16)),
    )
    sa.Table(
        "provenance",
        md,
        sa.Column("dataset_id", sa.ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("run", sa.String(256), nullable=False),
        sa.Column("task", sa.String(256)),
        sa.Column("quantum_id", sa.String(64)),
        sa.Column("config_hash", sa.String(128)),
        sa.Column("software_version", sa.String(64)),
        sa.Column("host", sa.String(256)),
        sa.Column("created_ns", sa.BigInteger),
    )
    inputs = sa.Table(
        "dataset_input",
        md,
        sa.Column("dataset_id", sa.ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("input_id", sa.Uuid, primary_key=True),
    )
    sa.Index("dataset_input_rev_idx", inputs.c.input_id)
    ov = sa.Table(
        "region_overlap",
        md,
        sa.Column("element", sa.String(32), primary_key=True),
        sa.Column("key0", sa.String(128), primary_key=True),
        sa.Column("key1", sa.BigInteger, primary_key=True),
        sa.Column("key2", sa.BigInteger, primary_key=True),
        sa.Column("skypix", sa.BigInteger, primary_key=True),
    )
    sa.Index("region_overlap_pix_idx", ov.c.element, ov.c.skypix)
    return md

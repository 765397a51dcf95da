"""Rubin alert packets: schemas, Avro serialization, readers and packet building.

The in-memory form of an alert is a plain ``dict`` following the Rubin alert schema of its
version (see ``docs/design/alerts.md``).  Importing this package is cheap: fastavro, pyarrow
and astropy are imported by the functions that need them.
"""

from __future__ import annotations

from pachon.alerts.columnar import build_alert_table, build_alerts
from pachon.alerts.packet import build_alert, cutout_to_fits_bytes, fits_bytes_to_cutout
from pachon.alerts.readers import conform_alert, read_alert_file, read_rubin_parquet
from pachon.alerts.schema import (
    available_versions,
    latest_version,
    load_schema,
    schema_id,
    version_from_schema_id,
)
from pachon.alerts.serialize import (
    deserialize_alert,
    dia_source_id,
    read_avro_file,
    serialize_alert,
    validate_alert,
    write_avro_file,
)

__all__ = [
    "available_versions",
    "latest_version",
    "load_schema",
    "schema_id",
    "version_from_schema_id",
    "serialize_alert",
    "deserialize_alert",
    "validate_alert",
    "write_avro_file",
    "read_avro_file",
    "dia_source_id",
    "read_rubin_parquet",
    "read_alert_file",
    "conform_alert",
    "build_alert",
    "build_alerts",
    "build_alert_table",
    "cutout_to_fits_bytes",
    "fits_bytes_to_cutout",
]

"""Alert packets of one detector-visit: Avro container file dataset and stream.

:class:`AlertTask` runs per ``(instrument, exposure, detector)`` after :class:`AssociationTask`.
It builds one packet per new DiaSource that has a DiaObject (the latest Rubin alert schema):
the DiaSource, the new version of its DiaObject, the previous DiaSources and DiaForcedSources
of the object within 12 months (read from the APDB, so the history is everything stored
before, on any detector) and 30 × 30 pixel cutouts of the science, template and difference
images (FITS with WCS, encoded once per source).  The packets are built and encoded columnar
(:func:`pachon.alerts.columnar.build_alerts`: no dict per alert or per history row; the same
bytes as building each alert with :func:`pachon.alerts.build_alert`, which
:func:`build_detector_alerts` still does).  They are written as the ``alerts``
dataset (an Avro object container file, storage class ``Bytes``: any Avro tool reads it) and,
when ``stream_url`` is set, published to that stream (a file-log folder or ``kafka://``) in the
Confluent wire format, keyed by ``diaSourceId``, topic ``topic``, batch = the visit.

A detector-visit the APDB already held (a re-run: ``apdb_store.already_stored``) gets its
packets rebuilt for the dataset but not published again, so a stream sees each alert once.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from pachon.core.exposure import Exposure
from pachon.pipe.task import Input, Output, Task
from pachon.pipelines.association_task import open_apdb

__all__ = ["AlertConfig", "AlertTask", "build_detector_alerts", "build_detector_packets",
           "alerts_to_avro_bytes"]

_log = logging.getLogger(__name__)

_DETECTOR = ("instrument", "exposure", "detector")


@dataclass
class AlertConfig:
    """Settings of :class:`AlertTask`."""

    #: APDB URL (as the association task's; ``{repo}`` = repository root).
    apdb_url: str = "sqlite:///{repo}/apdb.sqlite3"
    #: Stream to publish to (file-log folder or ``kafka://host:port``); None: no publishing.
    stream_url: str | None = None
    #: Stream topic.
    topic: str = "alerts"
    #: Cutout side (pixels).
    cutout_size: int = 30
    #: History span (days).
    history_days: float = 365.25
    #: Alert schema version; the latest shipped when None.
    schema_version: str | None = None


def _cutout(exposure: Exposure | None, x: float, y: float, size: int) -> bytes | None:
    from pachon.alerts import cutout_to_fits_bytes
    from pachon.core.geom import Box

    if exposure is None or not (np.isfinite(x) and np.isfinite(y)):
        return None
    b = exposure.bbox
    half = size // 2
    x0, y0 = max(b.x0, int(round(x)) - half), max(b.y0, int(round(y)) - half)
    x1 = min(b.x0 + b.width, int(round(x)) - half + size)
    y1 = min(b.y0 + b.height, int(round(y)) - half + size)
    if x1 <= x0 or y1 <= y0:
        return None
    return cutout_to_fits_bytes(exposure.subimage(Box.from_corners(x0, y0, x1, y1)))


def _split(table: Any, ids: np.ndarray) -> dict[int, list[dict[str, Any]]]:
    """Rows of ``table`` grouped by ``diaObjectId`` (only for ``ids``)."""
    if table.num_rows == 0:
        return {}
    rows = table.to_pylist()
    obj = table.column("diaObjectId").to_numpy(zero_copy_only=False)
    out: dict[int, list[dict[str, Any]]] = {}
    for k in np.flatnonzero(np.isin(obj, ids)):
        out.setdefault(int(obj[k]), []).append(rows[k])
    return out


def build_detector_alerts(sources: Any, objects: Any, history: Any, forced_history: Any,
                          images: dict[str, Exposure | None], *, cutout_size: int = 30,
                          history_days: float = 365.25, version: str | None = None) -> list[dict[str, Any]]:
    """The alert packets of one detector-visit (see the module docstring).

    Parameters
    ----------
    sources
        The detector-visit's DiaSources with ``diaObjectId`` (rows without one get no alert).
    objects
        The DiaObjects (new versions), pyarrow Table.
    history, forced_history
        DiaSources / DiaForcedSources of those objects (may include the current visit: the
        packet builder keeps only those before each source).
    images
        ``{"science", "template", "difference"}`` exposures for the cutouts.
    cutout_size, history_days, version
        Cutout side (pixels), history span (days), alert schema version (latest when None).

    Returns
    -------
    list of dict
        Alerts following the schema.
    """
    from pachon.alerts import build_alert

    with_obj = sources.filter(sources.column("diaObjectId").is_valid())
    ids = with_obj.column("diaObjectId").to_numpy()
    obj_rows = {int(r["diaObjectId"]): r for r in objects.to_pylist()}
    prv = _split(history, ids)
    prv_forced = _split(forced_history, ids)
    alerts = []
    for row in with_obj.to_pylist():
        oid = int(row["diaObjectId"])
        cutouts = {k: _cutout(images.get(k), row["x"], row["y"], cutout_size) for k in images}
        alerts.append(build_alert(row, obj_rows.get(oid), prv.get(oid, []), prv_forced.get(oid, []),
                                  cutouts=cutouts, version=version, history_days=history_days))
    return alerts


def build_detector_packets(sources: Any, objects: Any, history: Any, forced_history: Any,
                           images: dict[str, Exposure | None], *, cutout_size: int = 30,
                           history_days: float = 365.25, version: str | None = None,
                           wire: bool = False) -> tuple[np.ndarray, list[bytes]]:
    """The encoded alert packets of one detector-visit, built columnar.

    The same packets as ``serialize_alert(a)`` for each alert of
    :func:`build_detector_alerts` (same arguments), without building them as dicts.

    Parameters
    ----------
    sources, objects, history, forced_history, images, cutout_size, history_days, version
        As for :func:`build_detector_alerts`.
    wire
        Prefix each packet with the Confluent wire-format header.

    Returns
    -------
    ids : numpy.ndarray
        The ``diaSourceId`` of each packet.
    packets : list of bytes
        Schemaless Avro (or wire-format) packets.
    """
    from pachon.alerts.columnar import build_alerts
    from pachon.alerts.cutouts import CutoutWriter

    with_obj = sources.filter(sources.column("diaObjectId").is_valid())
    x = with_obj.column("x").to_numpy(zero_copy_only=False) if "x" in with_obj.column_names else (
        np.full(with_obj.num_rows, np.nan))
    y = with_obj.column("y").to_numpy(zero_copy_only=False) if "y" in with_obj.column_names else (
        np.full(with_obj.num_rows, np.nan))
    cutouts = {kind: CutoutWriter(image).around(x, y, cutout_size)
               for kind, image in images.items() if image is not None}
    packets = build_alerts(with_obj, objects, history, forced_history, None, cutouts,
                           version=version, history_days=history_days, wire=wire)
    ids = with_obj.column("diaSourceId").to_numpy(zero_copy_only=False).astype(np.int64)
    return ids, packets


def alerts_to_avro_bytes(alerts: list[dict[str, Any]], version: str | None = None) -> bytes:
    """An Avro object container file (schema embedded, deflate) holding ``alerts``."""
    import fastavro

    from pachon.alerts import load_schema

    buffer = io.BytesIO()
    fastavro.writer(buffer, load_schema(version), alerts, codec="deflate")
    return buffer.getvalue()


class AlertTask(Task):
    """Build, write and publish the alert packets of one detector-visit."""

    dimensions = _DETECTOR
    inputs = {
        "associated": Input("dia_source_associated", _DETECTOR, "ArrowTable", doc="associated DiaSources"),
        "dia_object": Input("dia_object", _DETECTOR, "ArrowTable", doc="their DiaObjects"),
        "store": Input("apdb_store", _DETECTOR, "Json", doc="APDB store record"),
        "calexp": Input("calexp", _DETECTOR, "Exposure", doc="science image (cutouts)"),
        "difference": Input("difference_exp", _DETECTOR, "Exposure", doc="difference image (cutouts)"),
        "template": Input("template_detector", _DETECTOR, "Exposure", doc="warped template (cutouts)"),
    }
    outputs = {"alerts": Output("alerts", _DETECTOR, "Bytes", doc="Avro container file of the alert packets")}
    config_class = AlertConfig

    def run(self, associated: Any, dia_object: Any, store: dict[str, Any], calexp: Exposure,
            difference: Exposure, template: Exposure) -> dict[str, Any]:
        """Build the packets, publish them when new, return the Avro file bytes."""
        from pachon.alerts.serialize import avro_container_bytes, wire_header

        cfg = self.config
        apdb = open_apdb(cfg.apdb_url)
        vi = calexp.visit_info
        mjd = float(vi.mjd_tai_mid) if vi is not None and vi.mjd_tai_mid is not None else float("inf")
        ids = np.unique(associated.column("diaObjectId").drop_null().to_numpy())
        since = mjd - cfg.history_days
        history = apdb.get_dia_sources(ids, since=since)
        forced = apdb.get_dia_forced_sources(ids, since=since)
        source_ids, bodies = build_detector_packets(
            associated, dia_object, history, forced,
            {"science": calexp, "template": template, "difference": difference},
            cutout_size=cfg.cutout_size, history_days=cfg.history_days, version=cfg.schema_version)
        if cfg.stream_url and not store.get("already_stored", False) and bodies:
            from pachon.alerts.stream import open_publisher, publish_batch

            header = wire_header(cfg.schema_version)
            publisher = open_publisher(cfg.stream_url)
            try:
                publish_batch(publisher, cfg.topic, str(store.get("visit", "")),
                              ((str(k), header + body)
                               for k, body in zip(source_ids.tolist(), bodies, strict=True)))
                publisher.flush()
            finally:
                publisher.close()
        elif store.get("already_stored", False):
            _log.info("visit %s detector %s was already stored: %d alerts not published again",
                      store.get("visit"), store.get("detector"), len(bodies))
        _log.info("visit %s detector %s: %d alert packets", store.get("visit"), store.get("detector"),
                  len(bodies))
        return {"alerts": avro_container_bytes(bodies, cfg.schema_version)}

"""The flattened alert table that filters see: one Arrow table per survey in a batch.

Columns: ``alertId``, ``objectId``, ``survey``, ``batch``, ``diaSource`` (struct with Rubin's
names, plus ``mag``/``magErr``; mapped for ZTF-like surveys), ``diaObject`` (Rubin),
``candidate`` (ZTF-like, as sent), ``features`` (struct, see
:mod:`pachon.alerts.broker.features`) and, with a catalog, ``xmatch`` (struct: ``id``,
``sep_arcsec``, ``matched``).  SQL reaches struct fields with a dot: ``diaSource.snr > 10``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pachon.alerts.broker.features import FEATURE_NAMES, light_curve_features
from pachon.alerts.broker.packets import Packet
from pachon.alerts.broker.projection import Needs, rubin_projection
from pachon.alerts.broker.xmatch import Catalog
from pachon.alerts.ztf import MAG_ZP_NJY, map_ztf_alert, ztf_light_curve
from pachon.core.errors import FormatError

__all__ = ["build_table", "map_packet", "decode_rubin_batch", "rubin_table", "ROW_COLUMN"]

ROW_COLUMN = "__row"


def _mag(flux: Any) -> float:
    if flux is None or not flux > 0:
        return math.nan
    return MAG_ZP_NJY - 2.5 * math.log10(flux)


def _map_rubin(alert: dict[str, Any]) -> tuple[dict[str, Any], tuple[list, list, list]]:
    src = alert.get("diaSource")
    if not isinstance(src, dict):
        raise FormatError(f"Rubin alert diaSourceId={alert.get('diaSourceId')!r} has no diaSource record")
    flux, err = src.get("psfFlux"), src.get("psfFluxErr")
    mag = _mag(flux)
    source = dict(src)
    source["mag"] = mag
    source["magErr"] = 1.0857 * err / flux if (err is not None and flux and flux > 0) else None
    prv = alert.get("prvDiaSources") or []
    mjd = [p["midpointMjdTai"] for p in prv] + [src["midpointMjdTai"]]
    mags = [_mag(p.get("psfFlux")) for p in prv] + [mag]
    bands = [p.get("band") or "" for p in prv] + [src.get("band") or ""]
    obj_id = src.get("diaObjectId")
    mapped = {"alertId": int(src["diaSourceId"]), "objectId": "" if obj_id is None else str(obj_id),
              "diaSource": source, "diaObject": alert.get("diaObject")}
    return mapped, (mjd, mags, bands)


def map_packet(packet: Packet) -> tuple[dict[str, Any], tuple[list, list, list]]:
    """Common filter fields and light-curve points of one packet.

    Raises
    ------
    FormatError
        When the packet lacks what the mapping needs (it is then quarantined).
    """
    if packet.survey == "rubin":
        return _map_rubin(packet.alert)
    mapped = map_ztf_alert(packet.alert, packet.survey)
    return mapped, ztf_light_curve(packet.alert, packet.survey)


def build_table(
    survey: str,
    rows: list[dict[str, Any]],
    curves: list[tuple[list, list, list]],
    batches: list[str],
    *,
    catalog: Catalog | None = None,
    radius_arcsec: float = 1.0,
) -> Any:
    """Build the Arrow table of one survey's alerts of a batch.

    Parameters
    ----------
    survey
        Survey name (one per table).
    rows
        Mapped alerts (from :func:`map_packet`).
    curves
        Light-curve points (mjd, mag, band lists) of each alert, the current detection last.
    batches
        Batch label of each alert.
    catalog
        Optional cross-match catalog.
    radius_arcsec
        Cross-match radius.

    Returns
    -------
    pyarrow.Table
        The table, with a ``__row`` column numbering the rows.
    """
    import pyarrow as pa

    n = len(rows)
    lengths = np.fromiter((len(c[0]) for c in curves), dtype=np.int64, count=n)
    mjd = np.fromiter((t for c in curves for t in c[0]), dtype=float, count=int(lengths.sum()))
    mag = np.array([m if m is not None else np.nan for c in curves for m in c[1]], dtype=float)
    band = np.array([b for c in curves for b in c[2]], dtype=str)
    extra = {}
    if survey == "rubin":
        objects = [r.get("diaObject") for r in rows]
        if any(o is not None for o in objects):
            extra["diaObject"] = pa.array(objects)
    else:
        extra["candidate"] = pa.array([r["candidate"] for r in rows])
    return _assemble(survey, pa.array([r["alertId"] for r in rows], pa.int64()),
                     pa.array([r["objectId"] for r in rows], pa.string()), batches,
                     pa.array([r["diaSource"] for r in rows]), extra,
                     (lengths, mjd, mag, band), catalog, radius_arcsec)


def _assemble(survey: str, alert_ids: Any, object_ids: Any, batches: list[str], source: Any,
              extra: dict[str, Any], curve: tuple[np.ndarray, ...], catalog: Catalog | None,
              radius_arcsec: float) -> Any:
    import pyarrow as pa

    lengths, mjd, mag, band = curve
    n = len(alert_ids)
    idx = np.repeat(np.arange(n), lengths)
    current = np.zeros(len(idx), dtype=bool)
    current[np.cumsum(lengths) - 1] = True
    feats = light_curve_features(n, idx, mjd, mag, band, current)
    columns: dict[str, Any] = {
        ROW_COLUMN: pa.array(np.arange(n)),
        "alertId": alert_ids,
        "objectId": object_ids,
        "survey": pa.array([survey] * n, pa.string()),
        "batch": pa.array(batches, pa.string()),
        "diaSource": source,
        **extra,
    }
    columns["features"] = pa.StructArray.from_arrays(
        [pa.array(feats[k]) for k in FEATURE_NAMES], names=list(FEATURE_NAMES)
    )
    if catalog is not None:
        src = columns["diaSource"]
        ra = src.field("ra").to_numpy(zero_copy_only=False).astype(float)
        dec = src.field("dec").to_numpy(zero_copy_only=False).astype(float)
        ids, sep = catalog.match(ra, dec, radius_arcsec)
        columns["xmatch"] = pa.StructArray.from_arrays(
            [pa.array(ids.astype(str)), pa.array(sep), pa.array(~np.isnan(sep))],
            names=["id", "sep_arcsec", "matched"],
        )
    return pa.table(columns)


def _floats(arr: Any) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=float)


_PROJECTIONS: dict[tuple[str, tuple], dict[str, Any]] = {}


def _projection(schema: Any, version: str, needs: Needs) -> dict[str, Any]:
    key = (version, needs.key())
    if key not in _PROJECTIONS:
        fields = {f["name"]: [g["name"] for g in _record_fields(f["type"])]
                  for f in schema["fields"] if f["name"] in ("diaSource", "diaObject")}
        _PROJECTIONS[key] = rubin_projection(needs, fields)
    return _PROJECTIONS[key]


def _record_fields(avro_type: Any) -> list[dict[str, Any]]:
    if isinstance(avro_type, list):
        avro_type = next(t for t in avro_type if t != "null")
    return avro_type.get("fields", []) if isinstance(avro_type, dict) else []


def decode_rubin_batch(raws: list[bytes], version: str, needs: Needs | None = None) -> Any:
    """Decode, vectorized, what the filters need of Rubin wire-format packets of one version.

    Parameters
    ----------
    raws
        Confluent wire-format packets (5-byte header, then the Avro body).
    version
        Their schema version.
    needs
        The record fields the filters use (:func:`~pachon.alerts.broker.projection.sql_needs`);
        None for all of ``diaSource`` and ``diaObject``.

    Returns
    -------
    pyarrow.StructArray
        ``diaSource`` (the fields needed, at least
        :data:`~pachon.alerts.broker.projection.ALWAYS_SOURCE_FIELDS`) and, when needed,
        ``diaObject``; ``prvDiaSources`` reduced to the light-curve fields; the rest is
        skipped in the bytes (cutouts without being copied).

    Raises
    ------
    FormatError
        When a packet is corrupt, or the version lacks the fields used (callers then decode
        packet by packet, which quarantines the bad ones).
    """
    from pachon.alerts.avro_decode import decode_records
    from pachon.alerts.schema import load_schema

    schema = load_schema(version)
    top = {f["name"] for f in schema["fields"]}
    if not {"diaSource", "diaObject", "prvDiaSources"} <= top:
        raise FormatError(f"alert schema {version} lacks the fields of the vectorized broker path")
    projection = _projection(schema, version, Needs(everything=True) if needs is None else needs)
    return decode_records(schema, raws, skip=5, projection=projection)


def rubin_table(decoded: Any, batches: list[str], *, catalog: Catalog | None = None,
                radius_arcsec: float = 1.0) -> Any:
    """Build the filter table of Rubin alerts decoded by :func:`decode_rubin_batch`.

    Same columns and values as :func:`build_table` over :func:`map_packet` of the same packets.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    src = decoded.field("diaSource")
    names = [src.type.field(i).name for i in range(src.type.num_fields)]
    if "midpointMjdTai" not in names or "psfFlux" not in names:
        raise FormatError("diaSource lacks midpointMjdTai/psfFlux")
    flux, err = _floats(src.field("psfFlux")), _floats(src.field("psfFluxErr"))
    positive = flux > 0
    err_valid = src.field("psfFluxErr").is_valid().to_numpy(zero_copy_only=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(positive, MAG_ZP_NJY - 2.5 * np.log10(np.where(positive, flux, 1.0)), np.nan)
        mag_err = 1.0857 * err / flux
    source = pa.StructArray.from_arrays(
        [src.field(k) for k in names] + [pa.array(mag), pa.array(mag_err, mask=~(positive & err_valid))],
        names=[*names, "mag", "magErr"])
    prv = decoded.field("prvDiaSources")
    counts = _counts(prv)
    items = prv.flatten()
    lengths = counts + 1
    total = int(lengths.sum())
    current = np.zeros(total, bool)
    current[np.cumsum(lengths) - 1] = True
    mjd = np.empty(total)
    mjd[current] = _floats(src.field("midpointMjdTai"))
    mjd[~current] = _floats(items.field("midpointMjdTai"))
    mags = np.empty(total)
    mags[current] = mag
    pflux = _floats(items.field("psfFlux"))
    with np.errstate(divide="ignore", invalid="ignore"):
        mags[~current] = np.where(pflux > 0, MAG_ZP_NJY - 2.5 * np.log10(np.where(pflux > 0, pflux, 1.0)),
                                  np.nan)
    band = np.empty(total, dtype=object)
    band[current] = pc.fill_null(src.field("band"), "").to_numpy(zero_copy_only=False)
    band[~current] = pc.fill_null(items.field("band"), "").to_numpy(zero_copy_only=False)
    alert_ids = src.field("diaSourceId").cast(pa.int64())
    object_ids = pc.fill_null(src.field("diaObjectId").cast(pa.string()), "")
    extra = {}
    if decoded.type.get_field_index("diaObject") >= 0:
        objects = decoded.field("diaObject")
        if objects.null_count < len(objects):
            extra["diaObject"] = objects
    return _assemble("rubin", alert_ids, object_ids, batches, source, extra,
                     (lengths, mjd, mags, band.astype(str)), catalog, radius_arcsec)


def _counts(lists: Any) -> np.ndarray:
    import pyarrow.compute as pc

    return pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False).astype(np.int64)

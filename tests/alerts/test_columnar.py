"""Columnar alert building gives exactly the packets of the per-alert path (build_alert)."""

from __future__ import annotations

import io

import fastavro
import numpy as np
import pyarrow as pa
import pytest
from alert_tables_helpers import random_table

from pachon.alerts.columnar import build_alert_table, build_alerts
from pachon.alerts.packet import build_alert
from pachon.alerts.schema import latest_version, schema_path
from pachon.alerts.serialize import (
    avro_container_bytes,
    deserialize_alert,
    serialize_alert,
    validate_alert,
)
from pachon.core.errors import FormatError

BASE_ID = 170_000_000_000_000_000  # Rubin-sized ids: 9-byte varints


def _batch(seed: int = 5):
    """A detector-visit batch covering the awkward cases, and its per-alert inputs."""
    rng = np.random.default_rng(seed)
    m, n_obj = 40, 36
    t_now = 61000.25
    obj_ids = BASE_ID + 10_000 + np.arange(n_obj)
    src_obj = obj_ids[np.arange(m) % n_obj].astype(object)  # sources 36..39 share objects 0..3
    src_obj[7] = None  # unassociated: no object, no history
    times = np.full(m, t_now)
    times[36:] = t_now - 0.5  # the second source of an object, half a day earlier
    ids = BASE_ID + np.arange(m)
    ids[3] = -5  # a negative id (zigzag)
    sources = random_table("DiaSource", m, rng, diaSourceId=ids, diaObjectId=list(src_obj),
                           midpointMjdTai=times)
    # history: 0..60 rows per object, some too old, some later than the alert, ties, NaN
    # times, the triggering source itself, rows of other objects; in shuffled order
    counts = np.arange(n_obj) % 7 * 3
    counts[5] = 60
    counts[6] = 0
    h_obj = np.concatenate([np.repeat(obj_ids, counts), [BASE_ID + 99_999] * 4])
    h_t = t_now - rng.uniform(-2.0, 450.0, h_obj.size)
    h_t[::11] = np.round(h_t[::11])  # ties among rows of one object
    h_t[1::11] = h_t[::11][: h_t[1::11].size]
    h_t[17] = np.nan
    h_ids = BASE_ID + 1_000_000 + np.arange(h_obj.size)
    h_ids[2], h_obj[2], h_t[2] = ids[0], obj_ids[0], t_now  # the triggering source itself
    h_obj[3], h_t[3] = obj_ids[1], t_now  # another source at the alert's time: kept
    order = rng.permutation(h_obj.size)
    history = random_table("DiaSource", h_obj.size, rng, diaSourceId=h_ids[order],
                           diaObjectId=h_obj[order], midpointMjdTai=h_t[order])
    f_obj = np.repeat(obj_ids, counts[::-1])
    forced = random_table("DiaForcedSource", f_obj.size, rng,
                          diaForcedSourceId=BASE_ID + 5_000_000 + np.arange(f_obj.size),
                          diaObjectId=f_obj, midpointMjdTai=t_now - rng.uniform(0, 400, f_obj.size))
    o_ids = np.concatenate([obj_ids[:30], obj_ids[:2]])  # 30..35 missing, 0 and 1 twice
    objects = random_table("DiaObject", o_ids.size, rng, diaObjectId=o_ids)
    ss_ids = np.concatenate([ids[::3], [BASE_ID + 777]])
    ss = random_table("SSSource", ss_ids.size, rng, diaSourceId=ss_ids)
    science = [None if i % 2 else rng.bytes(3000 + i) for i in range(m)]
    difference = [b"" if i % 5 == 0 else rng.bytes(int(rng.integers(1, 200))) for i in range(m)]
    cutouts = {"science": science, "difference": difference}
    return sources, objects, history, forced, ss, cutouts


def _per_alert(sources, objects, history, forced, ss, cutouts, version=None):
    """The alerts built one by one, as the former alert task did."""
    objs = {r["diaObjectId"]: r for r in objects.to_pylist()}  # last row of an id wins
    ss_rows = {r["diaSourceId"]: r for r in ss.to_pylist()}
    h_rows, f_rows = history.to_pylist(), forced.to_pylist()
    alerts = []
    for i, row in enumerate(sources.to_pylist()):
        oid = row["diaObjectId"]
        prv = [r for r in h_rows if oid is not None and r["diaObjectId"] == oid]
        prv_f = [r for r in f_rows if oid is not None and r["diaObjectId"] == oid]
        cut = {k: v[i] for k, v in cutouts.items()}
        alerts.append(build_alert(row, objs.get(oid), prv, prv_f, ss_rows.get(row["diaSourceId"]),
                                  cut, version=version))
    return alerts


def test_columnar_packets_equal_per_alert_packets() -> None:
    batch = _batch()
    alerts = _per_alert(*batch)
    # the batch does cover the awkward cases
    n_prv = [len(a["prvDiaSources"]) for a in alerts]
    assert 0 in n_prv and max(n_prv) > 40
    assert alerts[7]["diaObject"] is None and alerts[7]["prvDiaSources"] == []
    assert alerts[35]["diaObject"] is None and alerts[0]["diaObject"] is not None
    assert sum(a["ssSource"] is not None for a in alerts) == 14
    assert any(a["diaSource"]["apFlux"] is None for a in alerts)
    assert all(a["cutoutTemplate"] is None for a in alerts)
    assert ids_of(alerts[0]["prvDiaSources"]).count(alerts[0]["diaSourceId"]) == 0
    for wire in (False, True):
        packets = build_alerts(*batch, wire=wire)
        assert packets == [serialize_alert(a, wire=wire) for a in alerts]
    # in memory too: the table's rows are the alert dicts
    assert build_alert_table(*batch).to_pylist() == alerts
    for packet, alert in zip(packets, alerts, strict=True):
        back = deserialize_alert(packet)
        assert back == alert
        validate_alert(back)
    from lsst.alert.packet import Schema

    official = Schema.from_file(str(schema_path(latest_version())))
    assert all(official.validate(a) for a in alerts[:5])


def ids_of(rows: list[dict]) -> list[int]:
    return [r["diaSourceId"] for r in rows]


def test_history_window_order_and_ties() -> None:
    sources, objects, history, forced, ss, cutouts = _batch()
    alert = build_alert_table(sources.slice(5, 1), None, history).to_pylist()[0]
    t_now = alert["diaSource"]["midpointMjdTai"]
    oid = alert["diaSource"]["diaObjectId"]
    h = history.to_pylist()
    expected = sorted(
        (r for r in h if r["diaObjectId"] == oid and t_now - 365.25 <= r["midpointMjdTai"] <= t_now),
        key=lambda r: r["midpointMjdTai"])  # stable: ties keep the table order
    assert ids_of(alert["prvDiaSources"]) == ids_of(expected)
    assert len(expected) < sum(r["diaObjectId"] == oid for r in h)  # some were cut
    # with no history tables, empty lists (not null), and nulls for the rest
    bare = build_alert_table(sources.slice(0, 2)).to_pylist()
    assert bare[0]["prvDiaSources"] == [] and bare[0]["prvDiaForcedSources"] == []
    assert bare[0]["diaObject"] is None and bare[0]["cutoutScience"] is None


def test_older_schema_version() -> None:
    batch = _batch(seed=8)
    alerts = _per_alert(*batch, version="10.0")
    assert build_alerts(*batch, version="10.0", wire=True) == [
        serialize_alert(a, version="10.0", wire=True) for a in alerts]


def test_mappings_of_arrays_and_empty_batch() -> None:
    sources, objects, history, forced, ss, cutouts = _batch()
    as_dicts = [{name: t.column(name).to_pylist() for name in t.column_names}
                for t in (sources, objects, history, forced)]
    assert build_alerts(*as_dicts) == build_alerts(sources, objects, history, forced)
    assert build_alerts(sources.slice(0, 0), objects, history, forced) == []


def test_bad_rows_are_named() -> None:
    sources, objects, history, forced, ss, cutouts = _batch()
    x = sources.column("x").to_numpy(zero_copy_only=False).copy()
    x[4] = np.nan
    bad = sources.set_column(sources.column_names.index("x"), "x", pa.array(x, pa.float32()))
    with pytest.raises(FormatError, match=rf"diaSource\.x \(diaSourceId={BASE_ID + 4},"):
        build_alerts(bad)
    with pytest.raises(FormatError, match=r"diaSource\.bboxSize is required .* no column"):
        build_alerts(sources.drop_columns(["bboxSize"]))
    with pytest.raises(FormatError, match="unknown cutout kinds"):
        build_alerts(sources, cutouts={"sci": [None] * sources.num_rows})
    with pytest.raises(FormatError, match="holds 3 values for 40"):
        build_alerts(sources, cutouts={"science": [None] * 3})
    n = history.num_rows
    broken = history.set_column(history.column_names.index("visit"), "visit",
                                pa.nulls(n, pa.int64()))
    with pytest.raises(FormatError, match=r"diaSource\.visit \(diaSourceId="):
        build_alerts(sources, None, broken)


def test_container_from_packets_reads_back() -> None:
    batch = _batch()
    alerts = _per_alert(*batch)
    bodies = build_alerts(*batch)
    for codec in ("null", "deflate"):
        data = avro_container_bytes(bodies, codec=codec, block_bytes=20_000)
        reader = fastavro.reader(io.BytesIO(data))
        blocks = list(fastavro.block_reader(io.BytesIO(data)))
        assert len(blocks) > 3  # several blocks
        assert list(reader) == alerts
    with pytest.raises(FormatError, match="codec 'snappy'"):
        avro_container_bytes(bodies, codec="snappy")


def test_alert_task_packets_equal_per_alert_with_cutouts_from_exposures() -> None:
    from pachon.core.exposure import Exposure
    from pachon.core.psf import GaussianPsf
    from pachon.core.wcs import make_tan_wcs
    from pachon.pipelines.alert_task import build_detector_alerts, build_detector_packets

    sources, objects, history, forced, _, _ = _batch(seed=11)
    m = sources.num_rows
    rng = np.random.default_rng(2)
    x, y = rng.uniform(1000, 1300, m), rng.uniform(2000, 2200, m)
    x[1], y[2], x[3] = -500.0, 1e6, 1001.0  # off the image (twice), at the edge
    sources = sources.set_column(sources.column_names.index("x"), "x", pa.array(x, pa.float32()))
    sources = sources.set_column(sources.column_names.index("y"), "y", pa.array(y, pa.float32()))
    wcs = make_tan_wcs(150.0, 2.0, 0.2, crpix=(1150.0, 2100.0))

    def image(seed: int, psf: bool) -> Exposure:
        r = np.random.default_rng(seed)
        return Exposure(r.normal(0, 5, (200, 300)).astype(np.float32),
                        variance=np.full((200, 300), 25.0, np.float32), wcs=wcs,
                        psf=GaussianPsf(1.6) if psf else None, xy0=(1000, 2000))

    images = {"science": image(1, True), "template": None, "difference": image(2, False)}
    alerts = build_detector_alerts(sources, objects, history, forced, images, cutout_size=30)
    ids, packets = build_detector_packets(sources, objects, history, forced, images,
                                          cutout_size=30, wire=True)
    assert len(alerts) == m - 1  # the unassociated source gets none
    assert ids.tolist() == [a["diaSourceId"] for a in alerts]
    assert packets == [serialize_alert(a, wire=True) for a in alerts]
    assert alerts[1]["cutoutScience"] is None and alerts[2]["cutoutDifference"] is None
    assert alerts[0]["cutoutScience"] is not None and alerts[3]["cutoutDifference"] is not None
    assert all(a["cutoutTemplate"] is None for a in alerts)

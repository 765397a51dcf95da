"""The mini broker: replay of real ZTF and Rubin alerts, filters, features, quarantine, CLI."""

from __future__ import annotations

import io
import json
import struct

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pachon.alerts.broker import Broker, Catalog, follow, replay
from pachon.alerts.broker.features import light_curve_features
from pachon.alerts.stream import publish_batch
from pachon.alerts.stream.filelog import FileLogConsumer, FileLogPublisher
from pachon.cli.main import cli
from pachon.core.errors import QueryError


def _ztf_truth(folder, predicate):
    """Expected candids, straight from the Avro files with fastavro."""
    out = set()
    for path in sorted(folder.rglob("*.avro")):
        with open(path, "rb") as handle:
            for rec in fastavro.reader(handle):
                if predicate(rec["candidate"]):
                    out.add(rec["candid"])
    return out


def _summary_ids(out):
    return set(pq.read_table(out / "summary.parquet").column("alertId").to_pylist())


def test_replay_real_ztf_gives_the_hand_counted_subset(shared_data, tmp_path):
    ztf = shared_data / "alerts" / "ztf"
    expected = _ztf_truth(ztf, lambda c: c["magpsf"] < 18)
    assert len(expected) == 22  # hand count over the 88 ZTF alerts
    stats = replay(ztf, Broker(tmp_path, where="candidate.magpsf < 18"))
    assert stats.received == 88 and stats.matched == 22 and stats.quarantined == 0
    assert _summary_ids(tmp_path) == expected
    written = set()
    for path in (tmp_path / "alerts").glob("*.avro"):
        with open(path, "rb") as handle:
            written |= {r["candid"] for r in fastavro.reader(handle)}
    assert written == expected  # the matching packets themselves, readable by any Avro tool


def test_rubin_field_names_work_on_ztf(shared_data, tmp_path):
    ztf = shared_data / "alerts" / "ztf"
    # diaSource.snr is mapped from sigmapsf (snr = 1.0857 / sigmapsf)
    expected = _ztf_truth(ztf, lambda c: 1.0857 / c["sigmapsf"] > 20 and c["fid"] == 1)
    replay(ztf, Broker(tmp_path, where="diaSource.snr > 20 AND diaSource.band = 'g'"))
    assert _summary_ids(tmp_path) == expected and len(expected) > 0


def test_replay_real_rubin_gives_the_hand_counted_subset(shared_data, tmp_path):
    rubin = shared_data / "alerts" / "rubin"
    table = pq.read_table(rubin / "lsstcam_20251231_det174_v10_0.parquet")
    sources = table.column("diaSource").to_pylist()
    expected = {s["diaSourceId"] for s in sources if s["snr"] is not None and s["snr"] > 10}
    data = (rubin / "hsc_cosmos_rubin_v7_1_wireformat.avro").read_bytes()
    magic, schema_id = struct.unpack(">bI", data[:5])
    assert (magic, schema_id) == (0, 701)
    from pachon.alerts import load_schema

    wire = fastavro.schemaless_reader(io.BytesIO(data[5:]), load_schema("7.1"), None)
    if wire["diaSource"]["snr"] > 10:
        expected.add(wire["diaSource"]["diaSourceId"])
    stats = replay(rubin, Broker(tmp_path, where="diaSource.snr > 10"))
    assert stats.received == 26
    assert _summary_ids(tmp_path) == expected and stats.matched == len(expected) == 8


def test_other_surveys_are_mapped_or_rejected(shared_data, tmp_path):
    stats = replay(shared_data / "alerts" / "other", Broker(tmp_path, where="diaSource.mag < 99"))
    reasons = [json.loads(x) for x in (tmp_path / "quarantine" / "reasons.jsonl").read_text().splitlines()]
    assert len(reasons) == 1 and "DESIRT/DECam alerts" in reasons[0]["reason"]
    summary = pq.read_table(tmp_path / "summary.parquet").to_pydict()
    assert set(summary["survey"]) == {"pgir", "winter", "ztf"}
    assert set(b for s, b in zip(summary["survey"], summary["band"], strict=True) if s == "pgir") == {"J"}
    assert stats.matched == 29 and stats.duplicates == 1  # boom's WINTER alert repeats one of winter/


def test_light_curve_features_by_hand():
    # alert 0: g at t=0 (20.0), r at t=0.5 (19.6), g now at t=2 (19.0): brightening 0.5 mag/day
    # alert 1: a single detection
    idx = np.array([0, 0, 0, 1])
    mjd = np.array([60000.0, 60000.5, 60002.0, 60010.0])
    mag = np.array([20.0, 19.6, 19.0, 21.0])
    band = np.array(["g", "r", "g", "r"])
    current = np.array([False, False, True, True])
    f = light_curve_features(2, idx, mjd, mag, band, current, color_window=2.0)
    assert f["ndet"].tolist() == [3, 1]
    np.testing.assert_allclose(f["dt_first"], [2.0, 0.0])
    np.testing.assert_allclose(f["dmag_dt"][0], -0.5)
    assert f["rise_rate"][0] == 0.5 and f["decline_rate"][0] == 0.0
    np.testing.assert_allclose(f["color_gr"][0], 19.0 - 19.6)
    assert np.isnan(f["dmag_dt"][1]) and np.isnan(f["color_gr"][1])
    f = light_curve_features(2, idx, mjd, mag, band, current, color_window=1.0)
    assert np.isnan(f["color_gr"][0])  # g and r 1.5 days apart


def test_cross_match_by_hand():
    cat = Catalog(np.array([10.0, 10.0, 200.0]), np.array([0.0, 0.0005, -30.0]), np.array(["a", "b", "c"]))
    ids, sep = cat.match(np.array([10.0, 10.0, 50.0]), np.array([0.0003, 0.0, 0.0]), radius_arcsec=2.0)
    assert ids.tolist() == ["b", "a", ""]
    np.testing.assert_allclose(sep[:2], [0.72, 0.0], atol=1e-6)
    assert np.isnan(sep[2])


def test_filter_with_catalog_and_python_function(shared_data, tmp_path):
    ztf = shared_data / "alerts" / "ztf" / "pittgoogle-2021-09-01"
    ras, decs, cids = [], [], []
    for path in sorted(ztf.glob("*.avro"))[:3]:
        with open(path, "rb") as handle:
            rec = next(fastavro.reader(handle))
        ras.append(rec["candidate"]["ra"] + 0.5 / 3600)
        decs.append(rec["candidate"]["dec"])
        cids.append(rec["candid"])
    catalog = tmp_path / "cat.csv"
    catalog.write_text("name,ra,dec\n" + "".join(f"s{i},{r!r},{d!r}\n" for i, (r, d) in
                                                   enumerate(zip(ras, decs, strict=True))))

    def not_first(table, survey):
        return pa.compute.not_equal(table.column("alertId"), cids[0]).to_numpy(zero_copy_only=False)

    out = tmp_path / "out"
    replay(ztf, Broker(out, where="xmatch.matched", catalog=catalog, radius_arcsec=2.0,
                       functions=[not_first]))
    summary = pq.read_table(out / "summary.parquet").to_pydict()
    assert sorted(summary["alertId"]) == sorted(cids[1:])
    assert summary["xmatch_id"] == ["s1", "s2"] or summary["xmatch_id"] == ["s2", "s1"]
    assert all(0.4 < s < 0.5 for s in summary["xmatch_sep_arcsec"])  # 0.5" in RA times cos(dec)


def test_bad_input_is_quarantined_and_the_stream_goes_on(tmp_path, night):
    visit, items = night[0]
    good = items[:5]
    corrupt = ("666", items[5][1][:200])  # truncated packet
    unknown = ("777", b"\x00" + struct.pack(">I", 9999) + items[6][1][5:])  # unknown schema id
    pub = FileLogPublisher(tmp_path / "log")
    publish_batch(pub, "lsst", visit, [good[0], corrupt, *good[1:3], unknown, *good[3:]])
    pub.close()
    out = tmp_path / "out"
    consumer = FileLogConsumer(tmp_path / "log", "broker")
    stats = follow(consumer, Broker(out, where="diaSource.snr > 0"), idle_timeout=0.3)
    assert stats.received == 7 and stats.quarantined == 2
    assert _summary_ids(out) == {int(k) for k, _ in good}
    lines = (out / "quarantine" / "reasons.jsonl").read_text().splitlines()
    reasons = {r["key"]: r for r in map(json.loads, lines)}
    assert "cannot be decoded" in reasons["666"]["reason"]
    assert "known schema id" in reasons["777"]["reason"]
    assert (out / "quarantine" / reasons["777"]["file"]).read_bytes()[:5] == b"\x00\x00\x00'\x0f"
    assert FileLogConsumer(tmp_path / "log", "broker").lag() == 0  # offsets committed


def test_filter_errors_are_clear(tmp_path):
    with pytest.raises(QueryError, match="not a valid SQL WHERE expression"):
        Broker(tmp_path, where="diaSource.snr >> 10 AND")
    with pytest.raises(QueryError, match="one expression"):
        Broker(tmp_path, where="1=1; DROP TABLE alerts")


def test_cli_replay_and_live(shared_data, tmp_path, night):
    runner = CliRunner()
    out = tmp_path / "replay"
    result = runner.invoke(cli, ["broker", "replay", str(shared_data / "alerts" / "ztf"),
                                 "--where", "candidate.magpsf < 18", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[0])["matched"] == 22
    result = runner.invoke(cli, ["broker", "replay", str(shared_data / "alerts" / "ztf"),
                                 "--where", "candidate.magpsf <", "--out", str(out)])
    assert result.exit_code == 2 and "not a valid SQL WHERE expression" in result.output

    log = tmp_path / "log"
    pub = FileLogPublisher(log)
    for visit, items in night[:2]:
        publish_batch(pub, "lsst", visit, items)
    pub.close()
    expected = {int(k) for _, items in night[:2] for k, v in items}
    live = tmp_path / "live"
    args = ["broker", "live", str(log), "--where", "features.ndet >= 1", "--out", str(live),
            "--idle-timeout", "0.3", "--output-stream", str(tmp_path / "filtered")]
    result = runner.invoke(cli, [*args, "--max-messages", "30"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, args)  # picks up where the group stopped
    assert json.loads(result.output.splitlines()[0])["received"] == 20
    assert len((live / "seen_keys.txt").read_text().split()) == 50
    republished = {int(m.key) for m in FileLogConsumer(tmp_path / "filtered", "x").poll(1000)}
    assert republished == expected

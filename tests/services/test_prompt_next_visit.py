"""The "next visit" endpoint of prompt processing, over HTTP, on a tiny simulated night.

The visit is announced before its raws are ingested; the service reads each detector's
calibrations, reference-catalog shards and template patches ahead, then runs the AP chain when
the raws land.  To prove the read-ahead objects are what the AP steps use, detector 0's flat is
moved away after the preload and before its raw arrives: ISR still succeeds.  (One detector
keeps the module quick; detectors failing independently are tested in test_prompt.py.)
"""

from __future__ import annotations

import io
import shutil
import time
import warnings
from pathlib import Path

import fastavro
import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from pachon.pipelines.demo import AP_OVERRIDES, ap_sim_dict, prepare_ap_repo
from pachon.repo import Repository
from pachon.services.prompt import PromptConfig, read_latency
from pachon.sim import SimConfig
from pachon.sim.api import simulate_survey

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

# Adaptive moments of single-frame measurement overflow on some faint sources (see test_ap_pipeline).
pytestmark = [pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]

DETECTORS = (0,)
HIDDEN = 0  # its flat is moved away once preloaded
ABSENT = 1  # a detector of the camera that is not simulated: its raw never lands


def _flat_paths(repo: Repository, instrument: str, detector: int) -> list[Path]:
    refs = repo.query_datasets("flat", f"{instrument}/calib", where="detector = :d", bind={"d": detector})
    assert refs
    return [Path(repo.datastore.full_path(repo.file_record(r).path)) for r in refs]


def _wait(client: TestClient, url: str, headers: dict, until: set[str], timeout: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(url, headers=headers).json()
        if all(d["state"] in until for d in status["detectors"]) or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def _message(visit, instrument: str, group: str, /, **changes) -> dict:
    start = Time(visit.mjd_start, format="mjd", scale="tai").utc
    msg = {"instrument": instrument, "group": group, "detectors": list(DETECTORS), "ra": visit.ra,
           "dec": visit.dec, "rotation": visit.rotation_deg, "band": visit.band,
           "expected_time": start.isot + "Z", "exposure_time": visit.exposure_time, "survey": "test"}
    msg.update(changes)
    return {k: v for k, v in msg.items() if v is not None}


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from pachon.core.skymap import SkyMap
    from pachon.repo.refcat import ingest_refcat
    from pachon.services.app import create_app
    from pachon.services.prompt.routes import configure
    from pachon.services.settings import ServiceSettings

    root = tmp_path_factory.mktemp("next_visit")
    cfg = SimConfig.from_dict(ap_sim_dict(2, 2, DETECTORS, transients=8))
    sim = simulate_survey(cfg, root / "sim", seed=7)
    first_day = min(v.day_obs for v in sim.visits)
    (visit,) = [v for v in sim.visits if v.day_obs != first_day]
    key = f"_{visit.day_obs}_{visit.seq_num:06d}_"
    science = [p for p in sim.raw_files if key in p.name]
    assert len(science) == len(DETECTORS)
    repo = Repository.create(root / "repo")
    assert not repo.ingest_raws([p for p in sim.all_raw_files if p not in science]).failed
    ingest_refcat(repo, cfg.refcat_name, sim.refcat_files)
    sky = SkyMap()
    repo.register_skymap(sky, tracts=sorted({int(sky.find_tract(v.ra, v.dec)) for v in sim.visits}))
    prepare_ap_repo(repo, sim.instrument, [f"refcats/{cfg.refcat_name}"], first_day)
    groups = {fits.getval(p, "GROUPID", ext=0) for p in science}  # what the observatory announces
    assert len(groups) == 1
    app = create_app(ServiceSettings(repo=repo.root, data_dir=root / "services"))
    manager = configure(app, PromptConfig(repo.root, poll_s=0.1, overrides=AP_OVERRIDES))
    tokens = {"admin": app.state.context.auth.create_token("observatory", ["exec:admin"]),
              "reader": app.state.context.auth.create_token("reader", ["read:tap"])}
    with TestClient(app) as client:
        yield {"repo": repo, "sim": sim, "visit": visit, "science": science, "instrument": sim.instrument,
               "client": client, "manager": manager, "tokens": tokens, "group": groups.pop()}
    repo.close()


@pytest.fixture(scope="module")
def processed(night: dict) -> dict:
    """Announce the visit, wait for the preloads, hide one flat, ingest the raws, wait for alerts."""
    client, repo = night["client"], night["repo"]
    auth = {"Authorization": f"Bearer {night['tokens']['admin']}"}
    group = night["group"]
    msg = _message(night["visit"], night["instrument"], group)
    r = client.post("/prompt/next-visit", json=msg, headers=auth)
    assert r.status_code == 202, r.text
    url = r.headers["Location"]
    preloaded = _wait(client, url, auth, {"waiting"})
    flats = _flat_paths(repo, night["instrument"], HIDDEN)
    for flat in flats:
        flat.rename(flat.with_name(flat.name + ".hidden"))
    try:
        assert not repo.ingest_raws(night["science"]).failed
        done = _wait(client, url, auth, {"succeeded", "failed"})
    finally:
        for flat in flats:
            flat.with_name(flat.name + ".hidden").rename(flat)
    again = client.post("/prompt/next-visit", json=msg, headers=auth)
    return {"url": url, "msg": msg, "preloaded": preloaded, "done": done, "again": again, "auth": auth,
            "group": group}


def test_preload_reads_inputs_before_the_raw(processed: dict) -> None:
    for d in processed["preloaded"]["detectors"]:
        assert d["state"] == "waiting" and d["exposure"] is None, d
        counts = d["preload_counts"]
        # bias, dark, flat (ISR), the reference catalog shards (calibrate), the template patches (diffim)
        assert {"bias", "dark", "flat", "template_coadd"} <= set(counts), counts
        assert any(k.startswith("sim_") for k in counts), counts
        assert d["preloaded"] == sum(counts.values()) and d["preload_s"] > 0


def test_detectors_processed_from_preloads(processed: dict, night: dict) -> None:
    repo = night["repo"]
    status = processed["done"]
    assert status["done"] and [d["detector"] for d in status["detectors"]] == list(DETECTORS)
    rows = {r["detector"]: r for r in read_latency(repo.root).to_pylist()}
    for d in status["detectors"]:
        assert d["state"] == "succeeded", d
        # every dataset read ahead was taken by the AP steps (the hidden flat among them)
        assert d["preload_hits"] == d["preloaded"] > 0
        r = rows[d["detector"]]
        assert r["group"] == processed["group"] and r["preloaded"] == r["preload_hits"] == d["preloaded"]
        # the preload ran between the notification and the raw: the latency from ingest excludes it
        assert r["notified_ns"] + r["preload_s"] * 1e9 <= r["ingest_ns"] < r["start_ns"] < r["end_ns"]
        assert r["since_notice_s"] == pytest.approx((r["end_ns"] - r["notified_ns"]) * 1e-9)
        assert r["since_notice_s"] > r["total_s"] > r["processing_s"] > 0
        assert np.all(np.array([r[f"{s}_s"] for s in ("isr", "calibrate", "diffim", "alerts")]) > 0)
        alerts = [a for ref in repo.query_datasets("alerts", r["run"])
                  for a in fastavro.reader(io.BytesIO(repo.get(ref)))]
        assert len(alerts) == r["n_alerts"] == d["n_alerts"] > 0
        assert {a["diaSource"]["detector"] for a in alerts} == {d["detector"]}


def test_same_visit_twice_runs_once(processed: dict, night: dict) -> None:
    again = processed["again"]
    assert again.status_code == 200, again.text
    assert [d["state"] for d in again.json()["detectors"]] == ["succeeded"] * len(DETECTORS)
    table = read_latency(night["repo"].root)
    assert sorted(table.column("detector").to_pylist()) == list(DETECTORS)


def test_same_group_other_values_conflict(processed: dict, night: dict) -> None:
    msg = {**processed["msg"], "ra": (processed["msg"]["ra"] + 1.0) % 360.0}
    r = night["client"].post("/prompt/next-visit", json=msg, headers=processed["auth"])
    assert r.status_code == 409 and "ra" in r.json()["detail"], r.text


@pytest.mark.parametrize(("change", "loc"), [
    ({"ra": None}, ["body", "ra"]),
    ({"dec": 91.0}, ["body", "dec"]),
    ({"expected_time": "tomorrow"}, ["body", "expected_time"]),
    ({"detectors": [0, 0]}, ["body", "detectors"]),
    ({"detectors": [0, 9999]}, ["body", "detectors", 1]),
    ({"band": "q"}, ["body", "band"]),
    ({"physical_filter": "nope"}, ["body", "physical_filter"]),
    ({"instrument": "HSC"}, ["body", "instrument"]),
    ({"instrument": "../etc/cam.yaml"}, ["body", "instrument"]),
    ({"colour": "red"}, ["body", "colour"]),
])
def test_bad_message_names_the_field(night: dict, change: dict, loc: list) -> None:
    msg = _message(night["visit"], night["instrument"], "G-bad", **change)
    if change.get("ra", 0) is None:
        msg.pop("ra", None)
    r = night["client"].post("/prompt/next-visit", json=msg,
                             headers={"Authorization": f"Bearer {night['tokens']['admin']}"})
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["detail"]] == [loc], r.text
    assert night["manager"].status(night["instrument"], "G-bad") is None


def test_not_json_is_422(night: dict) -> None:
    r = night["client"].post("/prompt/next-visit", content=b"{ra: 1", headers={
        "Authorization": f"Bearer {night['tokens']['admin']}", "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body"]


def test_needs_a_token_with_the_scope(night: dict) -> None:
    msg = _message(night["visit"], night["instrument"], "G-auth")
    client = night["client"]
    assert client.post("/prompt/next-visit", json=msg).status_code == 401
    reader = {"Authorization": f"Bearer {night['tokens']['reader']}"}
    assert client.post("/prompt/next-visit", json=msg, headers=reader).status_code == 403
    assert client.get("/prompt/visits", headers=reader).status_code == 403
    assert night["manager"].status(night["instrument"], "G-auth") is None


def test_unknown_visit_is_404(night: dict) -> None:
    auth = {"Authorization": f"Bearer {night['tokens']['admin']}"}
    r = night["client"].get(f"/prompt/visits/{night['instrument']}/no-such-group", headers=auth)
    assert r.status_code == 404 and "no-such-group" in r.json()["detail"]


def test_raw_that_never_lands_expires(processed: dict, night: dict) -> None:
    client, manager = night["client"], night["manager"]
    manager.raw_timeout_s = 0.3
    msg = _message(night["visit"], night["instrument"], "G-never", detectors=[ABSENT])
    r = client.post("/prompt/next-visit", json=msg, headers=processed["auth"])
    assert r.status_code == 202, r.text
    status = _wait(client, r.headers["Location"], processed["auth"], {"expired"}, timeout=60)
    assert [d["state"] for d in status["detectors"]] == ["expired"]
    listing = client.get("/prompt/visits", headers=processed["auth"]).json()["visits"]
    assert {(v["group"], v["done"]) for v in listing} == {(processed["group"], True), ("G-never", True)}


def test_fresh_service_does_not_rerun(processed: dict, night: dict, tmp_path: Path) -> None:
    """A restarted service (new app) is announced the same visit: its raws were processed already."""
    from pachon.services.app import create_app
    from pachon.services.prompt.routes import configure
    from pachon.services.settings import ServiceSettings

    repo = night["repo"]
    app = create_app(ServiceSettings(repo=repo.root, data_dir=tmp_path,
                                     anonymous_scopes={"prompt": ["exec:admin"]}))
    configure(app, PromptConfig(repo.root, poll_s=0.1, overrides=AP_OVERRIDES))
    with TestClient(app) as client:
        r = client.post("/prompt/next-visit", json=processed["msg"])
        assert r.status_code == 202, r.text
        status = _wait(client, r.headers["Location"], {}, {"processed_before"}, timeout=60)
    assert [d["state"] for d in status["detectors"]] == ["processed_before"] * len(DETECTORS)
    assert read_latency(repo.root).num_rows == len(DETECTORS)
    shutil.rmtree(tmp_path, ignore_errors=True)

"""The prompt-processing service on a tiny simulated night: raws arrive in two batches."""

from __future__ import annotations

import io
from pathlib import Path

import fastavro
import numpy as np
import pytest
from click.testing import CliRunner

from pachon.pipelines.demo import ap_sim_dict, prepare_ap_repo
from pachon.repo import Repository
from pachon.services.prompt import STEPS, PromptConfig, PromptService, read_latency
from pachon.sim import SimConfig
from pachon.sim.api import simulate_survey

# Adaptive moments of single-frame measurement overflow on some faint sources (see test_ap_pipeline).
pytestmark = [pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]

DETECTORS = (0, 1, 2)
BAD = 2


def _corrupt(repo: Repository, instrument: str, detector: int) -> None:
    """Overwrite the stored raw of one detector with bytes that are not FITS (a damaged file)."""
    refs = repo.query_datasets("raw", f"{instrument}/raw/all", where="exposure.observation_type = 'science' "
                               "AND detector = :d", bind={"d": detector})
    ref = max(refs, key=lambda r: r.data_id["exposure"])  # the science visit, not the template epoch
    path = Path(repo.datastore.full_path(repo.file_record(ref).path))
    path.write_bytes(b"\0" * path.stat().st_size)


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("prompt")
    cfg = SimConfig.from_dict(ap_sim_dict(2, 2, DETECTORS, transients=8))
    sim = simulate_survey(cfg, root / "sim", seed=5)
    first_day = min(v.day_obs for v in sim.visits)
    first = {f"_{v.day_obs}_{v.seq_num:06d}_" for v in sim.visits if v.day_obs == first_day}
    science = [p for p in sim.raw_files if not any(k in p.name for k in first)]
    repo = Repository.create(root / "repo")
    assert not repo.ingest_raws([p for p in sim.all_raw_files if p not in science]).failed
    from pachon.core.skymap import SkyMap
    from pachon.repo.refcat import ingest_refcat

    ingest_refcat(repo, cfg.refcat_name, sim.refcat_files)
    sky = SkyMap()
    repo.register_skymap(sky, tracts=sorted({int(sky.find_tract(v.ra, v.dec)) for v in sim.visits}))
    prepare_ap_repo(repo, sim.instrument, [f"refcats/{cfg.refcat_name}"], first_day)
    by_det = {d: [p for p in science if p.stem.endswith(f"_{name}")]
              for d, name in ((d.id, d.name) for d in cfg.get_instrument().detectors if d.id in DETECTORS)}
    assert all(len(v) == 1 for v in by_det.values()), by_det
    stream = root / "stream"
    from pachon.repo.butler import now_ns

    config = PromptConfig(repo.root, stream_url=str(stream), poll_s=0.2, since_ns=now_ns(),
                          overrides={"characterize": {"repair_cosmic_rays": False}})
    # batch 1: two detectors arrive; the service processes what is there and exits
    assert not repo.ingest_raws(by_det[0] + by_det[1]).failed
    service = PromptService(config)
    first_rows = service.run(once=True)
    service.close()
    # batch 2: the third detector arrives damaged; a fresh service (2 processes) skips the done ones
    assert not repo.ingest_raws(by_det[BAD]).failed
    _corrupt(repo, sim.instrument, BAD)
    config.workers = 2
    service = PromptService(config)
    second_rows = service.run(once=True)
    again = service.run(once=True)
    service.close()
    yield {"repo": repo, "first": first_rows, "second": second_rows, "again": again, "stream": stream,
           "instrument": sim.instrument}
    repo.close()


def test_each_detector_processed_once_as_it_arrives(night: dict) -> None:
    assert sorted(r["detector"] for r in night["first"]) == [0, 1]
    assert [r["detector"] for r in night["second"]] == [BAD]
    assert night["again"] == []
    table = read_latency(night["repo"].root)
    assert sorted(table.column("detector").to_pylist()) == [0, 1, BAD]


def test_good_detectors_make_alerts_and_latency(night: dict) -> None:
    repo = night["repo"]
    rows = {r["detector"]: r for r in read_latency(repo.root).to_pylist()}
    for det in (0, 1):
        r = rows[det]
        assert r["status"] == "succeeded", r
        steps = np.array([r[f"{s}_s"] for s in STEPS])
        assert np.all(steps > 0), r
        # the chain spans the steps, and the total adds the wait in the queue since ingest
        assert r["processing_s"] >= steps.sum() - 1e-3
        assert r["total_s"] == pytest.approx(r["queue_s"] + r["processing_s"], abs=1e-6)
        assert r["start_ns"] > r["ingest_ns"] and r["end_ns"] > r["start_ns"]
        refs = repo.query_datasets("alerts", r["run"])
        alerts = [a for ref in refs for a in fastavro.reader(io.BytesIO(repo.get(ref)))]
        assert len(alerts) == r["n_alerts"] > 0
        assert {a["diaSource"]["detector"] for a in alerts} == {det}


def test_failed_detector_has_record_and_no_alerts(night: dict) -> None:
    repo = night["repo"]
    r = next(r for r in read_latency(repo.root).to_pylist() if r["detector"] == BAD)
    assert r["status"] == "failed" and r["failed_step"] == "isr" and r["error"]
    assert r["n_alerts"] == 0 and np.isnan(r["alerts_s"])
    assert repo.query_datasets("isr_failure", r["run"])
    assert not repo.query_datasets("alerts", r["run"])


def test_stream_holds_the_alerts_of_good_detectors(night: dict) -> None:
    from pachon.alerts.stream import open_consumer

    rows = {r["detector"]: r for r in read_latency(night["repo"].root).to_pylist()}
    consumer = open_consumer(str(night["stream"]), "test")
    n = len(consumer.poll(max_messages=100_000))
    consumer.close()
    assert n == rows[0]["n_alerts"] + rows[1]["n_alerts"]


def test_cli_once_reports_nothing_new(night: dict) -> None:
    from pachon.cli.main import cli

    result = CliRunner().invoke(cli, ["-q", "prompt", "--repo", str(night["repo"].root), "--once", "--since",
                                      "now"])
    assert result.exit_code == 0, result.output
    assert "0 detectors processed" in result.output

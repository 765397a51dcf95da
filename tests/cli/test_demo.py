"""`pachon demo`: the main job runs end to end and reports what the repository holds."""

from __future__ import annotations

import fastavro
import pytest
from click.testing import CliRunner

from pachon.cli.main import cli
from pachon.repo import Repository
from pachon.services.prompt import read_latency


def test_demo_simulates_ingests_and_reports(tmp_path, shared_data):
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        cli,
        ["-q", "demo", "--out", str(out), "--visits", "2", "--nights", "1", "--real-data", str(shared_data),
         "--no-ap"],
    )
    assert result.exit_code == 0, result.output
    assert "every file matches its checksum" in result.output
    assert "PachonTestCam raws:" in result.output
    repo = Repository(out / "repo")
    science = repo.query_datasets(
        "raw", "PachonTestCam/raw/all", where="exposure.observation_type = 'science'"
    )
    assert len(science) == 2 * 4  # 2 visits x 4 detectors of the test camera
    real = repo.query_datasets("raw", "CAHA-CAFOS/raw/all")
    assert len(real) == 15
    assert repo.query_datasets("sim_gaia", "refcats/sim_gaia")
    repo.close()

    # a second run replaces its own output folder
    again = CliRunner().invoke(
        cli, ["-q", "demo", "--out", str(out), "--visits", "1", "--real-data", "/nonexistent", "--no-ap"]
    )
    assert again.exit_code == 0, again.output
    assert "simulated data only" in again.output


def test_demo_without_real_data(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        cli,
        ["-q", "demo", "--out", str(out), "--visits", "1", "--real-data", str(tmp_path / "absent"),
         "--no-ap"],
    )
    assert result.exit_code == 0, result.output
    assert "simulated data only" in result.output
    assert "every file matches its checksum" in result.output
    repo = Repository(out / "repo")
    assert {name for name, _ in repo.list_collections()} == {"PachonTestCam/raw/all", "refcats/sim_gaia"}
    raws = repo.query_datasets("raw", "PachonTestCam/raw/all", where="exposure.observation_type = 'science'")
    assert len(raws) == 4
    repo.close()


def test_demo_refuses_a_folder_it_did_not_make(tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete")
    result = CliRunner().invoke(cli, ["-q", "demo", "--out", str(out)])
    assert result.exit_code == 1
    assert "was not made by `pachon demo`" in result.output
    assert (out / "thesis.tex").read_text() == "do not delete"


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value encountered:RuntimeWarning")
def test_demo_runs_the_ap_chain_to_alerts(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["-q", "demo", "--out", str(out), "--visits", "2", "--nights", "2",
                                      "--detectors", "0", "--real-data", str(tmp_path / "absent")])
    assert result.exit_code == 0, result.output
    files = sorted((out / "alerts").glob("*.avro"))
    assert len(files) == 1  # one science visit x one detector
    with files[0].open("rb") as f:
        alerts = list(fastavro.reader(f))
    assert alerts and all(a["diaSource"]["band"] == "r" for a in alerts)
    assert f"alerts: {len(alerts)} packets from 1 detector-visits (0 failed)" in result.output
    assert str(alerts[0]["diaSource"]["diaSourceId"]) in result.output
    assert "latency per detector:" in result.output and "succeeded" in result.output
    assert "every file matches its checksum" in result.output
    (row,) = read_latency(out / "repo").to_pylist()
    assert row["status"] == "succeeded" and row["n_alerts"] == len(alerts)
    assert 0 < row["processing_s"] <= row["total_s"]

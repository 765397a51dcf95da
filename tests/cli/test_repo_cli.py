"""The repository commands through click's CliRunner."""

from __future__ import annotations

from click.testing import CliRunner
from repo_ingest_helpers import TINY_YAML, write_tiny_raw

from pachon.cli.main import cli


def test_repo_cli_round_trip(tmp_path):
    runner = CliRunner()
    root = str(tmp_path / "repo")
    res = runner.invoke(cli, ["repo", "create", root])
    assert res.exit_code == 0, res.output
    assert "created repository" in res.output
    res = runner.invoke(cli, ["repo", "create", root])
    assert res.exit_code == 1 and "already holds a repository" in res.output
    yaml_path = tmp_path / "tiny.yaml"
    yaml_path.write_text(TINY_YAML)
    files = [str(write_tiny_raw(tmp_path / f"r{i}.fits", i)) for i in range(3)]
    bad = tmp_path / "bad.fits"
    bad.write_text("not fits")
    res = runner.invoke(cli, ["ingest", root, *files, str(bad), "--instrument", str(yaml_path)])
    assert res.exit_code == 1
    assert "3 ingested, 0 already present, 1 failed" in res.output and "bad.fits" in res.output
    res = runner.invoke(cli, ["query", "datasets", root, "raw", "--where", "exposure.seq_num > 0"])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines[0].split()[:2] == ["type", "run"] and len(lines) == 4
    assert all("TinyCam/raw/all" in line for line in lines[1:])
    res = runner.invoke(
        cli, ["query", "dimensions", root, "exposure", "--where", "exposure.exposure_time = 30"]
    )
    assert res.exit_code == 0 and len(res.output.strip().splitlines()) == 4
    res = runner.invoke(cli, ["query", "dimensions", root, "detector"])
    assert "T0" in res.output
    res = runner.invoke(cli, ["collection", "create", root, "tags", "--type", "tagged"])
    assert res.exit_code == 0 and "created TAGGED collection tags" in res.output
    res = runner.invoke(cli, ["collection", "chain", root, "all", "tags", "TinyCam/raw/all"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["collection", "list", root])
    rows = {line.split()[0]: line.split()[1:] for line in res.output.strip().splitlines()[1:]}
    assert rows["all"] == ["CHAINED", "tags,", "TinyCam/raw/all"] and rows["tags"] == ["TAGGED"]
    res = runner.invoke(cli, ["query", "collections", root, "Tiny*"])
    assert "TinyCam/raw/all" in res.output and "tags" not in res.output
    res = runner.invoke(cli, ["query", "datasets", root, "raw", "-c", "all"])
    assert len(res.output.strip().splitlines()) == 4
    res = runner.invoke(cli, ["repo", "check", root])
    assert res.exit_code == 0 and "checked 3 files" in res.output and "OK" in res.output
    stored = next((tmp_path / "repo" / "datastore").rglob("*.fits"))
    stored.write_bytes(stored.read_bytes()[:-1] + b"\x01")
    res = runner.invoke(cli, ["repo", "check", root])
    assert res.exit_code == 1 and "CORRUPTED" in res.output
    res = runner.invoke(cli, ["query", "datasets", root, "raw", "--where", "nonsense ="])
    assert res.exit_code == 1 and "Error" in res.output
    res = runner.invoke(cli, ["repo", "check", str(tmp_path)])
    assert res.exit_code == 1 and "not a Pachón repository" in res.output

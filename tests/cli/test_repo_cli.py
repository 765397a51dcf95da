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


def _repo_with_biases(tmp_path):
    import numpy as np

    from pachon.repo import Repository

    root = tmp_path / "repo"
    repo = Repository.create(root)
    repo.insert_dimension_records("instrument", [{"name": "Cam", "detector_max": 2}])
    repo.insert_dimension_records("detector", [{"instrument": "Cam", "id": i} for i in range(2)])
    repo.register_dataset_type("bias", ["instrument", "detector"], "Numpy", is_calibration=True)
    refs = [
        repo.put(np.full(2, d), "bias", {"instrument": "Cam", "detector": d}, run="cp/run") for d in (0, 1)
    ]
    repo.close()
    return str(root), refs


def test_collection_certify_decertify_tag_untag(tmp_path):
    from pachon.repo import Repository

    runner = CliRunner()
    root, refs = _repo_with_biases(tmp_path)
    res = runner.invoke(cli, ["collection", "certify", root, "calib", "bias", "--run", "cp/run",
                              "--where", "detector = 0", "--begin", "2024-01-01T00:00:00",
                              "--end", "2024-02-01T00:00:00"])
    assert res.exit_code == 0, res.output
    assert "certified 1 bias dataset(s) in calib" in res.output
    repo = Repository(root)
    (cert,) = repo.registry.certifications("calib", "bias")
    assert cert["dataset_id"] == refs[0].id
    found = repo.find_dataset("bias", {"instrument": "Cam", "detector": 0}, collections="calib",
                              time="2024-01-15T00:00:00")
    assert found == refs[0]
    res = runner.invoke(cli, ["collection", "certify", root, "calib", "bias", "--run", "cp/run",
                              "--begin", "garbage"])
    assert res.exit_code == 1 and "begin" in res.output
    res = runner.invoke(cli, ["collection", "decertify", root, "calib", "bias",
                              "--begin", "2024-01-10T00:00:00", "--end", "2024-01-20T00:00:00"])
    assert res.exit_code == 0 and "decertified 1" in res.output, res.output
    assert len(repo.registry.certifications("calib", "bias")) == 2  # split around the hole
    res = runner.invoke(cli, ["collection", "tag", root, "best", "bias", "-c", "cp/run"])
    assert res.exit_code == 0 and "tagged 2 bias" in res.output, res.output
    assert set(repo.query_datasets("bias", "best")) == set(refs)
    res = runner.invoke(cli, ["collection", "untag", root, "best", "bias", "--where", "detector = 1"])
    assert res.exit_code == 0 and "untagged 1" in res.output, res.output
    assert repo.query_datasets("bias", "best") == [refs[0]]
    res = runner.invoke(cli, ["query", "datasets", root, "bias", "-c", "cp/run",
                              "--where", "detector = :d", "--bind", "d=1"])
    assert res.exit_code == 0 and len(res.output.strip().splitlines()) == 2, res.output
    assert str(refs[1].id) in res.output and str(refs[0].id) not in res.output
    res = runner.invoke(cli, ["query", "datasets", root, "bias", "--bind", "oops"])
    assert res.exit_code == 2 and "NAME=VALUE" in res.output
    res = runner.invoke(cli, ["query", "datasets", root, "bias", "--where", "detector = 'x'"])
    assert res.exit_code == 1 and "QueryError" in res.output and "integer" in res.output
    # remove: a chained RUN is refused untouched; unchained it is pruned with its files
    runner.invoke(cli, ["collection", "chain", root, "all", "cp/run"])
    res = runner.invoke(cli, ["collection", "remove", root, "cp/run"])
    assert res.exit_code == 1 and "CHAINED" in res.output
    assert len(repo.query_datasets("bias", "cp/run")) == 2
    runner.invoke(cli, ["collection", "chain", root, "all", "best"])
    res = runner.invoke(cli, ["collection", "remove", root, "cp/run"])
    assert res.exit_code == 0 and "2 datasets deleted" in res.output, res.output
    assert list(repo.datastore.walk()) == []
    repo.close()


def test_repo_check_fix_and_refcat_ingest(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    runner = CliRunner()
    root, _ = _repo_with_biases(tmp_path)
    orphan = tmp_path / "repo" / "datastore" / "cp" / "run" / "bias" / ".x.npy.tmp-123456"
    orphan.write_bytes(b"left by a crash")
    res = runner.invoke(cli, ["repo", "check", root])
    assert res.exit_code == 1 and "ORPHAN" in res.output
    res = runner.invoke(cli, ["repo", "check", root, "--fix"])
    assert res.exit_code == 0 and "removed" in res.output and not orphan.exists(), res.output
    res = runner.invoke(cli, ["repo", "check", root])
    assert res.exit_code == 0 and "checked 2 files" in res.output
    shard = tmp_path / "100.parquet"
    pq.write_table(pa.table({"ra": [1.0, 2.0], "dec": [3.0, 4.0]}), shard)
    bad = tmp_path / "notapixel.parquet"
    pq.write_table(pa.table({"ra": [1.0]}), bad)
    res = runner.invoke(cli, ["refcat", "ingest", root, "tiny_cat", str(shard), str(bad)])
    assert res.exit_code == 1 and "1 ingested" in res.output and "notapixel.parquet" in res.output
    res = runner.invoke(cli, ["query", "datasets", root, "tiny_cat"])
    assert res.exit_code == 0 and len(res.output.strip().splitlines()) == 2 and "100" in res.output


def test_repo_create_unreachable_database_leaves_nothing(tmp_path):
    import pytest

    pytest.importorskip("psycopg")
    runner = CliRunner()
    root = tmp_path / "new" / "repo"
    res = runner.invoke(cli, ["repo", "create", str(root), "--registry-url",
                              "postgresql+psycopg://nobody@127.0.0.1:1/none"])
    assert res.exit_code == 1 and "RepositoryError" in res.output
    assert not (tmp_path / "new").exists()

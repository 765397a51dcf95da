"""Two processes ingesting (or putting) the same datasets at once never lose a registered file."""

from __future__ import annotations

import multiprocessing
import os

import numpy as np
import pytest
from repo_ingest_helpers import tiny_instrument, write_tiny_raw

from pachon.repo import Repository
from pachon.repo.refs import DatasetRef

N_FILES = 8
ROUNDS = 3


def _ingest_worker(root, files, yaml_path, transfer, run, barrier, conn) -> None:  # noqa: ANN001
    from pachon.instruments import get_instrument

    try:
        repo = Repository(root)
        inst = get_instrument(yaml_path)
        barrier.wait(timeout=30)
        report = repo.ingest_raws(files, instrument=inst, transfer=transfer, run=run, chunk_size=3)
        conn.send((len(report.ingested), len(report.skipped), report.failed))
        repo.close()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        conn.send((-1, -1, [("worker", repr(exc))]))
    finally:
        conn.close()
        os._exit(0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("transfer", ["copy", "hardlink"])
def test_concurrent_ingest_of_the_same_files(repo, tmp_path, transfer):
    """Both processes place the same deterministic paths; the loser must report 'already
    present' and must not delete the winner's registered file (it used to: check found MISSING)."""
    tiny_instrument(tmp_path)
    yaml_path = tmp_path / "tinycam.yaml"
    src = tmp_path / "src"
    src.mkdir()
    files = [write_tiny_raw(src / f"raw{i:02d}.fits", i) for i in range(N_FILES)]
    ctx = multiprocessing.get_context("fork")
    repo.close()
    for round_ in range(ROUNDS):  # a new run per round: new ids and paths, a new race
        run = f"TinyCam/raw/round{round_}"
        barrier = ctx.Barrier(2)
        pipes = [ctx.Pipe(duplex=False) for _ in range(2)]
        procs = [
            ctx.Process(target=_ingest_worker, args=(repo.root, files, yaml_path, transfer, run, barrier, w))
            for _, w in pipes
        ]
        for p in procs:
            p.start()
        results = []
        for r, _ in pipes:
            assert r.poll(120), "an ingest worker did not answer"
            results.append(r.recv())
        for p in procs:
            p.join(timeout=60)
        assert all(failed == [] for _, _, failed in results), results
        assert sum(n for n, _, _ in results) == N_FILES, results  # each file registered once
        assert all(n + s == N_FILES for n, s, _ in results), results
        check_repo = Repository(repo.root)
        check = check_repo.check()
        assert check.ok and check.missing == [], check.lines()
        assert check.checked == N_FILES * (round_ + 1)
        assert len(check_repo.query_datasets("raw", run)) == N_FILES
        check_repo.close()


def test_failed_put_never_removes_a_registered_file(repo, populate):
    populate(repo)
    repo.register_dataset_type("arr", ["instrument", "detector"], "Numpy")
    repo.register_collection("run", "RUN")
    ref = DatasetRef(__import__("uuid").uuid4(), "arr", {"instrument": "Cam", "detector": 0}, "run")
    other = Repository(repo.root)

    def concurrent_winner() -> None:  # another process registers the same id first
        other.put_many([(ref, np.full(3, 2.0))], run="run")

    with pytest.raises(Exception, match="already exists|registered"):
        repo.put_many([(ref, np.full(3, 1.0))], run="run", before_commit=concurrent_winner)
    other.close()
    check = repo.check()
    assert check.ok, check.lines()
    assert np.array_equal(repo.get(ref), np.full(3, 2.0))


def test_put_replaces_only_unregistered_leftovers(repo, populate):
    populate(repo)
    repo.register_dataset_type("arr", ["instrument", "detector"], "Numpy")
    repo.register_collection("run", "RUN")
    ref = DatasetRef(__import__("uuid").uuid4(), "arr", {"instrument": "Cam", "detector": 1}, "run")
    dt = repo.get_dataset_type("arr")
    expanded = repo.registry.expand_data_id(dt, ref.data_id, {})
    leftover = repo.datastore.full_path(repo.file_path(dt, expanded, "run", ref.id))
    os.makedirs(os.path.dirname(leftover), exist_ok=True)
    with open(leftover, "wb") as f:
        f.write(b"partial junk from a killed attempt")
    (done,) = repo.put_many([(ref, np.arange(4.0))], run="run")
    assert np.array_equal(repo.get(done), np.arange(4.0)) and repo.check().ok

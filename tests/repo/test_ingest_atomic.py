"""Crash safety of ingest: kill the ingesting process at random moments, then check consistency.

The child is forked from the test process (so it starts without the import cost) and
SIGKILLed after a random delay spread over the whole ingest.  Afterwards every registered
dataset must have its file with the recorded checksum, no temporary file may be registered,
and running the ingest again must complete with exactly the full set.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
from repo_ingest_helpers import tiny_instrument, write_tiny_raw

from pachon.repo import Repository
from pachon.repo.datastore import TMP_MARKER, file_checksum

N_FILES = 30
N_KILLS = 20


def _child_ingest(root: Path, files: list[Path], instrument) -> None:
    try:
        repo = Repository(root)
        repo.ingest_raws(files, instrument=instrument, chunk_size=4)
    finally:
        os._exit(0)


def _ingest_in_child(root: Path, files: list[Path], instrument, kill_after: float | None) -> bool:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        _child_ingest(root, files, instrument)
    if kill_after is not None:
        time.sleep(kill_after)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status)


def _assert_consistent(repo: Repository) -> int:
    records = repo.registry.file_records()
    for rec in records:
        full = repo.datastore.full_path(rec.path)
        assert TMP_MARKER not in rec.path, f"temporary file registered: {rec.path}"
        assert os.path.exists(full), f"registered dataset without its file: {rec.path}"
        assert file_checksum(full) == rec.checksum, f"registered file with a wrong checksum: {rec.path}"
    refs = repo.query_datasets("raw", "TinyCam/raw/all") if records else []
    assert len(refs) == len(records)
    return len(records)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_ingest_survives_sigkill(tmp_path):
    inst = tiny_instrument(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    files = [write_tiny_raw(src / f"raw{i:02d}.fits", i) for i in range(N_FILES)]
    # calibrate: how long does an uninterrupted ingest take in a child?
    Repository.create(tmp_path / "calib").close()
    start = time.monotonic()
    assert not _ingest_in_child(tmp_path / "calib", files, inst, None)
    duration = time.monotonic() - start
    assert _assert_consistent(Repository(tmp_path / "calib")) == N_FILES
    rng = random.Random(20240301)
    killed_mid_way = 0
    for seed in range(N_KILLS):
        root = tmp_path / f"repo{seed}"
        Repository.create(root).close()
        if _ingest_in_child(root, files, inst, rng.uniform(0.3 * duration, duration)):
            repo = Repository(root)
            n = _assert_consistent(repo)
            killed_mid_way += 0 < n < N_FILES
            report = repo.ingest_raws(files, instrument=inst)
            assert report.failed == []
            assert len(report.skipped) == n and len(report.ingested) == N_FILES - n
            assert _assert_consistent(repo) == N_FILES
            check = repo.check(fix=True)
            assert not check.missing and not check.corrupted
            assert all(TMP_MARKER in p or p.endswith(".fits") for p in check.orphans)
            assert repo.check().ok
            repo.close()
    assert killed_mid_way >= 3, "the kills should land in the middle of the ingest several times"

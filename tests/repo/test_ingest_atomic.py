"""Crash safety of ingest: the ingesting process is SIGKILLed at chosen points, then checked.

The child is forked from the test process and kills itself through the ingest's
``fault_hook`` at a chosen place: after some files are placed (before their registration),
inside the registry transaction (before commit), and after the commit before ``move``
deletes the sources.  The number of registered datasets after each kill is therefore known
exactly; every registered dataset must have its file with the recorded checksum, and running
the ingest again must complete with exactly the full set.  Runs with ``copy`` and ``move`` on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import signal

import pytest
from repo_ingest_helpers import tiny_instrument, write_tiny_raw

from pachon.repo import Repository
from pachon.repo.datastore import TMP_MARKER, file_checksum

N_FILES = 10
CHUNK = 4
#: (stage, occurrence of that stage at which to die, datasets registered afterwards)
KILL_POINTS = [("placed", 1, 0), ("placed", 6, 4), ("registering", 2, 4), ("committed", 1, 4)]


def _child_ingest(root, files, instrument, transfer, run, stage, occurrence) -> None:  # noqa: ANN001
    import pachon.repo.ingest as ingest_module

    seen = {"n": 0}

    def hook(at: str, _count: int) -> None:
        if at == stage:
            seen["n"] += 1
            if seen["n"] == occurrence:
                os.kill(os.getpid(), signal.SIGKILL)

    try:
        ingest_module.fault_hook = hook
        repo = Repository(root)
        repo.ingest_raws(files, instrument=instrument, transfer=transfer, run=run, chunk_size=CHUNK)
    finally:
        os._exit(3)  # reached only when the kill did not happen


def _killed_ingest(root, files, instrument, transfer, run, stage, occurrence) -> bool:  # noqa: ANN001
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        _child_ingest(root, files, instrument, transfer, run, stage, occurrence)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def _assert_consistent(repo: Repository, run: str) -> int:
    refs = repo.query_datasets("raw", run) if run in {c for c, _ in repo.list_collections()} else []
    records = repo.registry.file_records([r.id for r in refs])
    assert len(records) == len(refs)
    for rec in records:
        full = repo.datastore.full_path(rec.path)
        assert TMP_MARKER not in rec.path, f"temporary file registered: {rec.path}"
        assert os.path.exists(full), f"registered dataset without its file: {rec.path}"
        assert file_checksum(full) == rec.checksum, f"registered file with a wrong checksum: {rec.path}"
    return len(refs)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("transfer", ["copy", "move"])
def test_ingest_survives_sigkill(repo, tmp_path, transfer):
    inst = tiny_instrument(tmp_path)
    originals = tmp_path / "originals"
    originals.mkdir()
    sources = [write_tiny_raw(originals / f"raw{i:02d}.fits", i) for i in range(N_FILES)]
    repo.close()
    for n, (stage, occurrence, expected) in enumerate(KILL_POINTS):
        if transfer != "move" and stage == "committed":
            continue
        src = tmp_path / f"src{n}"
        src.mkdir()
        files = [shutil.copy2(f, src / f.name) for f in sources]
        run = f"TinyCam/raw/kill{n}"
        assert _killed_ingest(repo.root, files, inst, transfer, run, stage, occurrence), (stage, occurrence)
        again = Repository(repo.root)
        assert _assert_consistent(again, run) == expected, (stage, occurrence)
        present = [f for f in files if os.path.exists(f)]
        # move deletes the sources of committed chunks, after their commit only
        deleted = expected if transfer == "move" and stage != "committed" else 0
        assert len(present) == N_FILES - deleted
        report = again.ingest_raws(present, instrument=inst, transfer=transfer, run=run, chunk_size=CHUNK)
        assert report.failed == []
        assert len(report.skipped) == expected - deleted
        assert len(report.ingested) == N_FILES - expected
        assert _assert_consistent(again, run) == N_FILES
        if transfer == "move":  # sources of datasets already present are kept
            assert sum(os.path.exists(f) for f in files) == expected - deleted
        check = again.check(fix=True)
        assert not check.missing and not check.corrupted
        assert all(TMP_MARKER in p or p.endswith(".fits") for p in check.orphans)
        assert again.check().ok
        again.close()

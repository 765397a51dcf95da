"""Repository benchmark: raw ingest rate and registry query latency, SQLite vs PostgreSQL.

Run by hand (not part of the test suite)::

    .venv/bin/python benchmarks/bench_repo.py [--files 400] [--exposures 1000] [--detectors 100]

It prints, for each registry back end measured in the same run:

- ingest rate (files/s) of small raw FITS files through a generic YAML camera, and its ratio to
  the baseline of copying the same files and computing their SHA-256 (what any ingest must do);
- bulk registration rate of 10^5 datasets (file records and provenance included);
- median latency of typical registry queries over those 10^5 datasets, and its ratio to the
  same lookup written by hand in SQL on the same database (the floor a registry can reach).

PostgreSQL is a private server started from the Debian binaries (skipped with a message when
they are absent).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from astropy.io import fits

from pachon.repo import Repository
from pachon.repo.refs import DatasetRef, data_key
from pachon.repo.registry import FileRecord, NewDataset

CAMERA_YAML = """
name: BenchCam
description: benchmark camera, one 64x64 detector
match: {INSTRUME: BENCHCCD}
plate_scale: 10.0
pixel_size_mm: 0.015
detectors:
  - id: 0
    name: B0
    width: 64
    height: 64
    gain: 1.5
    read_noise: 5.0
    saturation: 65535
filters: {"r": r}
header:
  exposure_time: EXPTIME
  time: {key: DATE-OBS, format: isot, scale: utc}
  filter: {key: FILTER}
  object: OBJECT
  observation_type: {key: IMAGETYP, map: {object: science, bias: bias}}
  ra: {key: RA, unit: deg}
  dec: {key: DEC, unit: deg}
  exposure_id: {source: time}
"""


def write_raws(folder: Path, n: int) -> list[Path]:
    """``n`` 64x64 uint16 raws of BenchCam, one minute apart."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    paths = []
    for i in range(n):
        hdr = fits.Header()
        hdr["INSTRUME"] = "BENCHCCD"
        hdr["DATE-OBS"] = f"2025-01-{1 + i // 1440:02d}T{(i // 60) % 24:02d}:{i % 60:02d}:00"
        hdr["EXPTIME"] = 30.0
        hdr["FILTER"] = "r"
        hdr["OBJECT"] = "field"
        hdr["IMAGETYP"] = "object"
        hdr["RA"] = 150.0
        hdr["DEC"] = 2.0
        data = rng.integers(900, 1100, size=(64, 64), dtype=np.uint16)
        path = folder / f"raw_{i:05d}.fits"
        fits.PrimaryHDU(data, hdr).writeto(path)
        paths.append(path)
    return paths


def baseline_copy(paths: list[Path], dest: Path) -> float:
    """Seconds to copy the files and compute their SHA-256: the floor of any ingest."""
    dest.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for p in paths:
        target = dest / p.name
        shutil.copyfile(p, target)
        hashlib.sha256(target.read_bytes()).hexdigest()
    return time.perf_counter() - start


def bench_ingest(repo: Repository, paths: list[Path], camera: Path) -> float:
    """Seconds to ingest ``paths`` into ``repo``."""
    start = time.perf_counter()
    report = repo.ingest_raws(paths, instrument=str(camera))
    elapsed = time.perf_counter() - start
    if report.failed or len(report.ingested) != len(paths):
        raise RuntimeError(f"ingest failed: {report.summary()} {report.failed[:3]}")
    return elapsed


def populate(repo: Repository, n_exposures: int, n_detectors: int) -> float:
    """Register ``n_exposures * n_detectors`` calexp datasets (no files); return seconds."""
    repo.insert_dimension_records("instrument", [{"name": "Synth", "detector_max": n_detectors}])
    repo.insert_dimension_records(
        "physical_filter",
        [{"instrument": "Synth", "name": f"{b}_1", "band": b} for b in "ugrizy"],
    )
    repo.insert_dimension_records(
        "detector", [{"instrument": "Synth", "id": d, "full_name": f"S{d:03d}"} for d in range(n_detectors)]
    )
    repo.insert_dimension_records(
        "day_obs", [{"instrument": "Synth", "id": 20250101 + e // 100} for e in range(0, n_exposures, 100)]
    )
    repo.insert_dimension_records(
        "exposure",
        [
            {
                "instrument": "Synth",
                "id": e,
                "physical_filter": f"{'ugrizy'[e % 6]}_1",
                "band": "ugrizy"[e % 6],
                "day_obs": 20250101 + e // 100,
                "exposure_time": 15.0 + e % 4 * 15.0,
                "datetime_begin": "2025-01-01T00:00:00",
            }
            for e in range(n_exposures)
        ],
    )
    dt = repo.register_dataset_type("calexp", ["instrument", "exposure", "detector"], "Exposure")
    run = "bench/run"
    repo.register_collection(run, "RUN")
    cache: dict = {}
    start = time.perf_counter()
    batch: list[NewDataset] = []
    for e in range(n_exposures):
        for d in range(n_detectors):
            data_id = repo.registry.expand_data_id(
                dt, {"instrument": "Synth", "exposure": e, "detector": d}, cache
            )
            ref = DatasetRef(uuid.uuid4(), "calexp", data_id, run)
            path = f"{run}/calexp/calexp_{e}_{d}.fits"
            batch.append(
                NewDataset(
                    ref,
                    data_key(dt.dimensions, data_id),
                    FileRecord(ref.id, path, 1000, "0" * 64, "Exposure", "fits"),
                    {"task": "bench", "software_version": "bench"},
                )
            )
        if len(batch) >= 10_000:
            repo.registry.insert_datasets(run, batch)
            batch = []
    if batch:
        repo.registry.insert_datasets(run, batch)
    return time.perf_counter() - start


def median_ms(func: Callable[[], Any], repeat: int = 30) -> float:
    """Median wall time of ``func`` in milliseconds (one warm-up call first)."""
    func()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def bench_queries(repo: Repository, n_exposures: int) -> dict[str, tuple[float, float]]:
    """Median latency (ms) of registry queries and of the hand-written SQL floor."""
    rng = np.random.default_rng(2)
    exposures = rng.integers(0, n_exposures, size=64).tolist()
    it = iter(exposures * 100)
    engine = repo.registry.db.engine
    coll = "bench/run"

    def raw_sql(sql: str, **params: Any) -> Callable[[], Any]:
        stmt = sa.text(sql)

        def run() -> Any:
            with engine.connect() as conn:
                return conn.execute(stmt, params).fetchall()

        return run

    dataset_cols = {c.name for c in repo.registry.db.tables["dataset"].columns}
    detector_col = "detector" if "detector" in dataset_cols else None
    out = {}
    out["find one dataset by data ID"] = (
        median_ms(lambda: repo.find_dataset(
            "calexp", {"instrument": "Synth", "exposure": next(it), "detector": 7}, collections=coll
        )),
        median_ms(raw_sql(
            f"SELECT * FROM dataset WHERE exposure = :e AND {detector_col} = 7", e=exposures[0]
        )) if detector_col else float("nan"),
    )
    out["where exposure = N (100 rows)"] = (
        median_ms(lambda: repo.query_datasets("calexp", coll, where=f"exposure = {next(it)}")),
        median_ms(raw_sql("SELECT * FROM dataset WHERE exposure = :e", e=exposures[1])),
    )
    out["where band='g' AND exposure.exposure_time > 40 AND detector IN (0..9)"] = (
        median_ms(
            lambda: repo.query_datasets(
                "calexp", coll, where="band = 'g' AND exposure.exposure_time > 40 AND detector IN (0..9)"
            ),
            repeat=10,
        ),
        float("nan"),
    )
    out["query_data_ids(exposure) where day_obs = D"] = (
        median_ms(lambda: repo.query_data_ids(["exposure"], where="day_obs = 20250105"), repeat=10),
        float("nan"),
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=400, help="raw files to ingest")
    parser.add_argument("--exposures", type=int, default=1000, help="exposures (x 100 detectors)")
    parser.add_argument("--detectors", type=int, default=100)
    args = parser.parse_args()
    n_datasets = args.exposures * args.detectors

    tmp = Path(tempfile.mkdtemp(prefix="pachon-bench-"))
    camera = tmp / "benchcam.yaml"
    camera.write_text(CAMERA_YAML)
    paths = write_raws(tmp / "raws", args.files)
    base = baseline_copy(paths, tmp / "copies")
    print(f"baseline: copy + sha256 of {len(paths)} files: {base:.2f} s ({len(paths) / base:.0f} files/s)")

    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    server = None
    try:
        from pachon.testing.postgres import TemporaryPostgres

        server = TemporaryPostgres().start()
        backends.append(("postgresql", server.create_database("bench")))
    except Exception as exc:  # noqa: BLE001 - the benchmark goes on without PostgreSQL
        print(f"PostgreSQL skipped: {exc}")
    try:
        results = {}
        for name, url in backends:
            repo = Repository.create(tmp / f"repo-{name}", registry_url=url)
            t_ingest = bench_ingest(repo, paths, camera)
            t_again = bench_ingest_again(repo, paths, camera)
            t_bulk = populate(repo, args.exposures, args.detectors)
            queries = bench_queries(repo, args.exposures)
            results[name] = (t_ingest, t_again, t_bulk, queries)
            repo.close()
            print(f"\n== {name} ==")
            print(
                f"ingest: {len(paths) / t_ingest:.0f} files/s "
                f"({t_ingest / base:.1f}x the copy+checksum baseline); "
                f"re-ingest (no-op): {len(paths) / t_again:.0f} files/s"
            )
            print(f"bulk registration: {n_datasets} datasets in {t_bulk:.1f} s ({n_datasets / t_bulk:.0f}/s)")
            for label, (ms, floor) in queries.items():
                ratio = f" ({ms / floor:.1f}x hand-written SQL: {floor:.2f} ms)" if floor == floor else ""
                print(f"  {label}: {ms:.2f} ms{ratio}")
        if len(results) == 2:
            print("\n== PostgreSQL / SQLite ==")
            s, p = results["sqlite"], results["postgresql"]
            print(f"  ingest time ratio: {p[0] / s[0]:.2f}; bulk registration ratio: {p[2] / s[2]:.2f}")
            for label in s[3]:
                print(f"  {label}: {p[3][label][0] / s[3][label][0]:.2f}")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def bench_ingest_again(repo: Repository, paths: list[Path], camera: Path) -> float:
    """Seconds to re-ingest the same files (every one must be skipped)."""
    start = time.perf_counter()
    report = repo.ingest_raws(paths, instrument=str(camera))
    elapsed = time.perf_counter() - start
    if len(report.skipped) != len(paths):
        raise RuntimeError(f"re-ingest was not a no-op: {report.summary()}")
    return elapsed


if __name__ == "__main__":
    main()

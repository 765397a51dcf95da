"""The main job shown by ``pachon demo``: a small night from the simulator into a repository.

It simulates a short survey of the test camera (raw science frames, bias/dark/flat frames, a
reference catalog and the truth tables), creates a repository, ingests everything, registers the
sky map tracts that cover the fields, ingests the real telescope frames of ``../shared/data``
when that folder is present, verifies every file against its checksum, and summarizes what the
repository holds. It grows as capabilities land.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pachon.core.errors import ConfigError

__all__ = ["DemoConfig", "DemoReport", "run_demo", "REAL_DATA_GLOBS"]

_log = logging.getLogger(__name__)

#: Marker file that lets a later ``pachon demo`` replace its own output folder, and only that.
MARKER = ".pachon-demo"

#: Real raw frames of ``../shared/data`` ingested when present (relative glob patterns).
REAL_DATA_GLOBS = (
    "isr/caha-cafos-ngc2420/*.fits",
    "isr/saao-overscan/*.fits",
    "astrometry/hatp32-microobservatory/*.FITS",
    "diffim/decam-sfft/input_data/DEC-OBS*.mini.fits",
)


@dataclass
class DemoConfig:
    """What ``pachon demo`` does.

    Attributes
    ----------
    out
        Output folder (repository in ``out/repo``, simulator output in ``out/sim``).
    visits
        Number of simulated science visits.
    nights
        Number of nights they are spread over.
    seed
        Seed of the simulation (same seed, same pixels).
    real_data
        Folder of real telescope data to ingest too (``None`` to skip).
    registry_url
        Registry database URL (default: SQLite in the repository).
    """

    out: Path = Path("demo-out")
    visits: int = 6
    nights: int = 2
    seed: int = 1
    real_data: Path | None = None
    registry_url: str | None = None


@dataclass
class DemoReport:
    """What the demo did and what the repository holds."""

    repo_root: Path
    timings: dict[str, float] = field(default_factory=dict)
    ingest_summaries: dict[str, str] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    exposures: list[dict[str, Any]] = field(default_factory=list)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    check_ok: bool = False
    check_lines: list[str] = field(default_factory=list)


def _prepare_out(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise ConfigError(
                f"--out {out} exists and was not made by `pachon demo`; choose an empty or new folder"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by pachon demo; the next `pachon demo --out` here replaces it\n")


def run_demo(config: DemoConfig) -> DemoReport:
    """Run the demo and return its report (nothing is printed here).

    Raises
    ------
    ConfigError
        ``config.out`` holds something that ``pachon demo`` did not make.
    """
    from pachon.core.skymap import SkyMap
    from pachon.repo import Repository
    from pachon.repo.refcat import ingest_refcat
    from pachon.sim.api import simulate_survey
    from pachon.sim.config import SimConfig

    out = Path(config.out).resolve()
    _prepare_out(out)
    report = DemoReport(repo_root=out / "repo")
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        report.timings[name] = now - clock
        clock = now

    sim_config = SimConfig.from_dict({"survey": {"n_visits": config.visits, "n_nights": config.nights}})
    _log.info("simulating %d visits of %s", config.visits, sim_config.instrument)
    sim = simulate_survey(sim_config, out / "sim", seed=config.seed)
    lap("simulate")

    repo = Repository.create(report.repo_root, registry_url=config.registry_url)
    raws = repo.ingest_raws(sim.all_raw_files)
    report.ingest_summaries[f"{sim.instrument} raws"] = raws.summary()
    report.failures += raws.failed
    refcat = ingest_refcat(repo, sim_config.refcat_name, sim.refcat_files)
    report.ingest_summaries[f"reference catalog {sim_config.refcat_name}"] = refcat.summary()
    report.failures += refcat.failed
    skymap = SkyMap()
    tracts = sorted({int(skymap.find_tract(v.ra, v.dec)) for v in sim.visits})
    repo.register_skymap(skymap, tracts=tracts)
    lap("ingest simulated")

    if config.real_data is not None and Path(config.real_data).is_dir():
        files = sorted(p for pattern in REAL_DATA_GLOBS for p in Path(config.real_data).glob(pattern))
        real = repo.ingest_raws(files)
        report.ingest_summaries[f"real frames from {config.real_data}"] = real.summary()
        report.failures += real.failed
        lap("ingest real")

    check = repo.check()
    report.check_ok = check.ok
    report.check_lines = list(check.lines())
    lap("check")
    report.exposures = _exposure_summary(repo)
    report.datasets = _dataset_summary(repo)
    repo.close()
    return report


def _exposure_summary(repo: Any) -> list[dict[str, Any]]:
    counts: dict[tuple[str, str, str], int] = {}
    for rec in repo.query_dimension_records("exposure"):
        key = (rec["instrument"], rec["observation_type"] or "?", rec.get("band") or "-")
        counts[key] = counts.get(key, 0) + 1
    return [
        {"instrument": i, "observation_type": t, "band": b, "exposures": n}
        for (i, t, b), n in sorted(counts.items())
    ]


def _dataset_summary(repo: Any) -> list[dict[str, Any]]:
    rows = []
    runs = [name for name, _ in repo.registry.list_collections(types=["RUN"])]
    for dt in repo.registry.list_dataset_types():
        for run in runs:
            refs = repo.query_datasets(dt.name, run, find_first=False)
            if refs:
                rows.append({"dataset_type": dt.name, "run": run, "datasets": len(refs)})
    return rows

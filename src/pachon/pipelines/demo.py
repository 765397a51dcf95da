"""The main job shown by ``pachon demo``: a small night from the simulator into a repository.

It simulates a short survey of the test camera (raw science frames, bias/dark/flat frames, a
reference catalog and the truth tables), creates a repository, ingests the calibration frames
and the first night (the template epoch), registers the sky map tracts that cover the fields,
makes and certifies bias/dark/flat, calibrates the first night and builds the templates
(:func:`prepare_ap_repo`), then ingests the science visits of the later nights and hands the
repository to ``config.process`` (``pachon demo`` passes the prompt-processing service, which
runs the AP chain and writes alerts).  It also ingests the real telescope frames of
``../shared/data`` when that folder is present, verifies every file against its checksum, and
summarizes what the repository holds.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pachon.core.errors import ConfigError

__all__ = ["DemoConfig", "DemoReport", "run_demo", "REAL_DATA_GLOBS", "ap_sim_dict", "prepare_ap_repo",
           "AP_OVERRIDES"]

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

#: The simulated survey has no cosmic rays: the AP chain skips their repair (faster).
AP_OVERRIDES: dict[str, dict[str, Any]] = {"characterize": {"repair_cosmic_rays": False}}


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
    detectors
        Simulated detectors (all of the camera when None).
    transients
        Number of simulated transients (they make the alerts).
    process
        Called as ``process(repo, since_ns)`` once the science raws are ingested (``since_ns``:
        the time just before their ingest; ``pachon demo`` passes the prompt service); its
        result is ``DemoReport.processed``.  With ``None`` (or
        fewer than 2 nights: the first night makes the templates) the AP preparation (cp,
        templates) is skipped and every raw is ingested at once.
    """

    out: Path = Path("demo-out")
    visits: int = 6
    nights: int = 2
    seed: int = 1
    real_data: Path | None = None
    registry_url: str | None = None
    detectors: tuple[int, ...] | None = None
    transients: int = 8
    process: Callable[[Any, int], Any] | None = None


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
    processed: Any = None


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

    ap = config.process is not None and config.nights >= 2
    sim_config = SimConfig.from_dict(ap_sim_dict(config.visits, config.nights, config.detectors,
                                                 config.transients) if ap else
                                     {"survey": {"n_visits": config.visits, "n_nights": config.nights},
                                      "detectors": config.detectors})
    _log.info("simulating %d visits of %s", config.visits, sim_config.instrument)
    sim = simulate_survey(sim_config, out / "sim", seed=config.seed)
    lap("simulate")

    repo = Repository.create(report.repo_root, registry_url=config.registry_url)
    first_day = min(v.day_obs for v in sim.visits)
    first = {f"_{v.day_obs}_{v.seq_num:06d}_" for v in sim.visits if v.day_obs == first_day}
    later = [p for p in sim.raw_files if not any(k in p.name for k in first)] if ap else []
    early = [p for p in sim.all_raw_files if p not in set(later)]
    raws = repo.ingest_raws(early)
    report.failures += raws.failed
    refcat = ingest_refcat(repo, sim_config.refcat_name, sim.refcat_files)
    report.ingest_summaries[f"reference catalog {sim_config.refcat_name}"] = refcat.summary()
    report.failures += refcat.failed
    skymap = SkyMap()
    tracts = sorted({int(skymap.find_tract(v.ra, v.dec)) for v in sim.visits})
    repo.register_skymap(skymap, tracts=tracts)
    lap("ingest simulated")
    if ap:
        prepare_ap_repo(repo, sim.instrument, [f"refcats/{sim_config.refcat_name}"], first_day)
        lap("calibrations and templates")
        from pachon.repo.butler import now_ns

        since_ns = now_ns()
        science = repo.ingest_raws(later)
        report.failures += science.failed
        report.ingest_summaries[f"{sim.instrument} raws (calibrations, template night)"] = raws.summary()
        report.ingest_summaries[f"{sim.instrument} raws (science visits)"] = science.summary()
        lap("ingest science")
        report.processed = config.process(repo, since_ns)
        lap("prompt processing")
    else:
        report.ingest_summaries[f"{sim.instrument} raws"] = raws.summary()

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


def ap_sim_dict(visits: int, nights: int, detectors: tuple[int, ...] | None = None,
                transients: int = 8) -> dict[str, Any]:
    """Simulator settings of the AP demo: one field in r, no cosmic rays or satellites, transients."""
    return {
        "detectors": list(detectors) if detectors is not None else None,
        "survey": {"n_visits": visits, "bands": ["r"], "n_nights": nights},
        "sky": {"satellite_probability": 0.0, "n_transients": transients, "variable_fraction": 0.05,
                "n_movers": 0, "star_density": 80000.0},
        "refcat_mag_limit": 23.0,
        "detector": {"cosmic_ray_rate": 0.0},
        "calibs": {"n_bias": 3, "n_dark": 2, "n_flat": 3},
    }


def prepare_ap_repo(repo: Any, instrument: str, refcats: list[str], template_day: int,
                    *, overrides: dict[str, dict[str, Any]] | None = None) -> None:
    """Make what the AP chain needs from ingested raws: certified calibrations and templates.

    Runs the ``bias``, ``dark`` and ``flat`` subsets of ``cp.yaml`` (certified into
    ``<instrument>/calib``), single-frame processing of the science raws of ``template_day``
    (``templates/calexp``) and the ``template`` subset of ``diffim.yaml`` (``templates``).

    Parameters
    ----------
    repo
        Repository holding the raws (``<instrument>/raw/all``), reference catalogs and sky map.
    instrument
        Instrument name.
    refcats
        Reference-catalog collections.
    template_day
        ``day_obs`` of the template epoch.
    overrides
        Per-task config of the single-frame tasks (default `AP_OVERRIDES`).

    Raises
    ------
    PachonError
        A step failed (its summary names the failed quanta).
    """
    import yaml

    from pachon.core.errors import PachonError
    from pachon.pipe import Pipeline, run_pipeline
    from pachon.pipelines.ap import load_ap_pipeline
    from pachon.pipelines.cp_certify import certify_calibrations

    raw, calib = f"{instrument}/raw/all", f"{instrument}/calib"
    here = Path(__file__).parent
    cp = yaml.safe_load((here / "cp.yaml").read_text())
    diffim = yaml.safe_load((here / "diffim.yaml").read_text())
    repo.register_collection(calib, "CALIBRATION")

    def check(rep: Any, what: str) -> None:
        if not rep.ok:
            raise PachonError(f"demo: {what} failed:\n{rep.summary()}")

    for sub in ("bias", "dark", "flat"):
        check(run_pipeline(repo, Pipeline.from_dict(cp, source="cp.yaml").subset(sub), inputs=[raw, calib],
                           output=f"cp/{sub}"), f"cp.yaml#{sub}")
        certify_calibrations(repo, f"cp/{sub}", calib)
    sfp = load_ap_pipeline(repo.root, subset="sfp", overrides=overrides or AP_OVERRIDES)
    sfp_report = run_pipeline(repo, sfp, inputs=[raw, calib, *refcats], output="templates/calexp",
                              where=f"exposure.day_obs = {int(template_day)}")
    if not sfp_report.ok:
        # a detector-visit that cannot be calibrated (too few reference stars, say) leaves a
        # failure record and no calexp; the templates are coadded from the others
        if not sfp_report.counts().get("calibrate", {}).get("succeeded", 0):
            check(sfp_report, "single-frame processing of the template night")
        _log.warning("template night: %d quanta failed; templates use the others:\n%s",
                     len(sfp_report.failures()), sfp_report.table())
    check(run_pipeline(repo, Pipeline.from_dict(diffim, source="diffim.yaml").subset("template"),
                       inputs=["templates/calexp"], output="templates"), "diffim.yaml#template")

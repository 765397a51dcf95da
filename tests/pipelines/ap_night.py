"""Helpers of the AP tests: a simulated multi-night survey through cp, templates and the AP pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pachon.core.skymap import SkyMap
from pachon.pipe import Pipeline, run_pipeline
from pachon.pipelines.ap import load_ap_pipeline
from pachon.pipelines.cp_certify import certify_calibrations
from pachon.repo import Repository
from pachon.repo.refcat import ingest_refcat
from pachon.sim import SimConfig
from pachon.sim.api import simulate_survey

RAW = "PachonTestCam/raw/all"
CALIB = "PachonTestCam/calib"
REFCAT = "refcats/sim_gaia"
CP_YAML = Path(__file__).parents[2] / "src" / "pachon" / "pipelines" / "cp.yaml"
DIFFIM_YAML = CP_YAML.with_name("diffim.yaml")
START_MJD = 60400.0
#: The simulated survey has no cosmic rays: skip their repair (faster).
OVERRIDES = {"characterize": {"repair_cosmic_rays": False}}


def ap_sim_config(n_nights: int = 3, visits_per_night: int = 2, detectors: tuple[int, ...] = (0,),
                  n_transients: int = 60, variable_fraction: float = 0.3,
                  variable_mag_range: tuple[float, float] | None = (19.5, 22.5),
                  star_density: float = 80000.0) -> SimConfig:
    """Survey of one field in r: the first night makes the templates, the others are alerted on.

    Transients and variables are many (60 transients over the field, of which ~10 land on
    detector 0; 30 % of the stars vary, with r between 19.5 and 22.5 so that nearly all of them
    are detected) so that association purity and completeness are measured on dozens of
    objects and DiaSources; one saturated star (13th mag) stays in, to check that its residuals
    are rejected.
    """
    return SimConfig.from_dict({
        "detectors": list(detectors),
        "survey": {"n_visits": n_nights * visits_per_night, "bands": ["r"], "n_nights": n_nights,
                   "start_mjd": START_MJD},
        "sky": {"satellite_probability": 0.0, "n_transients": n_transients,
                "variable_fraction": variable_fraction, "n_movers": 0, "star_density": star_density,
                "variable_mag_range": variable_mag_range},
        "refcat_mag_limit": 23.0,
        "detector": {"cosmic_ray_rate": 0.0},
        "calibs": {"n_bias": 3, "n_dark": 2, "n_flat": 3}})


@dataclass
class ApSurvey:
    root: Path
    repo: Any
    sim: Any
    template_day: int
    science_exposures: list[int] = field(default_factory=list)


def prepare_survey(root: Path, config: SimConfig, seed: int = 3) -> ApSurvey:
    """Simulate, ingest, make and certify calibrations, calibrate the first night and build templates."""
    res = simulate_survey(config, root / "sim", seed=seed)
    repo = Repository.create(root / "repo")
    report = repo.ingest_raws(res.all_raw_files)
    assert not report.failed, report.failed
    ingest_refcat(repo, config.refcat_name, res.refcat_files)
    repo.register_collection(CALIB, "CALIBRATION")
    cp = yaml.safe_load(CP_YAML.read_text())
    for sub in ("bias", "dark", "flat"):
        rep = run_pipeline(repo, Pipeline.from_dict(cp, source=str(CP_YAML)).subset(sub), inputs=[RAW, CALIB],
                           output=f"cp/{sub}")
        assert rep.ok, rep.summary()
        certify_calibrations(repo, f"cp/{sub}", CALIB)
    sky = SkyMap()
    repo.register_skymap(sky, tracts=sorted({int(sky.find_tract(v.ra, v.dec)) for v in res.visits}))
    days = sorted({r["day_obs"] for r in repo.query_dimension_records("exposure")
                   if r["observation_type"] == "science"})
    sfp = load_ap_pipeline(repo.root, subset="sfp", overrides=OVERRIDES)
    rep = run_pipeline(repo, sfp, inputs=[RAW, CALIB, REFCAT],
                       output="templates/calexp", where=f"exposure.day_obs = {days[0]}")
    assert rep.ok, rep.summary()
    diffim = yaml.safe_load(DIFFIM_YAML.read_text())
    rep = run_pipeline(repo, Pipeline.from_dict(diffim, source=str(DIFFIM_YAML)).subset("template"),
                       inputs=["templates/calexp"], output="templates")
    assert rep.ok, rep.summary()
    science = sorted({r["id"] for r in repo.query_dimension_records("exposure")
                      if r["observation_type"] == "science" and r["day_obs"] != days[0]})
    return ApSurvey(root, repo, res, days[0], science)


def run_visit(survey: ApSurvey, exposure: int, *, stream_url: str | None = None, output: str = "ap",
              **kwargs: Any) -> Any:
    """The AP pipeline on every detector of one visit (as prompt processing does)."""
    kwargs.setdefault("overrides", OVERRIDES)
    pipe = load_ap_pipeline(survey.repo.root, stream_url=stream_url, **kwargs)
    return run_pipeline(survey.repo, pipe, inputs=[RAW, CALIB, REFCAT, "templates"],
                        output=f"{output}/{exposure}", where=f"exposure = {exposure}")

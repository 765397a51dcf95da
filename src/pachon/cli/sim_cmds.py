"""``pachon sim``: the survey simulator on the command line (thin wrapper over :mod:`pachon.sim`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from pachon.cli.errors import handle_errors

__all__ = ["sim", "register"]

log = logging.getLogger(__name__)


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


@click.group()
def sim() -> None:
    """Simulate raw frames, calibrations, a reference catalogue and truth tables."""


@sim.command("survey")
@click.option("--instrument", default="PachonTestCam", show_default=True, help="Camera to simulate.")
@click.option("--visits", "n_visits", type=int, default=None, help="Number of visits (default 4).")
@click.option("--bands", default=None, help="Comma-separated bands, e.g. g,r,i.")
@click.option("--nights", type=int, default=None, help="Number of nights.")
@click.option("--fields", type=int, default=None, help="Number of fields.")
@click.option("--exptime", type=float, default=None, help="Exposure time (s).")
@click.option("--ra", type=float, default=None, help="Survey centre RA (deg).")
@click.option("--dec", type=float, default=None, help="Survey centre Dec (deg).")
@click.option("--detectors", default=None, help="Comma-separated detector ids (default: all science).")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="YAML file of SimConfig sections (survey, sky, optics, detector, calibs).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same files).")
@click.option("--no-calibs", is_flag=True, help="Skip the bias/dark/flat exposures.")
@click.option("--no-refcat", is_flag=True, help="Skip the reference catalogue.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder.")
@handle_errors
def survey(
    instrument: str,
    n_visits: int | None,
    bands: str | None,
    nights: int | None,
    fields: int | None,
    exptime: float | None,
    ra: float | None,
    dec: float | None,
    detectors: str | None,
    config_file: str | None,
    seed: int,
    no_calibs: bool,
    no_refcat: bool,
    out_dir: str,
) -> None:
    """Simulate a survey and write raws, calibration raws, refcat shards and truth tables to --out."""
    from pachon.core.errors import ConfigError
    from pachon.sim import SimConfig, simulate_survey

    data: dict[str, Any] = {}
    if config_file:
        import yaml

        try:
            data = yaml.safe_load(Path(config_file).read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{config_file}: not valid YAML ({exc})") from None
    data["instrument"] = instrument
    survey_over = {
        "n_visits": n_visits,
        "bands": _csv(bands),
        "n_nights": nights,
        "n_fields": fields,
        "exposure_time": exptime,
        "ra": ra,
        "dec": dec,
    }
    data["survey"] = {**data.get("survey", {}), **{k: v for k, v in survey_over.items() if v is not None}}
    if detectors is not None:
        try:
            data["detectors"] = [int(d) for d in _csv(detectors) or []]
        except ValueError:
            raise ConfigError(f"--detectors must be comma-separated integers, got {detectors!r}") from None
    result = simulate_survey(
        SimConfig.from_dict(data), out_dir, seed=seed, calibs=not no_calibs, refcat=not no_refcat
    )
    click.echo(
        f"{len(result.raw_files)} science raws, "
        f"{sum(len(v) for v in result.calib_files.values())} calibration raws, "
        f"{len(result.refcat_files)} refcat shards, {len(result.truth_files)} truth tables in {out_dir}"
    )


def register(cli: click.Group) -> None:
    """Add the ``sim`` group to the ``pachon`` command."""
    cli.add_command(sim)

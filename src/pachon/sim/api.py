"""The simulator's stable entry point: :func:`simulate_survey`.

``simulate_survey(config, out_dir, seed=...)`` writes, under ``out_dir``:

* ``raw/``: science raws ``<obs_id>_<detector>.fits`` and calibration raws (bias, dark, flat per
  band) in the camera's raw format, ready for :meth:`pachon.repo.Repository.ingest_raws`;
* ``refcat/<refcat_name>/<healpix>.parquet``: the Gaia-like reference catalogue;
* ``truth/*.parquet``: the truth tables described in :mod:`pachon.sim.truth`;
* ``config.json``: the configuration and seed that made it all.

The same configuration and seed give bit-identical files.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pachon.core.progress import progress
from pachon.sim.config import SimConfig
from pachon.sim.engine import Simulator
from pachon.sim.survey import Visit, day_obs_of_mjd
from pachon.sim.truth import rows_to_columns, source_table, write_table
from pachon.sim.writer import RawMetadata, raw_header, write_raw

__all__ = ["SimulationResult", "simulate_survey"]

log = logging.getLogger(__name__)


@dataclass
class SimulationResult:
    """What :func:`simulate_survey` wrote.

    Attributes
    ----------
    out_dir
        The output folder.
    instrument
        Name of the simulated instrument.
    raw_files
        Science raws (one per visit and detector).
    calib_files
        Calibration raws, by type: ``{"bias": [...], "dark": [...], "flat": [...]}``.
    refcat_files
        Reference-catalogue shards.
    truth_files
        Truth tables by name (``sources``, ``visits``, ``epochs``, ``effects``, ``amplifiers``,
        ``exposures``).
    visits
        The simulated visits.
    seed
        The seed used.
    """

    out_dir: Path
    instrument: str
    raw_files: list[Path] = field(default_factory=list)
    calib_files: dict[str, list[Path]] = field(default_factory=dict)
    refcat_files: list[Path] = field(default_factory=list)
    truth_files: dict[str, Path] = field(default_factory=dict)
    visits: list[Visit] = field(default_factory=list)
    seed: int = 0

    @property
    def all_raw_files(self) -> list[Path]:
        """Science and calibration raws together (what an ingest takes)."""
        return [*self.raw_files, *(p for files in self.calib_files.values() for p in files)]


def _calib_exposures(sim: Simulator) -> list[tuple[str, str | None, float, float, float]]:
    """(type, band, exposure_time, dark_time, flat_level) of each calibration exposure."""
    c = sim.config.calibs
    out: list[tuple[str, str | None, float, float, float]] = []
    out += [("bias", None, 0.0, 0.0, 0.0)] * c.n_bias
    out += [("dark", None, c.dark_time, c.dark_time, 0.0)] * c.n_dark
    bands = c.flat_bands if c.flat_bands is not None else tuple(dict.fromkeys(v.band for v in sim.visits))
    for band in bands:
        out += [("flat", band, 10.0, 10.0, c.flat_level)] * c.n_flat
    return out


def _write_calibs(
    sim: Simulator,
    raw_dir: Path,
    result: SimulationResult,
    exposures: list[dict[str, Any]],
    effects: list[dict[str, Any]],
) -> None:
    mjd = sim.visits[0].mjd_start - 0.2
    day_obs = day_obs_of_mjd(mjd)
    used = {v.seq_num for v in sim.visits if v.day_obs == day_obs}
    seq = 1
    for k, (kind, band, exptime, dark_time, level) in enumerate(_calib_exposures(sim)):
        while seq in used:
            seq += 1
        meta = RawMetadata(
            kind, day_obs, seq, mjd + k * 60.0 / 86400.0, exptime, dark_time, band=band, seed=sim.seed
        )
        for det in sim.detectors:
            sig = sim.signatures(det)
            expected = (
                np.float64(level) * sig.illumination
                if level > 0
                else np.zeros(det.bbox.shape, dtype=np.float64)
            )
            raws, fx = sim.expose(
                expected, det, dark_time=dark_time, rng=sim._rng(6, k, det.id), cosmic_rays=dark_time > 0
            )
            path = raw_dir / f"{sim.instrument.name}_O_{day_obs}_{seq:06d}_{det.name}.fits"
            write_raw(path, sim.instrument, det, raws, raw_header(sim.instrument, det, meta))
            result.calib_files.setdefault(kind, []).append(path)
            exposures.append(
                {
                    "path": str(path),
                    "observation_type": kind,
                    "day_obs": day_obs,
                    "seq_num": seq,
                    "exposure_id": day_obs * 100000 + seq,
                    "detector": det.id,
                    "band": band or "",
                    "visit": -1,
                }
            )
            effects += [{**e, "exposure_id": day_obs * 100000 + seq, "detector": det.id} for e in fx]
        seq += 1


def _amplifier_rows(sim: Simulator) -> list[dict[str, Any]]:
    cfg = sim.config.detector
    rows = []
    for det in sim.detectors:
        sig = sim.signatures(det)
        for i, amp in enumerate(det.amplifiers):
            rows.append(
                {
                    "detector": det.id,
                    "amplifier": amp.name,
                    "gain": float(sig.gains[i]),
                    "read_noise": float(amp.read_noise),
                    "read_noise_adu": float(sig.read_noise_adu[i]),
                    "bias_level": float(sig.bias_levels[i]),
                    "bias_gradient": cfg.bias_gradient,
                    "bias_row_rms": cfg.bias_row_rms,
                    "full_well": float(sig.full_well[i]),
                    "nonlinearity": cfg.nonlinearity,
                    "dark_current": cfg.dark_current,
                    "crosstalk": json.dumps([float(c) for c in sig.crosstalk[i]]),
                }
            )
    return rows


def simulate_survey(
    config: SimConfig | None,
    out_dir: str | Path,
    *,
    seed: int = 0,
    visits: list[Visit] | None = None,
    calibs: bool = True,
    refcat: bool = True,
) -> SimulationResult:
    """Simulate a survey: raws, calibration raws, reference catalogue and truth tables.

    Parameters
    ----------
    config
        The configuration (defaults: PachonTestCam, 4 visits).
    out_dir
        Output folder (created).
    seed
        Seed of every random draw; the same seed gives identical output.
    visits
        Explicit visits (:func:`pachon.sim.survey.visits_from_table`) instead of the cadence.
    calibs, refcat
        Whether to write calibration raws and the reference catalogue.

    Returns
    -------
    SimulationResult
        Paths of everything written.

    Raises
    ------
    pachon.core.errors.ConfigError
        Bad configuration (unknown band or instrument, negative exposure time...).
    """
    config = config if config is not None else SimConfig()
    sim = Simulator(config, seed=seed, visits=visits)
    out = Path(out_dir)
    raw_dir = out / "raw"
    result = SimulationResult(out_dir=out, instrument=sim.instrument.name, visits=list(sim.visits), seed=seed)
    epochs: list[dict[str, np.ndarray]] = []
    effects: list[dict[str, Any]] = []
    exposures: list[dict[str, Any]] = []
    from pachon.sim.astrometry import detector_tan_wcs

    for visit in progress(sim.visits, desc="simulating visits", logger=log):
        scene = sim.scene(visit)
        exposure_id = visit.day_obs * 100000 + visit.seq_num
        meta = RawMetadata(
            "object",
            visit.day_obs,
            visit.seq_num,
            visit.mjd_start,
            visit.exposure_time,
            visit.exposure_time,
            band=visit.band,
            ra=visit.ra,
            dec=visit.dec,
            rotation_deg=visit.rotation_deg,
            airmass=visit.airmass,
            target=f"field{visit.field}",
            seed=seed,
        )
        for det in sim.detectors:
            frame = sim.simulate_detector(visit, det, scene)
            wcs = detector_tan_wcs(sim.instrument, det, visit.ra, visit.dec, visit.rotation_deg)
            path = raw_dir / f"{sim.instrument.name}_O_{visit.day_obs}_{visit.seq_num:06d}_{det.name}.fits"
            write_raw(path, sim.instrument, det, frame.raws, raw_header(sim.instrument, det, meta, wcs))
            result.raw_files.append(path)
            n = len(frame.sources["x"])
            epochs.append(
                {
                    "visit": np.full(n, visit.index),
                    "exposure_id": np.full(n, exposure_id),
                    "detector": np.full(n, det.id),
                    "mjd": np.full(n, visit.mjd_mid),
                    **frame.sources,
                }
            )
            effects += [{**e, "exposure_id": exposure_id, "detector": det.id} for e in frame.effects]
            exposures.append(
                {
                    "path": str(path),
                    "observation_type": "science",
                    "day_obs": visit.day_obs,
                    "seq_num": visit.seq_num,
                    "exposure_id": exposure_id,
                    "detector": det.id,
                    "band": visit.band,
                    "visit": visit.index,
                    "sky_level": frame.sky_level,
                }
            )
    if calibs:
        _write_calibs(sim, raw_dir, result, exposures, effects)
    for det in sim.detectors:
        sig = sim.signatures(det)
        effects += [{**d, "exposure_id": -1, "detector": det.id} for d in sig.defects]
        effects += [
            {
                "kind": "crosstalk",
                "x0": float(v),
                "y0": float(s),
                "x1": float(v),
                "y1": float(s),
                "value": float(sig.crosstalk[v, s]),
                "exposure_id": -1,
                "detector": det.id,
            }
            for v in range(len(det.amplifiers))
            for s in range(len(det.amplifiers))
            if v != s
        ]
    truth = out / "truth"
    result.truth_files["sources"] = write_table(source_table(sim.catalog), truth / "sources.parquet")
    result.truth_files["visits"] = write_table(
        rows_to_columns([v.to_dict() for v in sim.visits]), truth / "visits.parquet"
    )
    if epochs:
        merged = {k: np.concatenate([e[k] for e in epochs]) for k in epochs[0]}
        result.truth_files["epochs"] = write_table(merged, truth / "epochs.parquet")
    effect_cols = rows_to_columns(effects)
    if "source_id" in effect_cols:
        effect_cols["source_id"] = [-1 if v is None else v for v in effect_cols["source_id"]]
    result.truth_files["effects"] = write_table(effect_cols, truth / "effects.parquet")
    result.truth_files["amplifiers"] = write_table(
        rows_to_columns(_amplifier_rows(sim)), truth / "amplifiers.parquet"
    )
    result.truth_files["exposures"] = write_table(rows_to_columns(exposures), truth / "exposures.parquet")
    if refcat:
        from pachon.sim.refcat import make_refcat_columns, write_refcat

        cols = make_refcat_columns(sim.catalog, sim._rng(7), mag_limit=config.refcat_mag_limit)
        result.refcat_files = write_refcat(
            cols, out / "refcat" / config.refcat_name, level=config.refcat_level
        )
    (out / "config.json").write_text(json.dumps({"seed": seed, "config": config.to_dict()}, indent=1))
    log.info(
        "simulated %d raws, %d calibration raws, %d refcat shards in %s",
        len(result.raw_files),
        sum(len(v) for v in result.calib_files.values()),
        len(result.refcat_files),
        out,
    )
    return result

"""A tiny simulated night: files, truth tables, reference catalogue, determinism and ingest."""

from __future__ import annotations

import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from pachon.instruments import get_instrument
from pachon.sim import SimConfig, simulate_survey
from pachon.sim.engine import Simulator

TINY = {
    "survey": {"n_visits": 3, "bands": ["g", "r"], "n_nights": 1},
    "sky": {"n_movers": 2, "n_transients": 2, "satellite_probability": 1.0},
    "calibs": {"n_bias": 1, "n_dark": 1, "n_flat": 1},
    "detectors": [0, 3],
}


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    return simulate_survey(SimConfig.from_dict(TINY), out / "night", seed=42)


def test_files_and_headers(night) -> None:
    inst = get_instrument("PachonTestCam")
    assert len(night.raw_files) == 3 * 2
    assert {k: len(v) for k, v in night.calib_files.items()} == {"bias": 2, "dark": 2, "flat": 4}
    seen = set()
    for path in night.all_raw_files:
        with fits.open(path) as hdul:
            obs = inst.translate_header(hdul[0].header, filename=str(path))
            assert len(hdul) == 5 and hdul[1].data.shape == (264, 276) and hdul[1].data.dtype.kind == "i"
        seen.add((obs.exposure_id, obs.detector))
    assert len(seen) == len(night.all_raw_files)
    first = inst.translate_header(fits.getheader(night.raw_files[0]))
    v = night.visits[0]
    assert (first.observation_type, first.band, first.exposure_id) == (
        "science",
        v.band,
        v.day_obs * 100000 + 100,
    )
    assert first.tracking_ra == pytest.approx(v.ra)


def _read(path) -> dict[str, np.ndarray]:
    table = pq.read_table(path)
    return {name: np.asarray(table.column(name).to_pylist()) for name in table.column_names}


def test_truth_tables(night) -> None:
    effects = _read(night.truth_files["effects"])
    assert {"satellite", "ghost", "bleed", "crosstalk", "bad_column"} <= set(effects["kind"])
    epochs = _read(night.truth_files["epochs"])
    sources = _read(night.truth_files["sources"])
    assert set(epochs["source_id"]) <= set(sources["id"])
    assert set(sources["kind"]) == {"star", "galaxy", "transient", "mover"}
    # a star moves between epochs by its proper motion and parallax only (well under 0.1 arcsec)
    star = epochs["source_id"] == epochs["source_id"][epochs["kind"] == 0][0]
    assert star.sum() >= 2 and np.ptp(epochs["dec"][star]) * 3600 < 0.1
    # a mover is somewhere else at every visit
    movers = set(sources["id"][sources["kind"] == "mover"])
    seen = [m for m in movers if (epochs["source_id"] == m).any()]
    assert seen, "no mover was drawn on any detector"
    mover = seen[0]
    assert (
        len(set(np.round(epochs["ra"][epochs["source_id"] == mover], 4)))
        == (epochs["source_id"] == mover).sum()
    )
    amps = _read(night.truth_files["amplifiers"])
    assert len(amps["gain"]) == 8 and (amps["gain"] > 1).all()


def test_refcat_shards(night) -> None:
    from pachon.core.skypix import SkyPixelization

    sources = _read(night.truth_files["sources"])
    row_of = {int(i): k for k, i in enumerate(sources["id"])}
    assert night.refcat_files
    for path in night.refcat_files:
        table = _read(path)
        pix = SkyPixelization(7).index(table["ra"], table["dec"])
        assert (pix == int(path.stem)).all()
        rows = [row_of[int(i)] for i in table["sim_id"]]
        d_dec = (table["dec"] - sources["dec"][rows]) * 3.6e6
        assert np.all(np.abs(d_dec) < 6 * table["dec_error"])


def test_deterministic(tmp_path) -> None:
    cfg = SimConfig.from_dict({**TINY, "survey": {"n_visits": 1}, "detectors": [1]})
    a = simulate_survey(cfg, tmp_path / "a", seed=7, calibs=False, refcat=False)
    b = simulate_survey(cfg, tmp_path / "b", seed=7, calibs=False, refcat=False)
    c = simulate_survey(cfg, tmp_path / "c", seed=8, calibs=False, refcat=False)
    da, db, dc = (fits.getdata(r.raw_files[0], 1) for r in (a, b, c))
    assert np.array_equal(da, db) and not np.array_equal(da, dc)


def test_testcam_visit_is_fast() -> None:
    sim = Simulator(SimConfig(), seed=3)
    sim.simulate_detector(sim.visits[0], sim.detectors[0])  # warm up: galsim import, signatures
    for det in sim.detectors:
        sim.signatures(det)
    t0 = time.perf_counter()
    scene = sim.scene(sim.visits[1])
    for det in sim.detectors:
        sim.simulate_detector(sim.visits[1], det, scene)
    assert time.perf_counter() - t0 < 2.0  # typically ~0.5 s; generous for shared CI cores


def test_ingest_into_repository(night, tmp_path) -> None:
    repo_mod = pytest.importorskip("pachon.repo", reason="pachon.repo is not available")
    repo = repo_mod.Repository.create(tmp_path / "repo")
    report = repo.ingest_raws(night.all_raw_files)
    assert not report.failed, report.failed
    assert len(report.ingested) == len(night.all_raw_files)
    records = repo.query_dimension_records("exposure")
    types = sorted(r["observation_type"] for r in records)
    assert types == ["bias", "dark", "flat", "flat", "science", "science", "science"]
    visits = repo.query_dimension_records("visit")
    assert {r["band"] for r in visits} == {v.band for v in night.visits}

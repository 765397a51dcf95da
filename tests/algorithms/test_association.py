"""Association against truth, and DiaObject summaries checked by hand."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from pachon.algorithms.association import (
    associate,
    associate_solar_system,
    match_nearest,
    summarize_dia_objects,
)
from pachon.apdb.synthetic import dia_source_table
from pachon.core.schemas import arrow_schema


def test_match_nearest_ambiguity_closest_wins() -> None:
    # two objects 3" apart; three sources: two near object 0 (0.2" and 0.5"), one near 1
    arc = 1 / 3600
    idx, dist = match_nearest(
        [10 + 0.5 * arc, 10 + 0.2 * arc, 10 + 3.1 * arc, 20.0], [0, 0, 0, 0],
        [10.0, 10 + 3 * arc], [0.0, 0.0], 1.0,
    )
    assert idx.tolist() == [-1, 0, 1, -1]
    np.testing.assert_allclose(dist[[1, 2]], [0.2, 0.1], atol=1e-6)
    assert np.isnan(dist[[0, 3]]).all()
    assert match_nearest([], [], [1.0], [1.0], 1.0)[0].size == 0


def test_match_across_ra_wrap_and_pole() -> None:
    idx, _ = match_nearest([359.9998], [0.0], [0.0002], [0.0], 1.0)
    assert idx.tolist() == [-1]  # 1.44" across RA = 0
    idx, _ = match_nearest([359.99995], [0.0], [0.00002], [0.0], 1.0)
    assert idx.tolist() == [0]  # 0.25" across RA = 0
    idx, _ = match_nearest([0.0], [89.99995], [180.0], [89.99995], 1.0)
    assert idx.tolist() == [0]  # 0.36" across the pole


def _simulate(rng: np.random.Generator, n_obj: int = 200, n_visits: int = 10):
    """Static transients/variables in a 0.3 deg field, a few close (3") pairs."""
    ra = 150 + rng.uniform(-0.15, 0.15, n_obj)
    dec = 2 + rng.uniform(-0.15, 0.15, n_obj)
    pairs = np.arange(0, 20, 2)
    ra[pairs + 1] = ra[pairs] + 3.0 / 3600 / np.cos(np.radians(dec[pairs]))
    dec[pairs + 1] = dec[pairs]
    visits = []
    for _ in range(n_visits):
        seen = rng.random(n_obj) < 0.8  # variables are not detected every visit
        seen[pairs] = seen[pairs + 1] = True
        k = np.flatnonzero(seen)
        noise = 0.1 / 3600
        visits.append((k, ra[k] + rng.normal(0, noise, k.size) / np.cos(np.radians(dec[k])),
                       dec[k] + rng.normal(0, noise, k.size)))
    return ra, dec, visits


def test_purity_and_completeness_against_truth() -> None:
    rng = np.random.default_rng(42)
    _, _, visits = _simulate(rng)
    objects = pa.Table.from_pylist([], schema=arrow_schema("apdb", "DiaObject"))
    history = []
    truth_of_source = {}
    next_id = 1
    for v, (k, ra, dec) in enumerate(visits):
        ids = np.arange(next_id, next_id + k.size)
        next_id += k.size
        truth_of_source.update(zip(ids.tolist(), k.tolist(), strict=True))
        sources = dia_source_table(ids, ra, dec, 60000.0 + v, visit=v, detector=1)
        result = associate(sources, objects, radius_arcsec=1.0)
        history.append(result.dia_sources)
        objects = summarize_dia_objects(pa.concat_tables(history))
    sources = pa.concat_tables(history)
    obj = sources.column("diaObjectId").to_numpy()
    truth = np.array([truth_of_source[i] for i in sources.column("diaSourceId").to_pylist()])
    # purity: each DiaObject's sources come from one truth object; completeness: each truth
    # object's sources land in one DiaObject
    pure = [len(set(truth[obj == o])) == 1 for o in np.unique(obj)]
    complete = [len(set(obj[truth == t])) == 1 for t in np.unique(truth)]
    assert np.mean(pure) >= 0.98
    assert np.mean(complete) >= 0.98
    assert abs(objects.num_rows - 200) <= 4


def test_unmatched_loser_makes_new_object_and_ids() -> None:
    objects = summarize_dia_objects(
        dia_source_table([7], [10.0], [0.0], 60000.0, visit=1, detector=1, dia_object_id=[7])
    )
    arc = 1 / 3600
    sources = dia_source_table([20, 21, 22], [10 + 0.3 * arc, 10 - 0.1 * arc, 11.0],
                               [0, 0, 0], 60001.0, visit=2, detector=1)
    result = associate(sources, objects, radius_arcsec=1.0)
    assert result.dia_sources.column("diaObjectId").to_pylist() == [20, 7, 22]
    assert result.matched.tolist() == [False, True, False]
    assert result.new_object_ids.tolist() == [20, 22]


def test_solar_system_sources_join_no_dia_object() -> None:
    sources = dia_source_table([1, 2], [10.0, 10.5], [0.0, 0.0], 60000.0, visit=1, detector=1)
    ss, index = associate_solar_system([10.0, 10.5], [0.0, 0.0], [10.5 + 1 / 3600], [0.0],
                                       [555], radius_arcsec=2.0)
    assert ss.tolist() == [0, 555] and index.tolist() == [-1, 0]
    result = associate(sources, None, ss_object_ids=ss)
    assert result.dia_sources.column("diaObjectId").to_pylist() == [1, None]
    assert result.dia_sources.column("ssObjectId").to_pylist() == [None, 555]
    assert result.new_object_ids.tolist() == [1]


def test_summary_columns_by_hand() -> None:
    t = np.array([60000.0, 60001.0, 60003.0])
    flux = np.array([100.0, 300.0, 200.0])
    err = np.array([10.0, 20.0, 10.0])
    a = dia_source_table([1, 2, 3], [10.0, 10.0002, 10.0001], [1.0, 1.0001, 0.9999], t,
                         visit=1, detector=1, band="g", psf_flux=flux, psf_flux_err=err,
                         science_flux=flux + 1000, dia_object_id=5)
    b = dia_source_table([4], [10.0], [1.0], 60002.0, visit=2, detector=1, band="r",
                         psf_flux=50.0, psf_flux_err=5.0, dia_object_id=5)
    row = summarize_dia_objects(pa.concat_tables([a, b])).to_pylist()[0]
    w = 1 / err**2
    assert row["diaObjectId"] == 5 and row["nDiaSources"] == 4
    assert row["g_psfFluxMean"] == pytest.approx(np.sum(w * flux) / np.sum(w), rel=1e-6)
    assert row["g_psfFluxMeanErr"] == pytest.approx(1 / np.sqrt(np.sum(w)), rel=1e-6)
    assert row["g_psfFluxSigma"] == pytest.approx(np.std(flux, ddof=1), rel=1e-6)
    assert (row["g_psfFluxMin"], row["g_psfFluxMax"]) == (100.0, 300.0)
    assert row["g_psfFluxNdata"] == 3 and row["r_psfFluxNdata"] == 1
    assert row["g_psfFluxMaxSlope"] == pytest.approx(200.0)  # (300-100)/1 d
    assert row["g_psfFluxErrMean"] == pytest.approx(np.mean(err))
    assert row["g_scienceFluxMean"] == pytest.approx(np.sum(w * (flux + 1000)) / np.sum(w))
    assert row["r_psfFluxMean"] == pytest.approx(50.0)
    assert row["r_psfFluxSigma"] is None and row["r_psfFluxMaxSlope"] is None
    assert row["u_psfFluxMean"] is None and row["u_psfFluxNdata"] == 0
    assert row["ra"] == pytest.approx(np.mean([10.0, 10.0002, 10.0001, 10.0]), abs=1e-9)
    assert row["dec"] == pytest.approx(np.mean([1.0, 1.0001, 0.9999, 1.0]), abs=1e-9)
    assert row["raErr"] == pytest.approx(np.sqrt(4 * 2e-5**2) / 4, rel=1e-5)
    assert (row["firstDiaSourceMjdTai"], row["lastDiaSourceMjdTai"]) == (60000.0, 60003.0)


def test_mean_flux_error_treats_the_mismatch_term_as_common() -> None:
    """psfFluxMeanErr: pixel noise averages down, the PSF-matching residual (one per object) does not."""
    rng = np.random.default_rng(11)
    n_obj, per = 400, 5
    obj = np.repeat(np.arange(1, n_obj + 1), per)
    truth = np.repeat(rng.uniform(500.0, 5000.0, n_obj), per)
    pixel = rng.uniform(20.0, 60.0, obj.size)  # independent, per source
    common = np.repeat(rng.uniform(50.0, 150.0, n_obj), per) * rng.uniform(0.8, 1.2, obj.size)
    offset = np.repeat(rng.normal(size=n_obj), per) * common  # one draw per object
    flux = truth + offset + rng.normal(size=obj.size) * pixel
    err = np.hypot(pixel, common)
    table = dia_source_table(np.arange(1, obj.size + 1), np.full(obj.size, 10.0), np.zeros(obj.size), 60000.0,
                             visit=1, detector=1, band="r", psf_flux=flux, psf_flux_err=err,
                             dia_object_id=obj)
    snr = pa.array((flux / pixel).astype(np.float32), pa.float32())  # the pixel-noise S/N, as DIA measures it
    table = table.set_column(table.schema.get_field_index("snr"), "snr", snr)
    rows = summarize_dia_objects(table)
    mean = rows.column("r_psfFluxMean").to_numpy()
    mean_err = rows.column("r_psfFluxMeanErr").to_numpy()
    # by hand for the first object
    k = obj == 1
    w = 1 / err[k] ** 2
    expect = np.sqrt(np.sum(w**2 * pixel[k] ** 2) + np.sum(w * common[k]) ** 2) / np.sum(w)
    assert mean_err[0] == pytest.approx(expect, rel=1e-4)
    pulls = (mean - truth[::per]) / mean_err
    assert 0.9 < np.sqrt(np.mean(pulls**2)) < 1.1, np.sqrt(np.mean(pulls**2))
    # errors taken as independent (no snr) under-state it: the same pulls are ~1.8 sigma wide
    naive = summarize_dia_objects(table.set_column(table.schema.get_field_index("snr"), "snr",
                                                   pa.nulls(obj.size, pa.float32())))
    naive_pulls = (naive.column("r_psfFluxMean").to_numpy() - truth[::per]) / naive.column(
        "r_psfFluxMeanErr").to_numpy()
    assert np.sqrt(np.mean(naive_pulls**2)) > 1.5

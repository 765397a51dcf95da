"""The diffim pipeline (template → diffim → dia) on a simulated pair in a repository."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import pachon.pipelines
from pachon.algorithms.diffim.simulate import PairSpec, make_pair
from pachon.algorithms.diffim.subtract import residual_noise_ratio
from pachon.core.photocalib import PhotoCalib
from pachon.core.skymap import SkyMap, SkyMapConfig
from pachon.core.sphgeom import ConvexPolygon
from pachon.core.visit_info import VisitInfo
from pachon.pipe import Pipeline, run_pipeline
from pachon.repo import Repository

YAML = Path(pachon.pipelines.__file__).parent / "diffim.yaml"
SKYMAP = {"skymap_name": "test_rings", "num_rings": 3000, "pixel_scale": 0.2,
          "patch_inner_dimensions": [300, 300], "patch_border": 20, "tract_overlap": 0.005}
DID = {"instrument": "SimCam", "detector": 0}
N_TRANSIENTS = 20


def _region(exp: object) -> ConvexPolygon:
    h, w = exp.image.shape
    x, y = np.array([-0.5, w - 0.5, w - 0.5, -0.5]), np.array([-0.5, -0.5, h - 0.5, h - 0.5])
    ra, dec = exp.wcs.all_pix2world(x, y, 0)
    return ConvexPolygon.from_corners(ra, dec)


def _pipeline(subset: str) -> Pipeline:
    data = yaml.safe_load(YAML.read_text())
    data["tasks"]["template"] = {"class": data["tasks"]["template"]["class"], "config": SKYMAP}
    return Pipeline.from_dict(data, source=str(YAML)).subset(subset)


@pytest.fixture(scope="module")
def diffim_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    flux = np.linspace(1500.0, 6000.0, N_TRANSIENTS)  # S/N about 10 to 40
    spec = PairSpec(shape=(480, 480), n_stars=250, n_dipoles=3, dipole_shift=0.5)
    # transients away from stars (same seed: same stars), so each is its own detection
    stars = make_pair(spec, seed=7)[2]["stars"]
    g = np.stack(np.meshgrid(np.arange(50.0, 431.0, 19.0), np.arange(50.0, 431.0, 19.0)), -1).reshape(-1, 2)
    free = np.hypot(g[:, None, 0] - stars["x"], g[:, None, 1] - stars["y"]).min(axis=1) > 12.0
    step = max(1, free.sum() // N_TRANSIENTS)
    spec.transient_flux, spec.transient_xy = flux, g[free][::step][:N_TRANSIENTS]
    science, template, truth = make_pair(spec, seed=7)
    calib = PhotoCalib(calibration_mean=2.0)
    repo = Repository.create(tmp_path_factory.mktemp("diffim_repo"))
    repo.insert_dimension_records("instrument", [{"name": "SimCam", "detector_max": 1}])
    repo.insert_dimension_records("physical_filter", [{"instrument": "SimCam", "name": "r-sim", "band": "r"}])
    repo.insert_dimension_records("detector", [{"instrument": "SimCam", "id": 0, "full_name": "D0"}])
    repo.insert_dimension_records("day_obs", [{"instrument": "SimCam", "id": 20250101}])
    exps = {1: template, 2: science}
    repo.insert_dimension_records("exposure", [
        {"instrument": "SimCam", "id": e, "physical_filter": "r-sim", "band": "r", "day_obs": 20250101,
         "exposure_time": 30.0, "observation_type": "science", "region": _region(x),
         "datetime_begin": f"2025-01-01T0{e}:00:00", "datetime_end": f"2025-01-01T0{e}:00:30"}
        for e, x in exps.items()])
    repo.register_dataset_type("calexp", ("instrument", "exposure", "detector"), "Exposure")
    for e, x in exps.items():
        x.photo_calib = calib
        x.visit_info = VisitInfo(band="r", physical_filter="r-sim", instrument="SimCam", exposure_id=e,
                                 visit_id=e, detector=0, mjd_tai_mid=60676.0 + e / 24.0)
        repo.put(x, "calexp", {**DID, "exposure": e}, run="calexp/template" if e == 1 else "calexp/science")
    sky = SkyMap(SkyMapConfig(name="test_rings", num_rings=3000, pixel_scale=0.2,
                              patch_inner_dimensions=(300, 300), patch_border=20, tract_overlap=0.005))
    ra, dec = science.wcs.all_pix2world([240.0], [240.0], 0)
    tract = int(sky.find_tract(float(ra[0]), float(dec[0])))
    repo.register_skymap(sky, tracts=[tract])
    rep_t = run_pipeline(repo, _pipeline("template"), inputs=["calexp/template"], output="templates")
    rep_p = run_pipeline(repo, _pipeline("prompt"), inputs=["calexp/science", rep_t.run], output="diffim")
    yield {"repo": repo, "truth": truth, "reports": (rep_t, rep_p), "science": science, "spec": spec}
    repo.close()


def test_pipeline_runs_and_writes_products(diffim_run: dict) -> None:
    rep_t, rep_p = diffim_run["reports"]
    assert rep_t.ok and rep_p.ok, rep_t.summary() + rep_p.summary()
    assert rep_t.counts()["template"]["succeeded"] >= 2  # the detector straddles several patches
    assert rep_p.counts()["diffim"]["succeeded"] == 1 and rep_p.counts()["dia"]["succeeded"] == 1
    repo = diffim_run["repo"]
    (dref,) = repo.query_datasets("difference_exp", ["diffim"])
    assert dref.data_id["exposure"] == 2
    prov = repo.provenance(dref)
    assert prov.task == "diffim"
    in_types = sorted({r.dataset_type for r in prov.inputs})
    assert in_types == ["calexp", "template_coadd"]
    (sref,) = repo.query_datasets("dia_source", ["diffim"])
    assert {r.dataset_type for r in repo.provenance(sref).inputs} == {
        "calexp", "difference_exp", "template_detector"}
    diff = repo.get(dref)
    ratio = residual_noise_ratio(diff)
    assert abs(ratio - 1.0) < 0.1, ratio
    tpl = repo.get(repo.query_datasets("template_coadd", ["templates"])[0])
    assert tpl.metadata["BAND"] == "r"


def test_transients_recovered_against_truth(diffim_run: dict) -> None:
    repo, truth = diffim_run["repo"], diffim_run["truth"]
    table = repo.get(repo.query_datasets("dia_source", ["diffim"])[0])
    x, y = table.column("x").to_numpy(), table.column("y").to_numpy()
    snr = table.column("snr").to_numpy()
    tr = truth["transients"]
    d = np.hypot(x[:, None] - tr["x"][None], y[:, None] - tr["y"][None])
    nearest = d.argmin(axis=0)
    found = d.min(axis=0) < 2.0
    assert found.mean() >= 0.95, f"{found.sum()} of {len(found)} transients recovered"
    # PSF fluxes in nJy against the injected counts x calibration
    flux = table.column("psfFlux").to_numpy()[nearest[found]]
    err = table.column("psfFluxErr").to_numpy()[nearest[found]]
    pull = (flux - 2.0 * tr["flux"][found]) / err
    assert abs(np.mean(pull)) < 0.5 and 0.5 < np.std(pull) < 1.5, pull
    # everything else is a dipole from the displaced stars (or noise): few spurious detections
    dips = truth["dipoles"]
    near_dip = np.hypot(x[:, None] - dips["x"][None], y[:, None] - dips["y"][None]).min(axis=1) < 3.0
    real = (d.min(axis=1) < 2.0) | near_dip
    assert (~real & (snr > 6)).sum() <= 2, table.filter(~real).to_pydict()
    assert table.column("diaSourceId").to_numpy().min() == (2 * 10_000 + 0) * 100_000
    assert set(table.column("band").to_pylist()) == {"r"}
    sci = table.column("scienceFlux").to_numpy()[nearest[found]]
    assert np.median(sci / flux) == pytest.approx(1.0, abs=0.1)


def test_no_template_coverage_fails_with_data_id(diffim_run: dict, tmp_path: Path) -> None:
    repo = diffim_run["repo"]
    # the science calexp with only an unrelated input collection: no template overlaps
    rep = run_pipeline(repo, _pipeline("prompt"), inputs=["calexp/science"], output="no_templates")
    assert not rep.ok
    (fail,) = rep.failures()
    assert fail.data_id["exposure"] == 2 and "template_coadd" in fail.error

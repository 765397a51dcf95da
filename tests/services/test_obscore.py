"""ObsCore rows built from a repository, checked against the WCS, records and band truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from images_helpers import (
    EMBARGO_RUN,
    HEIGHT,
    PUBLIC_RUN,
    WIDTH,
    add_decam_raws,
    build_image_repo,
    make_exposure,
)

from pachon.core.errors import ConfigError
from pachon.services.images.obscore import (
    DATALINK_FORMAT,
    build_obscore,
    dataset_did,
    obscore_schema,
    parse_did,
    with_base_url,
)
from pachon.services.images.regions import stcs_to_region


@pytest.fixture(scope="module")
def image_repo(tmp_path_factory: pytest.TempPathFactory):
    repo, refs = build_image_repo(tmp_path_factory.mktemp("img") / "repo")
    yield repo, refs
    repo.close()


def _rows(table) -> dict[str, dict]:
    return {r["obs_publisher_did"]: r for r in table.to_pylist()}


def test_schema_has_rubin_columns_and_extras() -> None:
    from pachon.core.schemas import column_names

    names = obscore_schema().names
    assert names[: len(column_names("ivoa_obscore", "ObsCore"))] == column_names("ivoa_obscore", "ObsCore")
    assert names[-2:] == ["access_estsize", "pol_states"]


def test_calexp_rows_match_wcs_records_and_band(image_repo) -> None:
    from astropy.time import Time

    repo, refs = image_repo
    rows = _rows(build_obscore(repo, base_url="http://h/"))
    assert len(rows) == 4
    row = rows[dataset_did(refs["calexp2"].id)]
    exp = make_exposure(2)
    # centre and corners from the WCS itself
    ra, dec = exp.wcs.all_pix2world((WIDTH - 1) / 2, (HEIGHT - 1) / 2, 0)
    assert row["s_ra"] == pytest.approx(float(ra), abs=1e-12)
    assert row["s_dec"] == pytest.approx(float(dec), abs=1e-12)
    region = stcs_to_region(row["s_region"])
    xs, ys = [-0.5, WIDTH - 0.5, WIDTH - 0.5, -0.5], [-0.5, -0.5, HEIGHT - 0.5, HEIGHT - 0.5]
    cra, cdec = exp.wcs.all_pix2world(xs, ys, 0)
    got = sorted(zip(np.round(region.ra_vertices, 8), np.round(region.dec_vertices, 8), strict=True))
    assert got == sorted(zip(np.round(cra, 8), np.round(cdec, 8), strict=True))
    diag = np.hypot(WIDTH, HEIGHT) * 0.2 / 3600
    assert row["s_fov"] == pytest.approx(diag, rel=2e-3)
    assert row["s_resolution"] == pytest.approx(0.2, rel=1e-6)
    assert (row["s_xel1"], row["s_xel2"]) == (WIDTH, HEIGHT)
    assert row["t_min"] == pytest.approx(Time("2024-01-02T01:00:00", scale="tai").mjd, abs=1e-9)
    assert row["t_max"] == pytest.approx(Time("2024-01-02T01:00:30", scale="tai").mjd, abs=1e-9)
    assert row["t_exptime"] == 30.0
    assert (row["em_min"], row["em_max"]) == (552e-9, 691e-9)
    assert row["calib_level"] == 2 and row["dataproduct_type"] == "image"
    assert row["dataproduct_subtype"] == "lsst.calexp"
    assert row["obs_id"] == "IC_0002-S00" and row["obs_collection"] == PUBLIC_RUN
    assert row["instrument_name"] == "ImgCam" and row["facility_name"] == "ImgCam"
    assert (row["lsst_visit"], row["lsst_detector"], row["lsst_band"]) == (2, 0, "r")
    assert row["access_url"] == (
        "http://h/datalink/links?ID=ivo%3A%2F%2Fpachon%2Fdataset%3F" + str(refs["calexp2"].id)
    )
    assert row["access_format"] == DATALINK_FORMAT
    assert row["access_estsize"] == -(-repo.file_record(refs["calexp2"]).size // 1024)
    assert row["pol_states"] is None and row["target_name"] == "field2"


def test_levels_unknown_band_and_embargo_run(image_repo) -> None:
    repo, refs = image_repo
    rows = _rows(build_obscore(repo))
    assert rows[dataset_did(refs["diff1"].id)]["calib_level"] == 3
    hidden = rows[dataset_did(refs["calexp3"].id)]
    assert hidden["obs_collection"] == EMBARGO_RUN
    assert hidden["em_min"] is None and hidden["em_max"] is None and hidden["lsst_band"] == "V"
    assert hidden["access_url"].startswith("/datalink/links?ID=")
    assert with_base_url(build_obscore(repo), "http://a").column("access_url")[0].as_py().startswith(
        "http://a/datalink/links"
    )


def test_cache_reads_each_file_once(image_repo, monkeypatch: pytest.MonkeyPatch) -> None:
    import pachon.services.images.obscore as mod

    repo, _ = image_repo
    cache: dict = {}
    first = build_obscore(repo, cache=cache)
    monkeypatch.setattr(mod, "_file_info", lambda *a: pytest.fail("file read again"))
    assert build_obscore(repo, cache=cache).equals(first)


def test_did_round_trip() -> None:
    import uuid

    u = uuid.uuid4()
    assert parse_did(dataset_did(u)) == u and parse_did(str(u)) == u
    with pytest.raises(ConfigError, match="not a dataset identifier"):
        parse_did("../../etc/passwd")


def test_raw_rows_from_real_decam_files(tmp_path: Path, shared_data: Path) -> None:
    from astropy.io import fits
    from astropy.wcs import WCS

    repo, _ = build_image_repo(tmp_path / "repo")
    raws = add_decam_raws(repo, shared_data)
    rows = _rows(build_obscore(repo))
    row = rows[dataset_did(raws[0].id)]
    path = shared_data / "diffim" / "decam-sfft" / "input_data" / "DEC-OBS04a.mini.fits"
    wcs = WCS(fits.getheader(path))
    ra, dec = wcs.all_pix2world(127.5, 127.5, 0)
    assert row["calib_level"] == 1 and row["dataproduct_subtype"] == "lsst.raw"
    assert row["s_ra"] == pytest.approx(float(ra), abs=1e-10)
    assert row["s_dec"] == pytest.approx(float(dec), abs=1e-10)
    assert row["s_resolution"] == pytest.approx(0.263, abs=0.002)  # DECam's 0.263"/px
    assert (row["em_min"], row["em_max"]) == (691e-9, 818e-9)  # band i
    assert row["t_exptime"] == 330.0 and row["obs_id"] == "DEC-OBS04a-N6"
    assert row["t_max"] - row["t_min"] == pytest.approx(330.0 / 86400, abs=1e-9)
    region = stcs_to_region(row["s_region"])
    assert region.contains(float(ra), float(dec))
    repo.close()


def test_raw_without_wcs_uses_the_exposure_region(tmp_path: Path, shared_data: Path) -> None:
    """CAHA CAFOS raws carry a pointing but no WCS: the row takes the exposure's region."""
    from pachon.repo import Repository
    from pachon.repo.registry.records import region_from_text

    repo = Repository.create(tmp_path / "repo")
    path = shared_data / "isr" / "caha-cafos-ngc2420" / "science_NGC2420_V_uamA_0029.fits"
    report = repo.ingest_raws([path], transfer="symlink")
    assert not report.failed, report.failed
    (row,) = build_obscore(repo).to_pylist()
    (exposure,) = repo.query_dimension_records("exposure")
    circle = region_from_text(exposure["region"])
    assert row["s_region"].startswith("CIRCLE ICRS ")
    assert row["s_ra"] == pytest.approx(exposure["tracking_ra"], abs=1e-9)
    assert row["s_dec"] == pytest.approx(exposure["tracking_dec"], abs=1e-9)
    assert row["s_fov"] == pytest.approx(2 * circle.radius, rel=1e-9)
    assert row["s_resolution"] is None and row["lsst_band"] == "V" and row["em_min"] is None
    assert (row["s_xel1"], row["s_xel2"]) == (1024, 1024)
    repo.close()


def test_missing_file_is_left_out_not_fatal(tmp_path: Path) -> None:
    repo, refs = build_image_repo(tmp_path / "repo")
    Path(repo.datastore.full_path(repo.file_record(refs["calexp2"]).path)).unlink()
    rows = _rows(build_obscore(repo))
    assert dataset_did(refs["calexp2"].id) not in rows and len(rows) == 3
    repo.close()

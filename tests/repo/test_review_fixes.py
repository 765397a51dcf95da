"""Refusals with clear errors: prune of a chained RUN, compressed raws, amplifier HDUs, bbox
bounds, typed where literals, certify, put of a wrong object, opening and creating registries,
undefined filters and bad times, ingest progress."""

from __future__ import annotations

import gzip
import logging
import uuid

import numpy as np
import pytest
from astropy.io import fits
from repo_ingest_helpers import tiny_instrument, write_tiny_raw

from pachon.core.errors import (
    CollectionError,
    ConfigError,
    DatasetNotFoundError,
    FormatError,
    IngestError,
    MetadataTranslationError,
    QueryError,
    RepositoryError,
)
from pachon.core.geom import Box
from pachon.repo import Repository
from pachon.repo.rawfile import check_raw_shape, read_raw_header
from pachon.repo.refs import DatasetRef


def test_prune_of_a_chained_run_changes_nothing(repo, populate):
    populate(repo)
    repo.register_dataset_type("arr", ["instrument", "detector"], "Numpy")
    refs = [repo.put(np.zeros(2), "arr", {"instrument": "Cam", "detector": d}, run="run") for d in (0, 1)]
    repo.set_chain("chain", ["run"])
    with pytest.raises(CollectionError, match="child of CHAINED collection.*chain"):
        repo.prune_collection("run")
    assert len(repo.query_datasets("arr", "run")) == 2 and all(repo.exists(r) for r in refs)
    assert repo.check().ok
    repo.set_chain("chain", [])
    assert repo.prune_collection("run") == 2
    assert not any(repo.exists(r) for r in refs) and repo.check().ok


def test_compressed_raw_is_read_and_truncation_found(shared_data, tmp_path):
    path = shared_data / "isr/lsst-raw-layout/itl_spot.fits.gz"
    header, shapes = read_raw_header(path)
    assert shapes == [(2048, 576)] * 16  # the REB_COND binary table is not an image
    from pachon.instruments import find_instrument

    inst = find_instrument(header, filename=str(path))
    obs = inst.translate_header(header, filename=str(path))
    check_raw_shape(path, shapes, inst, obs.detector)
    data = gzip.decompress(path.read_bytes())
    cut_gz = tmp_path / "cut.fits.gz"
    cut_gz.write_bytes(gzip.compress(data)[:-5000])
    with pytest.raises(FormatError, match="cut.fits.gz: truncated"):
        read_raw_header(cut_gz)
    short = tmp_path / "short.fits.gz"  # complete gzip stream of an incomplete FITS file
    short.write_bytes(gzip.compress(data[: len(data) // 2]))
    with pytest.raises(FormatError, match=r"short.fits.gz: truncated FITS file"):
        read_raw_header(short)
    cut = tmp_path / "cut.fits"
    cut.write_bytes(data[:-2880])
    with pytest.raises(FormatError, match="cut.fits: (truncated FITS file|not a readable FITS)"):
        read_raw_header(cut)
    # amplifier HDUs: 1 of 16 is refused, an extra small image is accepted, a 17th amp is not
    with pytest.raises(IngestError, match="1 amplifier image HDU"):
        check_raw_shape(path, shapes[:1], inst, obs.detector)
    with pytest.raises(IngestError, match="15 amplifier"):
        check_raw_shape(path, shapes[1:] + [(10, 10)], inst, obs.detector)
    check_raw_shape(path, [*shapes, (8, 8)], inst, obs.detector)
    with pytest.raises(IngestError, match="17 amplifier"):
        check_raw_shape(path, [*shapes, (2048, 576)], inst, obs.detector)


def test_get_bbox_is_checked(repo, populate):
    populate(repo)
    repo.register_dataset_type("arr", ["instrument", "detector"], "Numpy")
    repo.register_dataset_type("rawlike", ["instrument", "detector"], "RawFits")
    image = np.arange(12.0).reshape(3, 4)
    a = repo.put(image, "arr", {"instrument": "Cam", "detector": 0}, run="run")
    hdul = fits.HDUList([fits.PrimaryHDU(image)])
    r = repo.put(hdul, "rawlike", {"instrument": "Cam", "detector": 0}, run="run")
    assert np.array_equal(repo.get(a, parameters={"bbox": Box(1, 1, 2, 2)}), image[1:3, 1:3])
    assert np.array_equal(repo.get(r, parameters={"bbox": Box(1, 1, 2, 2)})[0].data, image[1:3, 1:3])
    for ref in (a, r):
        with pytest.raises(ConfigError, match=r"bbox .* not inside the image of shape \(3, 4\)"):
            repo.get(ref, parameters={"bbox": Box(2, 0, 4, 2)})
        with pytest.raises(ConfigError, match="must be a pachon.core.geom.Box"):
            repo.get(ref, parameters={"bbox": (0, 0, 2, 2)})


@pytest.mark.parametrize(
    ("where", "column", "expected"),
    [
        ("exposure > 'abc'", "exposure", "integer"),
        ("band = 3", "band", "string"),
        ("detector = 'x'", "detector", "integer"),
        ("exposure.exposure_time = 'a'", "exposure.exposure_time", "number"),
        ("detector IN (0, 'y')", "detector", "integer"),
        ("exposure.datetime_begin > '2024-01-01'", "exposure.datetime_begin", "integer"),
    ],
)
def test_where_literals_are_type_checked(repo, populate, where, column, expected):
    populate(repo)
    with pytest.raises(QueryError, match=rf"{column} is (an|a) {expected}") as info:
        repo.query_data_ids(["exposure", "detector"], where=where)
    assert "cannot be compared" in str(info.value) and "^" in str(info.value)
    repo.register_dataset_type("arr", ["instrument", "exposure", "detector"], "Numpy")
    repo.register_collection("run", "RUN")
    with pytest.raises(QueryError, match=column):
        repo.query_datasets("arr", "run", where=where)
    assert len(repo.query_dimension_records("exposure", where="exposure.exposure_time > 15")) == 3


def test_database_errors_become_query_errors(repo):
    import sqlalchemy as sa

    with pytest.raises(QueryError, match="where 'a = 1'"):
        repo.registry._execute(sa.text("SELECT nonsense FROM nowhere"), "test", "a = 1")


def test_certify_refusals_and_registry_truth(repo, populate):
    populate(repo)
    repo.register_dataset_type("bias", ["instrument", "detector"], "Numpy", is_calibration=True)
    repo.register_dataset_type("arr", ["instrument", "detector"], "Numpy")
    repo.register_collection("calib", "CALIBRATION")
    b0 = repo.put(np.zeros(2), "bias", {"instrument": "Cam", "detector": 0}, run="run")
    with pytest.raises(ConfigError, match="begin"):
        repo.certify("calib", [b0], "garbage", None)
    with pytest.raises(ConfigError, match="end"):
        repo.certify("calib", [b0], None, object())
    ghost = DatasetRef(uuid.uuid4(), "bias", {"instrument": "Cam", "detector": 1}, "run")
    with pytest.raises(DatasetNotFoundError, match=str(ghost.id)):
        repo.certify("calib", [ghost], None, None)
    lying = DatasetRef(b0.id, "arr", {"instrument": "Cam", "detector": 1}, "run")
    repo.certify("calib", [lying], None, None)  # type and data ID come from the registry
    (cert,) = repo.registry.certifications("calib", "bias")
    assert cert["data_key"] == "instrument=Cam,detector=0" and cert["dataset_id"] == b0.id
    assert repo.find_dataset("bias", {"instrument": "Cam", "detector": 0}, collections="calib") == b0
    a = repo.put(np.zeros(2), "arr", {"instrument": "Cam", "detector": 0}, run="run")
    for error in (ConfigError, CollectionError):
        with pytest.raises(error, match="not a calibration type"):
            repo.certify("calib", [a], None, None)


def test_put_of_a_wrong_object(repo, populate):
    populate(repo)
    repo.register_dataset_type("calexp", ["instrument", "detector"], "Exposure")
    repo.register_dataset_type("arr", ["instrument", "detector"], "Numpy")
    with pytest.raises(ConfigError, match=r"storage class Exposure.*pachon.core.exposure.Exposure.*str"):
        repo.put("string", "calexp", {"instrument": "Cam", "detector": 0}, run="run")
    with pytest.raises(ConfigError, match="storage class Numpy"):
        repo.put("text", "arr", {"instrument": "Cam", "detector": 0}, run="run")
    assert list(repo.datastore.walk()) == [] and repo.query_datasets("arr", "run") == []


def test_second_create_on_the_same_database_fails(repo, tmp_path):
    with pytest.raises(RepositoryError, match="already holds a Pachón registry"):
        Repository.create(tmp_path / "second", registry_url=repo.config.registry_url)
    assert not (tmp_path / "second").exists()
    assert repo.registry.meta["schema_version"] == "1" and uuid.UUID(repo.registry.meta["creation_id"])
    reopened = Repository(repo.root)
    assert reopened.registry.meta["creation_id"] == repo.registry.meta["creation_id"]
    reopened.close()


def test_missing_sqlite_registry_and_unreachable_database(tmp_path):
    repo = Repository.create(tmp_path / "repo")
    repo.close()
    db = tmp_path / "repo" / "registry.sqlite3"
    db.unlink()
    with pytest.raises(RepositoryError, match="registry.sqlite3 is missing"):
        Repository(tmp_path / "repo")
    assert not db.exists()
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    pytest.importorskip("psycopg")
    with pytest.raises(RepositoryError, match="cannot reach"):
        Repository.create(tmp_path / "a" / "b", registry_url=url)
    assert not (tmp_path / "a").exists()


def test_ingest_refuses_undefined_filter_and_bad_times(repo, tmp_path, caplog):
    inst = tiny_instrument(tmp_path)
    good = [write_tiny_raw(tmp_path / f"g{i}.fits", i) for i in range(3)]
    bad_filter = write_tiny_raw(tmp_path / "badfilter.fits", 10)
    bad_time = write_tiny_raw(tmp_path / "badtime.fits", 11)
    with fits.open(bad_filter, mode="update") as h:
        h[0].header["FILTERS"] = "Halpha"
    with fits.open(bad_time, mode="update") as h:
        h[0].header["EXPTIME"] = -5.0
    with caplog.at_level(logging.INFO, logger="pachon.repo.ingest"):
        report = repo.ingest_raws([*good, bad_filter, bad_time], instrument=inst)
    assert len(report.ingested) == 3
    reasons = dict(report.failed)
    assert "MetadataTranslationError" in reasons[str(bad_filter)]
    assert "'FILTERS'" in reasons[str(bad_filter)] and "known filters: V" in reasons[str(bad_filter)]
    assert "badtime.fits" in reasons[str(bad_time)] and "'EXPTIME'" in reasons[str(bad_time)]
    assert "negative" in reasons[str(bad_time)]
    assert repo.query_dimension_records("exposure") and len(repo.query_dimension_records("exposure")) == 3
    # progress is per file, not per chunk
    assert any("ingesting 3 raws: 3 done" in r.getMessage() for r in caplog.records)


def test_lsst_end_before_begin(shared_data):
    path = shared_data / "isr/lsst-raw-layout/itl_spot.fits.gz"
    header, _ = read_raw_header(path)
    from pachon.instruments import find_instrument

    inst = find_instrument(header, filename=str(path))
    header = header.copy()
    for key in ("MJD-END", "DATE-END"):
        header.remove(key, ignore_missing=True)
    header["DATE-END"] = "2000-01-01T00:00:00"
    with pytest.raises(MetadataTranslationError, match=r"itl_spot.fits.gz: header key 'DATE-END'.*before"):
        inst.translate_header(header, filename=str(path))

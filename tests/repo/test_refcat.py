"""Reference catalogs: shards from the simulator ingested by sky pixel and found by region."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from pachon.core.errors import DatasetNotFoundError
from pachon.core.skypix import DEFAULT_SKYPIX_LEVEL, SkyPixelization
from pachon.core.sphgeom import Circle, angular_separation
from pachon.repo.refcat import ingest_refcat, load_refcat


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from pachon.sim.api import simulate_survey
    from pachon.sim.config import SimConfig

    out = tmp_path_factory.mktemp("sim")
    result = simulate_survey(SimConfig.from_dict({"survey": {"n_visits": 1}}), out, seed=3, calibs=False)
    assert result.refcat_files, "the simulator wrote no reference catalog"
    return result.refcat_files


def test_ingest_and_load_by_region(repo, shards, tmp_path):
    report = ingest_refcat(repo, "sim_gaia", shards)
    assert not report.failed and len(report.ingested) == len(shards)
    # idempotent: the same shards again are all skipped
    again = ingest_refcat(repo, "sim_gaia", shards)
    assert len(again.skipped) == len(shards) and not again.ingested

    full = np.concatenate([pq.read_table(p)["ra"].to_numpy() for p in shards])
    full_dec = np.concatenate([pq.read_table(p)["dec"].to_numpy() for p in shards])
    ra0, dec0 = float(np.median(full)), float(np.median(full_dec))
    circle = Circle(ra0, dec0, 0.05)
    table = load_refcat(repo, "sim_gaia", circle, columns=["source_id"])
    expected = int(np.sum(angular_separation(full, full_dec, ra0, dec0) <= 0.05))
    assert expected > 0
    assert len(table) == expected
    assert set(table.column_names) >= {"ra", "dec", "source_id"}

    # the shard records carry their pixel's region
    pix = SkyPixelization(DEFAULT_SKYPIX_LEVEL)
    recs = repo.query_dimension_records(f"healpix{DEFAULT_SKYPIX_LEVEL}")
    assert {r["id"] for r in recs} == {int(p.stem) for p in shards}
    assert all(pix.index(*_centre(r["region"])) == r["id"] for r in recs)

    with pytest.raises(DatasetNotFoundError, match="sim_gaia"):
        load_refcat(repo, "sim_gaia", Circle((ra0 + 180) % 360, -dec0, 0.05))


def _centre(region_text):
    from pachon.repo.registry.records import region_from_text

    circle = region_from_text(region_text).bounding_circle()
    return circle.ra, circle.dec


def test_bad_shard_name_is_reported(repo, shards, tmp_path):
    bad = tmp_path / "notapixel.parquet"
    bad.write_bytes(shards[0].read_bytes())
    report = ingest_refcat(repo, "sim_gaia", [bad, shards[0]])
    assert len(report.ingested) == 1
    assert report.failed and "notapixel.parquet" in report.failed[0][0]
    assert "HEALPix" in report.failed[0][1]

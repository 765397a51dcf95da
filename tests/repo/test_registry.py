"""Contract tests of the repository, run on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pachon.core.errors import (
    CollectionError,
    ConflictError,
    DataIdError,
    DatasetNotFoundError,
    QueryError,
    RepositoryError,
)
from pachon.repo import Repository


def test_open_non_repository_names_folder(tmp_path):
    with pytest.raises(RepositoryError, match=str(tmp_path)):
        Repository(tmp_path)


def test_implied_dimensions_expanded(repo, populate):
    populate(repo)
    repo.register_dataset_type("arr", ["exposure", "detector"], "Numpy")
    ref = repo.put(np.arange(4), "arr", {"instrument": "Cam", "exposure": 3, "detector": 1}, run="r")
    assert ref.data_id == {
        "instrument": "Cam",
        "exposure": 3,
        "detector": 1,
        "physical_filter": "r-1",
        "band": "r",
        "day_obs": 20240101,
    }
    with pytest.raises(DataIdError, match="'detector'"):
        repo.put(np.arange(4), "arr", {"instrument": "Cam", "exposure": 3}, run="r")
    with pytest.raises(DataIdError, match="'tract'"):
        repo.put(
            np.arange(4), "arr", {"instrument": "Cam", "exposure": 3, "detector": 0, "tract": 1}, run="r"
        )
    with pytest.raises(DataIdError, match="no exposure record"):
        repo.put(np.arange(4), "arr", {"instrument": "Cam", "exposure": 99, "detector": 0}, run="r")
    with pytest.raises(DataIdError, match="band"):
        repo.put(
            np.arange(4), "arr", {"instrument": "Cam", "exposure": 3, "detector": 0, "band": "g"}, run="r"
        )
    rec = repo.registry.dimension_record("exposure", instrument="Cam", exposure=2)
    assert rec["exposure_time"] == 20.0 and rec["datetime_begin"] == 1704074400 * 10**9


def test_dimension_record_conflict(repo, populate):
    populate(repo)
    assert repo.insert_dimension_records("detector", [{"instrument": "Cam", "id": 0, "full_name": "D0"}]) == 0
    with pytest.raises(ConflictError, match="full_name"):
        repo.insert_dimension_records("detector", [{"instrument": "Cam", "id": 0, "full_name": "X"}])
    assert (
        repo.insert_dimension_records(
            "detector", [{"instrument": "Cam", "id": 0, "full_name": "X"}], replace=True
        )
        == 1
    )


def test_dataset_type_conflict(repo):
    dt = repo.register_dataset_type("cat", ["instrument", "visit"], "ArrowTable")
    assert dt.dimensions == ("instrument", "visit")
    assert repo.register_dataset_type("cat", ["visit"], "ArrowTable") == dt  # same type, normalized
    with pytest.raises(ConflictError, match="cat"):
        repo.register_dataset_type("cat", ["instrument", "visit"], "Json")
    with pytest.raises(DataIdError, match="flavour"):
        repo.register_dataset_type("bad", ["flavour"], "Json")


def test_put_get_round_trip_each_storage_class(repo, populate):
    import pyarrow as pa

    populate(repo)
    cases = {
        "Numpy": np.arange(12, dtype=np.int16).reshape(3, 4),
        "Json": {"a": 1, "b": [1.5, "x"]},
        "Bytes": b"\x00\x01avro\xff",
        "ArrowTable": pa.table({"diaSourceId": [1, 2, 3], "ra": [1.0, 2.0, 3.5]}),
    }
    for sc, obj in cases.items():
        repo.register_dataset_type(f"t_{sc}", ["instrument", "detector"], sc)
        ref = repo.put(obj, f"t_{sc}", {"instrument": "Cam", "detector": 0}, run="run")
        got = repo.get(ref)
        if sc == "Numpy":
            assert np.array_equal(got, obj) and got.dtype == obj.dtype
        elif sc == "ArrowTable":
            assert got.equals(obj)
        else:
            assert got == obj
        rec = repo.file_record(ref)
        assert rec.size > 0 and rec.checksum.startswith("sha256:") and rec.storage_class == sc
        assert repo.get(f"t_{sc}", {"instrument": "Cam", "detector": 0}, collections="run") is not None
    with pytest.raises(ConflictError, match="already holds"):
        repo.put(cases["Json"], "t_Json", {"instrument": "Cam", "detector": 0}, run="run")


def test_exposure_bbox_parameter(repo, populate):
    from pachon.core.exposure import Exposure
    from pachon.core.geom import Box

    populate(repo)
    repo.register_dataset_type("calexp", ["exposure", "detector"], "Exposure")
    rng = np.random.default_rng(1)
    exp = Exposure(rng.normal(size=(40, 50)).astype(np.float32))
    ref = repo.put(exp, "calexp", {"instrument": "Cam", "exposure": 1, "detector": 0}, run="run")
    full = repo.get(ref)
    assert np.array_equal(full.image, exp.image)
    sub = repo.get(ref, parameters={"bbox": Box(10, 5, 20, 15)})
    assert np.array_equal(sub.image, exp.image[5:20, 10:30])


def test_exists_and_remove(repo, populate):
    populate(repo)
    repo.register_dataset_type("arr", ["exposure", "detector"], "Numpy")
    did = {"instrument": "Cam", "exposure": 1, "detector": 0}
    ref = repo.put(np.zeros(3), "arr", did, run="run")
    path = repo.datastore.full_path(repo.file_record(ref).path)
    assert repo.exists(ref) and repo.exists("arr", did, collections="run")
    assert repo.remove([ref]) == 1
    assert not repo.exists(ref) and not repo.exists("arr", did, collections="run")
    import os

    assert not os.path.exists(path)
    with pytest.raises(DatasetNotFoundError):
        repo.get("arr", did, collections="run")


def _put_all(repo, run, value):
    repo.register_dataset_type("arr", ["exposure", "detector"], "Numpy")
    return [
        repo.put(np.full(2, value), "arr", {"instrument": "Cam", "exposure": e, "detector": d}, run=run)
        for e in range(1, 5)
        for d in range(2)
    ]


def test_query_where_and_chain_order(repo, populate):
    populate(repo)
    _put_all(repo, "old", 1)
    repo.register_dataset_type("arr", ["exposure", "detector"], "Numpy")
    repo.put(np.full(2, 2), "arr", {"instrument": "Cam", "exposure": 1, "detector": 0}, run="new")
    refs = repo.query_datasets("arr", "old", where="band = 'g' AND detector = 1")
    assert [(r.data_id["exposure"], r.data_id["detector"]) for r in refs] == [(1, 1), (2, 1)]
    refs = repo.query_datasets("arr", "old", where="exposure.exposure_time > :t", bind={"t": 25.0})
    assert sorted({r.data_id["exposure"] for r in refs}) == [3, 4]
    refs = repo.query_datasets("arr", "old", where="exposure.datetime_begin >= T'2024-01-01T03:00:00'")
    assert sorted({r.data_id["exposure"] for r in refs}) == [3, 4]
    repo.set_chain("chain", ["new", "old"])
    assert repo.registry.get_chain("chain") == ["new", "old"]
    found = repo.query_datasets("arr", "chain")
    assert len(found) == 8
    first = [r for r in found if r.data_id["exposure"] == 1 and r.data_id["detector"] == 0]
    assert len(first) == 1 and first[0].run == "new" and repo.get(first[0])[0] == 2
    assert len(repo.query_datasets("arr", "chain", find_first=False)) == 9
    repo.set_chain("chain", ["old", "new"])
    assert repo.get("arr", {"instrument": "Cam", "exposure": 1, "detector": 0}, collections="chain")[0] == 1
    with pytest.raises(QueryError, match="tract"):
        repo.query_datasets("arr", "old", where="tract = 1")
    with pytest.raises(CollectionError, match="cycle"):
        repo.set_chain("chain2", ["chain"]) or repo.set_chain("chain", ["chain2"])


def test_query_data_ids_and_records(repo, populate):
    populate(repo)
    ids = repo.query_data_ids(["exposure", "detector"], where="band = 'r' AND detector = 0")
    assert ids == [
        {
            "instrument": "Cam",
            "exposure": e,
            "detector": 0,
            "band": "r",
            "physical_filter": "r-1",
            "day_obs": 20240101,
        }
        for e in (3, 4)
    ]
    recs = repo.query_dimension_records("exposure", where="exposure.exposure_time < 15")
    assert [r["id"] for r in recs] == [1]
    assert [r["name"] for r in repo.query_dimension_records("band")] == ["g", "r"]


def test_tagged(repo, populate):
    populate(repo)
    refs = _put_all(repo, "run", 0)
    repo.register_collection("best", "TAGGED")
    repo.associate("best", refs[:3])
    assert {r.id for r in repo.query_datasets("arr", "best")} == {r.id for r in refs[:3]}
    repo.disassociate("best", refs[:1])
    assert {r.id for r in repo.query_datasets("arr", "best")} == {r.id for r in refs[1:3]}
    other = repo.put(np.zeros(2), "arr", refs[1].data_id, run="run2")
    with pytest.raises(ConflictError, match="best"):
        repo.associate("best", [other])
    with pytest.raises(CollectionError, match="TAGGED"):
        repo.associate("run", refs)


def test_calibration_certify_decertify_lookup(repo, populate):
    populate(repo)
    repo.register_dataset_type("bias", ["instrument", "detector"], "Numpy", is_calibration=True)
    b1 = repo.put(np.full(2, 1.0), "bias", {"instrument": "Cam", "detector": 0}, run="calib/a")
    b2 = repo.put(np.full(2, 2.0), "bias", {"instrument": "Cam", "detector": 0}, run="calib/b")
    repo.register_collection("calib", "CALIBRATION")
    repo.certify("calib", [b1], "2024-01-01T00:00:00", "2024-02-01T00:00:00")
    with pytest.raises(ConflictError, match="overlaps"):
        repo.certify("calib", [b2], "2024-01-15T00:00:00", "2024-03-01T00:00:00")
    repo.certify("calib", [b2], "2024-02-01T00:00:00", None)
    raw_id = {"instrument": "Cam", "exposure": 1, "detector": 0}
    assert repo.find_dataset("bias", raw_id, collections="calib", time="2024-01-10T00:00:00") == b1
    assert repo.find_dataset("bias", raw_id, collections="calib", time="2024-02-01T00:00:00") == b2
    assert repo.find_dataset("bias", raw_id, collections="calib", time="2023-12-31T00:00:00") is None
    assert repo.get("bias", raw_id, collections="calib", time="2030-01-01T00:00:00")[0] == 2.0
    # remove the middle of b1's range: it splits in two
    assert repo.decertify("calib", "bias", "2024-01-10T00:00:00", "2024-01-20T00:00:00") == 1
    ranges = [
        (c["begin_ns"], c["end_ns"])
        for c in repo.registry.certifications("calib", "bias")
        if c["dataset_id"] == b1.id
    ]
    from pachon.repo.times import to_ns

    assert sorted(ranges) == [
        (to_ns("2024-01-01T00:00:00"), to_ns("2024-01-10T00:00:00")),
        (to_ns("2024-01-20T00:00:00"), to_ns("2024-02-01T00:00:00")),
    ]
    assert repo.find_dataset("bias", raw_id, collections="calib", time="2024-01-15T00:00:00") is None
    assert repo.find_dataset("bias", raw_id, collections="calib", time="2024-01-25T00:00:00") == b1
    with pytest.raises(CollectionError, match="not a calibration"):
        repo.register_dataset_type("arr", ["instrument", "detector"], "Numpy")
        repo.certify("calib", [repo.put(np.zeros(1), "arr", {"instrument": "Cam", "detector": 1}, run="x")])


def test_provenance(repo, populate):
    populate(repo)
    repo.register_dataset_type("arr", ["exposure", "detector"], "Numpy")
    a = repo.put(np.zeros(2), "arr", {"instrument": "Cam", "exposure": 1, "detector": 0}, run="in")
    b = repo.put(np.zeros(2), "arr", {"instrument": "Cam", "exposure": 2, "detector": 0}, run="in")
    c = repo.put(
        np.ones(2),
        "arr",
        {"instrument": "Cam", "exposure": 1, "detector": 0},
        run="out",
        provenance={"task": "isr", "quantum_id": "q1", "config_hash": "abc"},
        inputs=[a, b],
    )
    prov = repo.provenance(c)
    import pachon

    assert (prov.run, prov.task, prov.quantum_id, prov.config_hash) == ("out", "isr", "q1", "abc")
    assert prov.software_version == pachon.__version__ and prov.created_ns > 0
    assert {r.id for r in prov.inputs} == {a.id, b.id}
    assert repo.query_derived(a) == [c] and repo.query_derived(c) == []


def test_prune_collection(repo, populate):
    populate(repo)
    refs = _put_all(repo, "run", 0)
    paths = [repo.datastore.full_path(repo.file_record(r).path) for r in refs]
    assert repo.prune_collection("run") == 8
    import os

    assert not any(os.path.exists(p) for p in paths)
    assert "run" not in [n for n, _ in repo.registry.list_collections()]


def test_check_detects_corruption_missing_and_orphans(repo, populate):
    import os

    populate(repo)
    refs = _put_all(repo, "run", 0)
    assert repo.check().ok
    p0 = repo.datastore.full_path(repo.file_record(refs[0]).path)
    from pathlib import Path

    data = bytearray(Path(p0).read_bytes())
    data[-1] ^= 0xFF
    Path(p0).write_bytes(bytes(data))
    p1 = repo.datastore.full_path(repo.file_record(refs[1]).path)
    os.remove(p1)
    orphan = os.path.join(os.path.dirname(p1), ".x.npy.tmp-123")
    Path(orphan).write_bytes(b"junk")
    rep = repo.check()
    assert not rep.ok
    assert [repo.datastore.full_path(p) for p in rep.corrupted] == [p0]
    assert [repo.datastore.full_path(p) for p in rep.missing] == [p1]
    assert [repo.datastore.full_path(p) for p in rep.orphans] == [orphan]
    rep = repo.check(fix=True)
    assert not os.path.exists(orphan) and rep.removed_orphans


def test_spatial_query(repo, populate):
    from pachon.core.sphgeom import Circle

    populate(repo)
    repo.insert_dimension_records(
        "visit",
        [
            {
                "instrument": "Cam",
                "id": v,
                "physical_filter": "g-1",
                "band": "g",
                "day_obs": 20240101,
                "region": Circle(ra, 10.0, 0.5),
            }
            for v, ra in ((1, 30.0), (2, 31.5), (3, 120.0))
        ],
    )
    ids = repo.query_data_ids(["visit"], region=(30.2, 10.1))
    assert [d["visit"] for d in ids] == [1]
    ids = repo.query_data_ids(["visit"], region=Circle(30.75, 10.0, 0.5))
    assert [d["visit"] for d in ids] == [1, 2]
    repo.register_dataset_type("src", ["visit", "detector"], "Json")
    for v in (1, 2, 3):
        repo.put({"v": v}, "src", {"instrument": "Cam", "visit": v, "detector": 0}, run="run")
    refs = repo.query_datasets("src", "run", region=(120.1, 10.0))
    assert [r.data_id["visit"] for r in refs] == [3]
    stored = repo.registry.dimension_record("visit", instrument="Cam", visit=1)["region"]
    from pachon.core.sphgeom import Region

    back = Region.from_dict(json.loads(stored))
    assert bool(back.contains(30.0, 10.0)) and not bool(back.contains(30.0, 10.6))
    assert back.to_dict() == Circle(30.0, 10.0, 0.5).to_dict()

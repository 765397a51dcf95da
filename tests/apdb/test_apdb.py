"""The APDB on SQLite and PostgreSQL: store, region and history queries, idempotency,
concurrent writers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa

from pachon.algorithms.association import summarize_dia_objects
from pachon.apdb import Apdb
from pachon.apdb.synthetic import dia_forced_source_table, dia_source_table
from pachon.core.errors import ConfigError
from pachon.core.sphgeom import Circle


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'apdb.sqlite3'}"
    return request.getfixturevalue("postgres_url")


def _detector_products(visit: int, detector: int, n: int = 5, shared: bool = False):
    """Sources of one detector: objects at dec = detector, ra spread; optional shared object."""
    t = 60000.0 + visit
    ids = visit * 10_000 + detector * 100 + np.arange(n)
    ra = 10.0 + 0.01 * np.arange(n)
    dec = np.full(n, float(detector))
    obj_ids = 1000 * detector + np.arange(n)
    if shared:
        obj_ids[0], ra[0], dec[0] = 999_999, 50.0, 50.0
    sources = dia_source_table(ids, ra, dec, t, visit=visit, detector=detector,
                               psf_flux=100.0 * (visit + 1), dia_object_id=obj_ids)
    forced = dia_forced_source_table(ids, obj_ids, ra, dec, t, visit=visit, detector=detector)
    return t, summarize_dia_objects(sources), sources, forced


def _count(apdb: Apdb, table: str) -> int:
    with apdb.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(apdb.tables[table])).scalar()


def test_store_query_history_and_idempotency(url: str) -> None:
    apdb = Apdb(url)
    for visit in range(3):
        t, objects, sources, forced = _detector_products(visit, 1)
        result = apdb.store(t, objects, sources, forced)
        assert not result.already_stored and result.n_dia_sources == 5
    again = apdb.store(*_detector_products(2, 1))
    assert again.already_stored
    assert _count(apdb, "DiaSource") == 15 and _count(apdb, "DiaForcedSource") == 15
    assert _count(apdb, "DiaObject") == 15  # 3 versions of 5 objects
    assert _count(apdb, "DiaObjectLast") == 5
    assert apdb.stored_detectors(2) == [1]

    last = apdb.get_dia_objects(Circle(10.02, 1.0, 0.015))
    assert sorted(last.column("diaObjectId").to_pylist()) == [1001, 1002, 1003]
    assert set(last.column("validityStartMjdTai").to_pylist()) == {60002.0}
    assert last.column("validityEndMjdTai").null_count == 3
    assert "pixelId" not in last.column_names
    assert apdb.get_dia_objects(Circle(200.0, -30.0, 0.1)).num_rows == 0

    history = apdb.get_dia_object_history([1000])
    assert history.column("validityStartMjdTai").to_pylist() == [60000.0, 60001.0, 60002.0]
    assert history.column("validityEndMjdTai").to_pylist() == [60001.0, 60002.0, None]

    sources = apdb.get_dia_sources([1000, 1004])
    assert sources.num_rows == 6
    assert sources.column("psfFlux").to_pylist()[:3] == [100.0, 200.0, 300.0]
    recent = apdb.get_dia_sources([1000, 1004], since=60001.0)
    assert recent.num_rows == 4
    assert apdb.get_dia_forced_sources([1000], since=60002.0).num_rows == 1
    assert apdb.get_dia_sources([]).num_rows == 0
    apdb.close()


def test_store_rejects_mixed_detectors(url: str) -> None:
    apdb = Apdb(url)
    t, objects, sources, _ = _detector_products(0, 1)
    other = _detector_products(0, 2)[2]
    with pytest.raises(ConfigError, match="one \\(visit, detector\\)"):
        apdb.store(t, objects, pa.concat_tables([sources, other]), None)
    empty = sources.slice(0, 0)
    assert apdb.store(t, None, empty, None, visit=0, detector=9).n_dia_sources == 0
    assert apdb.stored_detectors(0) == [9]
    apdb.close()


# Each writer is a separate Python process that imports only pachon (not this test module).
_WRITER = """
import sys
import numpy as np
from pachon.algorithms.association import summarize_dia_objects
from pachon.apdb import Apdb
from pachon.apdb.synthetic import dia_forced_source_table, dia_source_table
url, visit, detector = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t = 60000.0 + visit
n = 5
ids = visit * 10_000 + detector * 100 + np.arange(n)
ra = 10.0 + 0.01 * np.arange(n)
dec = np.full(n, float(detector))
obj = 1000 * detector + np.arange(n)
obj[0], ra[0], dec[0] = 999_999, 50.0, 50.0
src = dia_source_table(ids, ra, dec, t, visit=visit, detector=detector, dia_object_id=obj)
forced = dia_forced_source_table(ids, obj, ra, dec, t, visit=visit, detector=detector)
apdb = Apdb(url)
result = apdb.store(t, summarize_dia_objects(src), src, forced)
apdb.close()
print("SKIPPED" if result.already_stored else "STORED")
"""


def test_concurrent_writers(url: str) -> None:
    Apdb(url).close()
    # 3 detectors of one visit written by 4 processes at once, detector 3 twice
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, url, "7", str(d)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for d in (1, 2, 3, 3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outputs]
    assert sorted(out.strip() for out, _ in outputs) == ["SKIPPED"] + ["STORED"] * 3
    apdb = Apdb(url)
    assert _count(apdb, "DiaSource") == 15
    with apdb.engine.connect() as conn:
        ids = conn.execute(sa.select(apdb.tables["DiaSource"].c.diaSourceId)).scalars().all()
        assert len(set(ids)) == 15
    # the object shared by all detectors has exactly one open version
    obj = apdb.get_dia_object_history([999_999])
    assert obj.num_rows == 1 and obj.column("validityEndMjdTai").null_count == 1
    assert _count(apdb, "DiaObjectLast") == 3 * 4 + 1
    assert apdb.stored_detectors(7) == [1, 2, 3]
    apdb.close()

"""The APDB served by TAP: ``apdb.DiaObject`` (current versions), ``apdb.DiaSource``...

A repository of its own (the shared service repository must stay APDB-free) with an APDB at
the AP pipeline's default place, ``<repo>/apdb.sqlite3``: 6 DiaObjects near (150.3, -5.0),
stored over two visits (objects 1..3 updated by the second), 12 DiaSources, 4 forced sources.
The access rule ``apdb`` -> group ``embargo`` embargoes every APDB row.
"""

from __future__ import annotations

import io
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from astropy.io.votable import parse

from pachon.apdb import Apdb
from pachon.apdb.synthetic import dia_forced_source_table, dia_source_table
from pachon.core.schemas import arrow_schema
from pachon.core.sphgeom import angular_separation

from .conftest import build_service_repo

RA0, DEC0 = 150.3, -5.0
T1, T2, T3 = 60400.1, 60401.1, 60402.1


def _objects(ids: list[int], n_sources: list[int]) -> pa.Table:
    """DiaObject rows (required columns) at fixed positions around (RA0, DEC0)."""
    schema = arrow_schema("apdb", "DiaObject")
    ids_arr = np.asarray(ids)
    values: dict[str, Any] = {
        "diaObjectId": ids_arr,
        "validityStartMjdTai": np.zeros(len(ids)),
        "ra": RA0 + 0.01 * ids_arr,
        "dec": DEC0 + 0.005 * ids_arr,
        "nDiaSources": np.asarray(n_sources),
    }
    for band in "ugrizy":
        values[f"{band}_psfFluxNdata"] = np.zeros(len(ids))
    arrays = [
        pa.array(values[f.name], f.type) if f.name in values else pa.nulls(len(ids), f.type) for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _sources(first_id: int, object_ids: list[int], visit: int, t: float) -> pa.Table:
    oid = np.asarray(object_ids)
    offset = 1e-4 * np.arange(oid.size)  # a few arcsec from the object
    return dia_source_table(
        first_id + np.arange(oid.size), RA0 + 0.01 * oid + offset, DEC0 + 0.005 * oid, t,
        visit=visit, detector=0, dia_object_id=oid, psf_flux=100.0 * oid,
    )


def _store(url: str, visit: int, t: float, objects: list[int], n_sources: list[int], first: int) -> None:
    apdb = Apdb(url)
    try:
        apdb.store(t, _objects(objects, n_sources), _sources(first, objects, visit, t))
    finally:
        apdb.close()


@pytest.fixture(scope="module")
def apdb_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = build_service_repo(tmp_path_factory.mktemp("apdb_service") / "repo")
    url = f"sqlite:///{root / 'apdb.sqlite3'}"
    _store(url, 1, T1, [1, 2, 3, 4, 5, 6], [1] * 6, 100)
    apdb = Apdb(url)
    try:  # visit 2 updates objects 1..3 (new versions) and adds forced photometry of 1..4
        apdb.store(
            T2, _objects([1, 2, 3], [2, 2, 2]), _sources(200, [1, 2, 3], 2, T2),
            dia_forced_source_table(np.arange(300, 304), [1, 2, 3, 4], RA0, DEC0, T2, visit=2, detector=0),
        )
    finally:
        apdb.close()
    from pachon.services.auth import AuthStore

    store = AuthStore(root / "services" / "auth.sqlite3")
    try:
        store.set_rule("apdb", ["embargo"])
        tokens = {
            "embargo": store.create_token("eve", ["read:tap"], groups=["embargo"]),
            "plain": store.create_token("paul", ["read:tap"]),
        }
    finally:
        store.close()
    (root / "tokens.txt").write_text(f"{tokens['embargo']} {tokens['plain']}")
    return root


@pytest.fixture(scope="module")
def tokens(apdb_repo: Path) -> dict[str, str]:
    embargo, plain = (apdb_repo / "tokens.txt").read_text().split()
    return {"embargo": embargo, "plain": plain}


@pytest.fixture(scope="module")
def apdb_app(apdb_repo: Path) -> Iterator[Any]:
    from pachon.services.app import create_app
    from pachon.services.settings import ServiceSettings

    settings = ServiceSettings(repo=apdb_repo, max_rows=1000, default_maxrec=1000, apdb_refresh_s=0)
    application = create_app(settings)
    yield application
    application.state.context.close()


@pytest.fixture
def client(apdb_app: Any) -> Iterator[Any]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    c = TestClient(apdb_app, raise_server_exceptions=False)
    yield c
    c.close()


def _query(client: Any, query: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = client.post("/tap/sync", data={"LANG": "ADQL", "QUERY": query}, headers=headers)
    assert r.status_code == 200, r.text
    return parse(io.BytesIO(r.content)).get_first_table().to_table()


def test_settings_default_apdb_url(apdb_repo: Path, tmp_path: Path) -> None:
    from pachon.services.settings import ServiceSettings

    expected = f"sqlite:///{(apdb_repo / 'apdb.sqlite3').resolve()}"
    assert ServiceSettings(repo=apdb_repo).resolved_apdb_url() == expected
    assert ServiceSettings(repo=apdb_repo, apdb_url="").resolved_apdb_url() is None
    assert ServiceSettings(repo=tmp_path).resolved_apdb_url() is None


def test_cone_search_on_dia_source(client: Any, tokens: dict[str, str]) -> None:
    ra, dec, r = RA0 + 0.02, DEC0 + 0.01, 0.006
    t = _query(
        client,
        f"SELECT diaSourceId, ra, dec FROM apdb.DiaSource WHERE CONTAINS(POINT('ICRS', ra, dec), "
        f"CIRCLE('ICRS', {ra}, {dec}, {r})) = 1 ORDER BY diaSourceId",
        tokens["embargo"],
    )
    truth = pa.concat_tables([_sources(100, [1, 2, 3, 4, 5, 6], 1, T1), _sources(200, [1, 2, 3], 2, T2)])
    sep = angular_separation(truth["ra"].to_numpy(), truth["dec"].to_numpy(), ra, dec)
    expected = np.sort(truth["diaSourceId"].to_numpy()[sep <= r])
    assert list(expected) == [101, 201]  # object 2's sources of both visits
    assert list(t["diaSourceId"]) == list(expected)


def test_join_and_current_dia_objects(client: Any, tokens: dict[str, str]) -> None:
    t = _query(
        client,
        "SELECT o.diaObjectId, o.nDiaSources, o.validityStartMjdTai, COUNT(*) AS n "
        "FROM apdb.DiaSource AS s JOIN apdb.DiaObject AS o ON s.diaObjectId = o.diaObjectId "
        "GROUP BY o.diaObjectId, o.nDiaSources, o.validityStartMjdTai ORDER BY o.diaObjectId",
        tokens["embargo"],
    )
    # one row per object: only the current version is served (no duplicate from the closed one)
    assert list(t["diaObjectId"]) == [1, 2, 3, 4, 5, 6]
    assert list(t["n"]) == [2, 2, 2, 1, 1, 1]
    assert list(t["nDiaSources"]) == list(t["n"])
    assert list(t["validityStartMjdTai"]) == [T2] * 3 + [T1] * 3
    forced = _query(client, "SELECT COUNT(*) AS n FROM apdb.DiaForcedSource", tokens["embargo"])
    assert forced["n"][0] == 4


def test_tap_schema_describes_apdb(client: Any) -> None:
    tables = _query(client, "SELECT table_name FROM TAP_SCHEMA.tables WHERE schema_name = 'apdb'")
    names = {f"apdb.{t}" for t in ("DiaObject", "DiaSource", "DiaForcedSource", "SSObject", "SSSource")}
    assert names <= set(tables["table_name"])
    cols = _query(
        client,
        "SELECT column_name, unit, ucd, datatype, description FROM TAP_SCHEMA.columns "
        "WHERE table_name = 'apdb.DiaSource'",
    )
    by_name = {row["column_name"]: row for row in cols}
    assert by_name["ra"]["unit"] == "deg" and by_name["ra"]["ucd"] == "pos.eq.ra"
    assert by_name["psfFlux"]["unit"] == "nJy" and by_name["psfFlux"]["datatype"] == "float"
    assert by_name["diaSourceId"]["datatype"] == "long"
    assert "pixelId" not in by_name and "_pachon_run" not in by_name
    assert len(cols) == len(arrow_schema("apdb", "DiaSource"))
    keys = _query(client, "SELECT from_table, target_table FROM TAP_SCHEMA.keys")
    pairs = set(zip(keys["from_table"], keys["target_table"], strict=True))
    assert ("apdb.DiaSource", "apdb.DiaObject") in pairs


def test_apdb_embargo_rule(client: Any, tokens: dict[str, str]) -> None:
    query = "SELECT COUNT(*) AS n FROM apdb.DiaSource"
    assert _query(client, query)["n"][0] == 0  # anonymous
    assert _query(client, query, tokens["plain"])["n"][0] == 0
    assert _query(client, query, tokens["embargo"])["n"][0] == 9
    # the rule embargoes the APDB only: public repository catalogs stay visible
    assert _query(client, "SELECT COUNT(*) AS n FROM dp1.Source")["n"][0] == 100  # both runs
    joined = "SELECT COUNT(*) AS n FROM apdb.DiaObject AS o JOIN apdb.DiaSource AS s USING (diaObjectId)"
    assert _query(client, joined, tokens["plain"])["n"][0] == 0


def test_refresh_after_store(client: Any, apdb_app: Any, apdb_repo: Path, tokens: dict[str, str]) -> None:
    db = apdb_app.state.context.catalogs
    before = db.path.stat().st_ino
    meta_before = db._stored_meta()
    _store(f"sqlite:///{apdb_repo / 'apdb.sqlite3'}", 3, T3, [7, 8], [1, 1], 400)
    t = _query(client, "SELECT diaSourceId FROM apdb.DiaSource WHERE visit = 3 ORDER BY diaSourceId",
               tokens["embargo"])
    assert list(t["diaSourceId"]) == [400, 401]
    n = _query(client, "SELECT COUNT(*) AS n FROM apdb.DiaObject", tokens["embargo"])
    assert n["n"][0] == 8
    meta = db._stored_meta()
    assert db.path.stat().st_ino != before  # a new file was swapped in
    assert meta["repo_fingerprint"] == meta_before["repo_fingerprint"]
    assert meta["apdb_fingerprint"] != meta_before["apdb_fingerprint"]
    assert not db.refresh_apdb(force=True)  # unchanged: nothing reloaded


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("stilts") is None, reason="STILTS is not installed (apt-get install stilts)")
def test_taplint_metadata_with_apdb(apdb_app: Any) -> None:
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(apdb_app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        out = subprocess.run(
            ["stilts", "taplint", f"tapurl=http://127.0.0.1:{port}/tap", "report=E", "maxrepeat=3",
             "stages=TMV TME TMS TMC CPV MDQ"],
            capture_output=True, text=True, timeout=300,
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    errors = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("E-")]
    assert not errors, "\n".join(errors)


@pytest.mark.postgres
def test_postgres_backend_serves_and_refreshes_apdb(
    client: Any, apdb_repo: Path, tokens: dict[str, str], postgres_url: str
) -> None:
    import warnings

    import sqlalchemy

    from pachon.services.app import create_app
    from pachon.services.settings import ServiceSettings

    engine = sqlalchemy.create_engine(postgres_url)
    with engine.connect() as conn:
        q3c = sqlalchemy.text("SELECT 1 FROM pg_available_extensions WHERE name = 'q3c'")
        has_q3c = conn.execute(q3c).first()
    engine.dispose()
    if not has_q3c:
        pytest.skip("the q3c PostgreSQL extension is not installed (apt-get install postgresql-15-q3c)")
    settings = ServiceSettings(
        repo=apdb_repo, apdb_refresh_s=0, tap_backend="postgresql", tap_database_url=postgres_url,
    )
    application = create_app(settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    pg = TestClient(application, raise_server_exceptions=False)
    try:
        query = (
            "SELECT s.diaSourceId, o.nDiaSources FROM apdb.DiaSource AS s JOIN apdb.DiaObject AS o "
            "ON s.diaObjectId = o.diaObjectId WHERE CONTAINS(POINT('ICRS', s.ra, s.dec), "
            f"CIRCLE('ICRS', {RA0 + 0.05}, {DEC0 + 0.025}, 0.2)) = 1 ORDER BY s.diaSourceId"
        )
        before = _query(pg, query, tokens["embargo"])
        assert list(before["diaSourceId"]) == list(_query(client, query, tokens["embargo"])["diaSourceId"])
        assert len(before) >= 9
        assert len(_query(pg, query, tokens["plain"])) == 0  # the apdb rule holds on PostgreSQL too
        _store(f"sqlite:///{apdb_repo / 'apdb.sqlite3'}", 4, T3 + 1, [1], [3], 500)
        after = _query(pg, query, tokens["embargo"])
        assert set(after["diaSourceId"]) - set(before["diaSourceId"]) == {500}
        assert set(after["nDiaSources"][after["diaSourceId"] == 500]) == {3}
    finally:
        pg.close()
        application.state.context.close()

"""TAP sync queries, formats, limits, TAP_SCHEMA and VOSI, in process."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io.votable import parse

from pachon.core.sphgeom import angular_separation

from .conftest import CENTERS, object_table, source_table


def _sync(client, query: str, token: str | None = None, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/tap/sync", data={"LANG": "ADQL", "QUERY": query, **params}, headers=headers)


def _votable(response):
    assert response.status_code == 200, response.text
    vot = parse(io.BytesIO(response.content))
    return vot, vot.get_first_table().to_table()


def test_cone_search_matches_numpy(client, service_tokens):
    ra0, dec0, r = 150.05, 2.05, 0.004
    q = (
        f"SELECT sourceId, ra, dec FROM dp1.Source WHERE "
        f"CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra0}, {dec0}, {r})) = 1 ORDER BY sourceId"
    )
    _, t = _votable(_sync(client, q, service_tokens["embargo"]))
    truth = source_table(3, *CENTERS[3], 9000, "r")
    sep = angular_separation(truth["ra"].to_numpy(), truth["dec"].to_numpy(), ra0, dec0)
    expected = np.sort(truth["sourceId"].to_numpy()[sep <= r])
    assert len(expected) > 3
    assert list(t["sourceId"]) == list(expected)


def test_polygon_distance_and_functions(client):
    q = (
        "SELECT COUNT(*) AS n FROM dp1.Source WHERE CONTAINS(POINT('ICRS', ra, dec), "
        "POLYGON('ICRS', 149.99, 1.99, 150.01, 1.99, 150.01, 2.01, 149.99, 2.01)) = 1"
    )
    _, t = _votable(_sync(client, q))
    assert t["n"][0] == 50  # every public source of exposure 1, none of the embargoed run
    q = (
        "SELECT TOP 1 sourceId, DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 150, 2)) AS d, "
        "ra, dec, LOG(EXP(2.0)) AS two, TRUNCATE(2.789, 1) AS tr FROM dp1.Source ORDER BY d"
    )
    _, t = _votable(_sync(client, q))
    d = angular_separation(t["ra"][0], t["dec"][0], 150.0, 2.0)
    assert t["d"][0] == pytest.approx(d, rel=1e-9)
    assert t["two"][0] == pytest.approx(2.0) and t["tr"][0] == pytest.approx(2.7)


def test_join_and_offset(client):
    q = (
        "SELECT o.objectId, s.sourceId FROM dp1.Object AS o JOIN dp1.Source AS s ON "
        "s.visit = 1 AND CONTAINS(POINT('ICRS', s.ra, s.dec), "
        "CIRCLE('ICRS', o.coord_ra, o.coord_dec, 0.01)) = 1 "
        "ORDER BY o.objectId, s.sourceId"
    )
    _, t = _votable(_sync(client, q))
    assert set(t["objectId"]) == set(object_table(*CENTERS[1], 500)["objectId"].to_pylist())
    _, t2 = _votable(_sync(client, q + " OFFSET 5"))
    assert list(t2["sourceId"]) == list(t["sourceId"][5:])


def test_maxrec_overflow_and_top(client):
    r = _sync(client, "SELECT sourceId FROM dp1.Source ORDER BY sourceId", MAXREC="7")
    vot, t = _votable(r)
    assert list(t["sourceId"]) == list(range(1000, 1007))
    assert b'</TABLE>\n<INFO name="QUERY_STATUS" value="OVERFLOW"/>' in r.content
    assert vot.resources[0].infos[0].value == "OK"
    r = _sync(client, "SELECT TOP 5 sourceId FROM dp1.Source", MAXREC="7")
    _, t = _votable(r)
    assert len(t) == 5 and b"OVERFLOW" not in r.content
    r = _sync(client, "SELECT sourceId, ra FROM dp1.Source", MAXREC="0")
    _, t = _votable(r)
    assert len(t) == 0 and t.colnames == ["sourceId", "ra"] and b"OVERFLOW" in r.content


def test_formats(client):
    q = "SELECT TOP 4 sourceId, psfFlux, band FROM dp1.Source ORDER BY sourceId"
    r = _sync(client, q, RESPONSEFORMAT="csv")
    assert r.headers["content-type"].startswith("text/csv")
    lines = r.text.strip().splitlines()
    assert lines[0] == '"sourceId","psfFlux","band"' and lines[1].startswith("1000,")
    r = _sync(client, q, RESPONSEFORMAT="parquet")
    table = pq.read_table(io.BytesIO(r.content))
    assert table["sourceId"].to_pylist() == [1000, 1001, 1002, 1003]
    _, t = _votable(_sync(client, q, RESPONSEFORMAT="application/x-votable+xml"))
    truth = source_table(1, *CENTERS[1], 1000, "g")
    assert np.allclose(t["psfFlux"], truth["psfFlux"].to_numpy()[:4])
    assert _sync(client, q, RESPONSEFORMAT="fits").status_code == 400


@pytest.mark.parametrize(
    "query, fragment",
    [
        ("DROP TABLE dp1.Source", "only SELECT"),
        ("SELECT 1; SELECT 2", "exactly one"),
        ("SELECT * FROM read_parquet('/etc/passwd')", "table functions"),
        ("SELECT read_csv('/etc/passwd')", "not allowed"),
        ("SELECT getenv('HOME')", "forbidden function"),
        ("SELECT * FROM dp1.Nothing", "no table"),
        ("SELEC 1", "syntax"),
        ("SELECT no_such_column FROM dp1.Source", "query failed"),
        ("INSERT INTO dp1.Source VALUES (1)", "only SELECT"),
        ("WITH a AS (SELECT 1) SELECT * FROM a", "WITH"),
    ],
)
def test_bad_queries_give_votable_errors(client, query, fragment):
    r = _sync(client, query)
    assert r.status_code == 400
    vot = parse(io.BytesIO(r.content))
    info = vot.resources[0].infos[0]
    assert info.name == "QUERY_STATUS" and info.value == "ERROR"
    assert fragment.lower() in info.content.lower()


def test_tap_schema_describes_tables(client):
    _, t = _votable(_sync(client, "SELECT table_name FROM TAP_SCHEMA.tables"))
    names = set(t["table_name"])
    assert {"dp1.Source", "dp1.Object", "pachon.provenance", "TAP_SCHEMA.columns"} <= names
    q = (
        "SELECT column_name, datatype, unit, ucd FROM TAP_SCHEMA.columns "
        "WHERE table_name = 'dp1.Source' AND column_name IN ('ra', 'sourceId')"
    )
    _, t = _votable(_sync(client, q))
    rows = {r["column_name"]: r for r in t}
    assert rows["ra"]["datatype"] == "double" and rows["ra"]["unit"] == "deg"
    assert rows["ra"]["ucd"] == "pos.eq.ra"  # from the Rubin felis schema
    assert rows["sourceId"]["datatype"] == "long"
    _, t = _votable(
        _sync(client, "SELECT column_name FROM TAP_SCHEMA.columns WHERE table_name = 'dp1.Source'")
    )
    assert "_pachon_run" not in set(t["column_name"])


def test_vosi_endpoints(client):
    assert "<vosi:available>true</vosi:available>" in client.get("/tap/availability").text
    caps = client.get("/tap/capabilities").text
    assert 'standardID="ivo://ivoa.net/std/TAP"' in caps and "/tap</accessURL>" in caps
    tables = client.get("/tap/tables").text
    assert "<name>dp1.Source</name>" in tables and "<name>sourceId</name>" in tables
    assert client.get("/tap/tables/dp1.Source").status_code == 200
    assert client.get("/tap/tables/nope.nope").status_code == 404
    assert "dali-example-query" in client.get("/tap/examples").text


def test_provenance_table(client, service_tokens):
    q = "SELECT dataset_type, run, task FROM pachon.provenance WHERE dataset_type = 'calexp' ORDER BY run"
    _, t = _votable(_sync(client, q, service_tokens["admin"]))
    assert list(t["run"]) == ["Cam/runs/embargo", "Cam/runs/public", "Cam/runs/public"]
    assert set(t["task"]) == {"calibrate"}
    q = (
        "SELECT COUNT(*) AS n FROM pachon.provenance_input AS i JOIN pachon.provenance AS p "
        "ON p.dataset_id = i.dataset_id WHERE p.dataset_type = 'source'"
    )
    _, t = _votable(_sync(client, q, service_tokens["admin"]))
    assert t["n"][0] == 2


def test_upload_join(client):
    up = io.BytesIO()
    from astropy.table import Table

    Table({"id": [1, 2], "ra": [150.0, 150.05], "dec": [2.0, 2.05]}).write(up, format="votable")
    q = (
        "SELECT u.id, COUNT(*) AS n FROM TAP_UPLOAD.mine AS u JOIN dp1.Source AS s ON "
        "CONTAINS(POINT('ICRS', s.ra, s.dec), CIRCLE('ICRS', u.ra, u.dec, 0.01)) = 1 "
        "GROUP BY u.id ORDER BY u.id"
    )
    r = client.post(
        "/tap/sync",
        data={"LANG": "ADQL", "QUERY": q, "UPLOAD": "mine,param:t1"},
        files={"t1": ("t.xml", up.getvalue(), "application/x-votable+xml")},
    )
    _, t = _votable(r)
    assert list(t["id"]) == [1] and t["n"][0] == 50  # the embargoed field stays invisible

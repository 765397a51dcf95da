"""The PostgreSQL (Q3C) TAP back end: same rows as DuckDB, embargo, and a read-only role.

The same ADQL queries run through the default DuckDB app (`client`) and an app on PostgreSQL
(`pg_client`); the rows must agree.  Dangerous statements are refused and nothing is written
(per-table checksums), and the reader role itself cannot write even given raw SQL.
"""

from __future__ import annotations

import io
import math
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow.parquet as pq
import pytest
from astropy.io.votable import parse

from .conftest import CENTERS, source_table

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_database(postgres_server_url: str) -> Iterator[str]:
    """A fresh database on the test server (skips when Q3C is not installed there)."""
    import sqlalchemy

    admin = sqlalchemy.create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        has_q3c = conn.execute(
            sqlalchemy.text("SELECT 1 FROM pg_available_extensions WHERE name = 'q3c'")
        ).first()
        if not has_q3c:
            admin.dispose()
            pytest.skip("the q3c PostgreSQL extension is not installed (apt-get install postgresql-15-q3c)")
        name = f"pachon_tap_{uuid.uuid4().hex[:10]}"
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{postgres_server_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(
                sqlalchemy.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(sqlalchemy.text(f'DROP ROLE IF EXISTS "{name}_tap_reader"'))
        admin.dispose()


@pytest.fixture(scope="module")
def pg_app(service_settings: Any, pg_database: str) -> Iterator[Any]:
    """The application of `service_repo` on the PostgreSQL back end."""
    from pachon.services.app import create_app

    settings = service_settings.model_copy(
        update={"tap_backend": "postgresql", "tap_database_url": pg_database}
    )
    application = create_app(settings)
    yield application
    application.state.context.close()


@pytest.fixture
def pg_client(pg_app: Any) -> Iterator[Any]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    c = TestClient(pg_app, raise_server_exceptions=False)
    yield c
    c.close()


def _sync(client: Any, query: str, token: str | None = None, **params: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/tap/sync", data={"LANG": "ADQL", "QUERY": query, **params}, headers=headers)


def _rows(response: Any) -> tuple[list[str], list[tuple]]:
    assert response.status_code == 200, response.text
    table = pq.read_table(io.BytesIO(response.content))
    return table.column_names, [tuple(r.values()) for r in table.to_pylist()]


def _same(a: list[tuple], b: list[tuple]) -> bool:
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        for x, y in zip(ra, rb, strict=True):
            x, y = (float(v) if isinstance(v, Decimal) else v for v in (x, y))  # DuckDB literals
            if isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=1e-11, abs_tol=1e-13):
                    return False
            elif x != y:
                return False
    return True


CONE = (
    "SELECT sourceId, ra, dec FROM dp1.Source WHERE CONTAINS(POINT('ICRS', ra, dec), "
    "CIRCLE('ICRS', 150.05, 2.05, 0.004)) = 1 ORDER BY sourceId"
)
POLYGON = (
    "SELECT sourceId FROM dp1.Source WHERE CONTAINS(POINT('ICRS', ra, dec), "
    "POLYGON('ICRS', 149.99, 1.99, 150.01, 1.99, 150.01, 2.01, 149.99, 2.01)) = 1 ORDER BY sourceId"
)
JOIN = (
    "SELECT o.objectId, s.sourceId FROM dp1.Object AS o JOIN dp1.Source AS s ON "
    "CONTAINS(POINT('ICRS', s.ra, s.dec), CIRCLE('ICRS', o.coord_ra, o.coord_dec, 0.003)) = 1 "
    "ORDER BY o.objectId, s.sourceId"
)
QUERIES = [
    (CONE, "embargo"),
    (CONE, None),
    (CONE.replace("150.05, 2.05", "150.0, 2.0"), "plain"),
    (POLYGON, None),
    (POLYGON.replace("CONTAINS", "INTERSECTS"), "admin"),
    (JOIN, None),
    (JOIN, "embargo"),
    (JOIN + " OFFSET 5", None),
    (
        "SELECT TOP 3 sourceId, DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 150, 2)) AS d, "
        "LOG(EXP(2.0)) AS two, TRUNCATE(2.789, 1) AS tr, ROUND(psfFlux, 1) AS f FROM dp1.Source ORDER BY d",
        None,
    ),
    ("SELECT band, COUNT(*) AS n, MAX(psfFlux) AS m FROM dp1.Source GROUP BY band ORDER BY band", "embargo"),
    ("SELECT sourceId FROM dp1.Source ORDER BY sourceId", None),
    ("SELECT sourceId FROM dp1.Source ORDER BY sourceId", "plain"),
    ("SELECT sourceId FROM dp1.Source ORDER BY sourceId", "embargo"),
    ("SELECT objectId FROM dp1.Object WHERE objectId >= 9500 ORDER BY objectId", None),
    ("SELECT obs_id, s_ra, s_dec FROM ivoa.ObsCore ORDER BY obs_id", None),
    ("SELECT obs_id FROM ivoa.ObsCore ORDER BY obs_id", "embargo"),
    ("SELECT dataset_type, run FROM pachon.provenance ORDER BY run, dataset_type", "plain"),
    ("SELECT dataset_type, run FROM pachon.provenance ORDER BY run, dataset_type", "admin"),
    (
        "SELECT column_name, datatype, unit, ucd FROM TAP_SCHEMA.columns "
        "WHERE table_name = 'dp1.Source' ORDER BY column_index",
        None,
    ),
    ("SELECT table_name FROM TAP_SCHEMA.tables ORDER BY table_name", None),
    ("SELECT SOURCEID, Ra FROM DP1.SOURCE WHERE sourceid IN (1003, 1004) ORDER BY SourceId", None),
]


@pytest.mark.parametrize("query, who", QUERIES)
def test_same_rows_on_both_back_ends(client, pg_client, service_tokens, query, who):
    token = service_tokens[who] if who else None
    names_d, rows_d = _rows(_sync(client, query, token, RESPONSEFORMAT="parquet"))
    names_p, rows_p = _rows(_sync(pg_client, query, token, RESPONSEFORMAT="parquet"))
    assert [n.lower() for n in names_p] == [n.lower() for n in names_d]
    assert _same(rows_p, rows_d), (rows_p[:5], rows_d[:5])


def test_cone_truth_and_embargo(pg_client, service_tokens):
    truth = source_table(3, *CENTERS[3], 9000, "r")
    _, rows = _rows(_sync(pg_client, CONE, service_tokens["embargo"], RESPONSEFORMAT="parquet"))
    from pachon.core.sphgeom import angular_separation

    sep = angular_separation(truth["ra"].to_numpy(), truth["dec"].to_numpy(), 150.05, 2.05)
    expected = sorted(truth["sourceId"].to_numpy()[sep <= 0.004].tolist())
    assert len(expected) > 3 and [r[0] for r in rows] == expected
    for who, n in ((None, 50), ("plain", 50), ("embargo", 100), ("admin", 100)):
        token = service_tokens[who] if who else None
        _, rows = _rows(_sync(pg_client, "SELECT sourceId FROM dp1.Source", token, RESPONSEFORMAT="parquet"))
        ids = [r[0] for r in rows]
        assert len(ids) == n and (n == 100 or max(ids) < 9000)
    _, rows = _rows(_sync(pg_client, CONE, service_tokens["plain"], RESPONSEFORMAT="parquet"))
    assert rows == []  # the embargoed field is invisible, not an error


def test_maxrec_overflow_and_top(pg_client):
    r = _sync(pg_client, "SELECT sourceId FROM dp1.Source ORDER BY sourceId", MAXREC="7")
    assert r.status_code == 200 and b'<INFO name="QUERY_STATUS" value="OVERFLOW"/>' in r.content
    t = parse(io.BytesIO(r.content)).get_first_table().to_table()
    assert list(t["sourceId"]) == list(range(1000, 1007))
    r = _sync(pg_client, "SELECT TOP 5 sourceId FROM dp1.Source", MAXREC="7")
    assert len(parse(io.BytesIO(r.content)).get_first_table().to_table()) == 5
    assert b"OVERFLOW" not in r.content
    r = _sync(pg_client, "SELECT sourceId, ra FROM dp1.Source", MAXREC="0")
    t = parse(io.BytesIO(r.content)).get_first_table().to_table()
    assert len(t) == 0 and t.colnames == ["sourceId", "ra"] and b"OVERFLOW" in r.content


def test_upload_join_on_both(client, pg_client):
    from astropy.table import Table

    up = io.BytesIO()
    Table({"id": [1, 2], "ra": [150.0, 150.05], "dec": [2.0, 2.05], "tag": ["a%b", "c"]}).write(
        up, format="votable"
    )
    q = (
        "SELECT u.id, u.tag, COUNT(*) AS n FROM TAP_UPLOAD.mine AS u JOIN dp1.Source AS s ON "
        "CONTAINS(POINT('ICRS', s.ra, s.dec), CIRCLE('ICRS', u.ra, u.dec, 0.01)) = 1 "
        "WHERE u.tag LIKE 'a%' GROUP BY u.id, u.tag ORDER BY u.id"
    )
    results = []
    for c in (client, pg_client):
        r = c.post(
            "/tap/sync",
            data={"LANG": "ADQL", "QUERY": q, "UPLOAD": "mine,param:t1", "RESPONSEFORMAT": "parquet"},
            files={"t1": ("t.xml", up.getvalue(), "application/x-votable+xml")},
        )
        results.append(_rows(r)[1])
    assert results[1] == results[0] == [(1, "a%b", 50)]


def test_errors_are_votable_errors(pg_client):
    r = _sync(pg_client, "SELECT no_such_column FROM dp1.Source")
    assert r.status_code == 400 and "query failed" in r.text
    r = _sync(pg_client, "SELECT * FROM pachon_tap_admin.meta")
    assert r.status_code == 400 and "no table" in r.text


# -- nothing is written -----------------------------------------------------------------------


def _checksums(pg_app: Any) -> dict[str, tuple]:
    import psycopg

    db = pg_app.state.context.catalogs
    out = {}
    with psycopg.connect(db.url) as conn:
        for t in db.tables.values():
            digest = "md5(string_agg(x::text, '|' ORDER BY x::text))"
            q = f'SELECT count(*), {digest} FROM "{t.schema}"."{t.name}" x'
            out[t.qualified] = conn.execute(q).fetchone()
        out["roles"] = conn.execute("SELECT count(*) FROM pg_roles").fetchone()
        out["relations"] = conn.execute("SELECT count(*) FROM pg_class").fetchone()
    return out


_DANGEROUS = [
    "DROP TABLE dp1.Source",
    "DELETE FROM dp1.Source",
    "UPDATE dp1.Source SET ra = 0",
    "INSERT INTO dp1.Source SELECT * FROM dp1.Source",
    "CREATE TABLE x AS SELECT 1",
    "SELECT * INTO x FROM dp1.Source",
    "TRUNCATE dp1.Source",
    "COPY dp1.Source TO '/tmp/x.csv'",
    "COPY dp1.Source FROM PROGRAM 'id'",
    "SET default_transaction_read_only = off",
    "SET TRANSACTION READ WRITE",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT * FROM pg_catalog.pg_authid",
    "SELECT * FROM pg_stat_activity",
    "SELECT q3c_ang2ipix(1, 2)",
    "SELECT pg_sleep(30)",
    "SELECT nextval('s')",
    "SELECT * FROM dblink('x', 'DELETE FROM dp1.Source')",
    "SELECT * FROM generate_series(1, 10)",
    "SELECT current_user",
    "SELECT 1; DROP TABLE dp1.Source",
    "SELECT sourceId FROM dp1.Source; DELETE FROM dp1.Source",
    "SELECT sourceId FROM dp1.Source FOR UPDATE",
    "WITH d AS (DELETE FROM dp1.Source RETURNING *) SELECT * FROM d",
    "SELECT _pachon_run FROM dp1.Source",
    "SELECT * FROM pachon_tap_admin.meta",
    "CREATE ROLE evil SUPERUSER",
    "ALTER ROLE CURRENT_USER SET default_transaction_read_only = off",
    "GRANT ALL ON dp1.Source TO PUBLIC",
    "VACUUM dp1.Source",
    "LOCK TABLE dp1.Source",
    "PREPARE p AS DELETE FROM dp1.Source",
    "DO $$ BEGIN DELETE FROM dp1.Source; END $$",
    "SELECT 'x' || (SELECT string_agg(rolname, ',') FROM pg_roles)",
]


def test_dangerous_statements_write_nothing(pg_app, pg_client, service_tokens):
    before = _checksums(pg_app)
    assert before["dp1.Source"][0] == 100
    for query in _DANGEROUS:
        r = _sync(pg_client, query, service_tokens["admin"])
        assert r.status_code == 400, (query, r.text[:300])
        assert b"root:" not in r.content and b"_tap_reader" not in r.content
    assert _checksums(pg_app) == before


def test_reader_role_cannot_write_with_raw_sql(pg_app):
    import psycopg

    db = pg_app.state.context.catalogs
    attempts = [
        'INSERT INTO dp1."Source" ("sourceId") VALUES (1)',
        'UPDATE dp1."Source" SET ra = 0',
        'DELETE FROM dp1."Source"',
        'DROP TABLE dp1."Source"',
        "CREATE TABLE public.evil (a int)",
        "CREATE TEMP TABLE evil (a int)",
        "CREATE SCHEMA evil",
        "SELECT * FROM pachon_tap_admin.meta",
        'TRUNCATE dp1."Source"',
    ]
    before = _checksums(pg_app)
    with psycopg.connect(db.reader_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM dp1.\"Source\"").fetchone()[0] == 100  # it can read
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
        for stmt in attempts:
            for prefix in ("", "SET default_transaction_read_only = off; ", "BEGIN READ WRITE; "):
                with pytest.raises(psycopg.Error):
                    conn.execute(prefix + stmt)
                if prefix == "BEGIN READ WRITE; ":
                    conn.execute("ROLLBACK")
                conn.execute("RESET default_transaction_read_only")
    assert _checksums(pg_app) == before

"""ADQL fuzzing: no generated query writes, escapes the read-only database, or crashes the server."""

from __future__ import annotations

import hashlib
import io

import pytest
from astropy.io.votable import parse

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_DANGEROUS = [
    "DROP TABLE dp1.Source",
    "DELETE FROM dp1.Source",
    "UPDATE dp1.Source SET ra = 0",
    "INSERT INTO dp1.Source SELECT * FROM dp1.Source",
    "CREATE TABLE x AS SELECT 1",
    "ATTACH '/tmp/x.db'",
    "COPY dp1.Source TO '/tmp/x.csv'",
    "PRAGMA database_list",
    "SET enable_external_access = true",
    "INSTALL httpfs",
    "LOAD httpfs",
    "EXPORT DATABASE '/tmp/x'",
    "CALL pragma_version()",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT read_text('/etc/passwd')",
    "SELECT * FROM glob('*')",
    "SELECT getenv('HOME')",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM pachon.served",
    "SELECT _pachon_run FROM dp1.Source",
    "DETACH catalog",
    "SELECT 1; DROP TABLE dp1.Source",
    "SELECT * FROM dp1.Source; --",
    "CHECKPOINT",
    "VACUUM",
]
_COLUMNS = ["sourceId", "ra", "dec", "psfFlux", "band", "visit", "*", "COUNT(*)", "_pachon_run", "x"]
_TABLES = [
    "dp1.Source",
    "dp1.Object",
    "TAP_SCHEMA.tables",
    "pachon.provenance",
    "ivoa.ObsCore",
    "main.pachon.meta",
    "'/etc/passwd'",
    "read_parquet('/tmp/*.parquet')",
    "(SELECT 1 AS a) AS t",
]
_WHERE = [
    "",
    " WHERE ra > 150",
    " WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 150, 2, 0.1)) = 1",
    " WHERE band = 'g' OR 1=1",
    " WHERE sourceId IN (SELECT sourceId FROM dp1.Source)",
    " WHERE read_csv('/etc/passwd') IS NULL",
    " WHERE POLYGON('ICRS', 1, 2, 3) = 1",
    " WHERE DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 1e308, -1e308)) < 1",
]

structured = st.builds(
    lambda top, col, table, where, tail: f"SELECT {top}{col} FROM {table}{where}{tail}",
    st.sampled_from(["", "TOP 3 ", "TOP -1 ", "DISTINCT "]),
    st.sampled_from(_COLUMNS),
    st.sampled_from(_TABLES),
    st.sampled_from(_WHERE),
    st.sampled_from(["", " ORDER BY 1", " OFFSET 2", "; DROP TABLE x", " UNION SELECT 1", "'", ")"]),
)
mutated = st.builds(
    lambda a, b, junk: a[: len(a) // 2] + junk + b,
    st.sampled_from(_DANGEROUS),
    st.sampled_from(_DANGEROUS),
    st.text(max_size=8),
)


def _fingerprint(app) -> str:
    path = app.state.context.catalogs.path
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def before(app) -> str:
    return _fingerprint(app)


@pytest.mark.parametrize("query", _DANGEROUS)
def test_dangerous_statements_refused(client, query):
    r = client.post("/tap/sync", data={"LANG": "ADQL", "QUERY": query})
    assert r.status_code == 400, (query, r.text)
    info = parse(io.BytesIO(r.content)).resources[0].infos[0]
    assert info.value == "ERROR"


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(query=st.one_of(structured, mutated, st.text(max_size=60)))
def test_fuzzed_queries_never_crash_or_write(client, app, before, query):
    r = client.post("/tap/sync", data={"LANG": "ADQL", "QUERY": query, "MAXREC": "5"})
    assert r.status_code in (200, 400), (query, r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/x-votable+xml")
    body = r.content
    assert b"root:" not in body
    if r.status_code == 200:  # the hidden run column never comes out (errors may echo the name)
        table = parse(io.BytesIO(body)).get_first_table().to_table()
        assert "_pachon_run" not in table.colnames
        if "sourceId" in table.colnames:  # no embargoed source ids for anonymous users
            assert all(int(v) < 9000 for v in table["sourceId"])
    assert _fingerprint(app) == before

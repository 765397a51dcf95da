"""The TAP service over real HTTP: pyvo (sync, async, upload), UWS lifecycle, STILTS taplint."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import time

import httpx
import numpy as np
import pytest

pyvo = pytest.importorskip("pyvo")


@pytest.fixture
def pyvo_session():
    """A requests session for pyvo, closed (and its sockets collected) after the test."""
    import gc
    import warnings

    import requests

    session = requests.Session()
    yield session
    session.close()
    with warnings.catch_warnings():  # pyvo's responses may hold sockets until collected
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


# pyvo leaves some response sockets to the garbage collector (its async job helpers)
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_pyvo_sync_async_upload(live_server_url, pyvo_session):
    from astropy.table import Table

    service = pyvo.dal.TAPService(f"{live_server_url}/tap", session=pyvo_session)
    rows = service.search("SELECT TOP 3 sourceId, ra FROM dp1.Source ORDER BY sourceId").to_table()
    assert list(rows["sourceId"]) == [1000, 1001, 1002]
    job = service.submit_job("SELECT COUNT(*) AS n FROM dp1.Source")
    job.run()
    job.wait(phases=["COMPLETED", "ERROR"], timeout=30)
    assert job.phase == "COMPLETED"
    assert int(job.fetch_result().to_table()["n"][0]) == 50
    job.delete()
    up = Table({"id": np.array([7, 8]), "ra": [150.0, 10.0], "dec": [2.0, -5.0]})
    q = (
        "SELECT u.id, COUNT(*) AS n FROM TAP_UPLOAD.pts AS u JOIN dp1.Source AS s ON "
        "CONTAINS(POINT('ICRS', s.ra, s.dec), CIRCLE('ICRS', u.ra, u.dec, 0.01)) = 1 GROUP BY u.id"
    )
    res = service.run_sync(q, uploads={"pts": up}).to_table()
    assert list(res["id"]) == [7] and int(res["n"][0]) == 50
    res = service.run_async(q, uploads={"pts": up}).to_table()
    assert list(res["id"]) == [7]
    r = service.run_sync("SELECT sourceId FROM dp1.Source", maxrec=5)
    assert len(r) == 5 and r.query_status == "OVERFLOW"  # pyvo reads the INFO after the table


def test_uws_lifecycle(live_server_url, service_tokens):
    h = {"Authorization": f"Bearer {service_tokens['plain']}"}
    with httpx.Client(base_url=live_server_url, headers=h, follow_redirects=False, timeout=30) as c:
        r = c.post("/tap/async", data={"LANG": "ADQL", "QUERY": "SELECT TOP 2 sourceId FROM dp1.Source"})
        assert r.status_code == 303
        url = r.headers["location"]
        assert c.get(f"{url}/phase").text == "PENDING"
        assert c.post(f"{url}/executionduration", data={"EXECUTIONDURATION": "5"}).status_code == 303
        assert c.get(f"{url}/executionduration").text == "5"
        assert c.post(f"{url}/parameters", data={"MAXREC": "1"}).status_code == 303
        assert c.post(f"{url}/phase", data={"PHASE": "RUN"}).status_code == 303
        doc = c.get(url, params={"WAIT": "10"}).text
        assert "<uws:phase>COMPLETED</uws:phase>" in doc and "/results/result" in doc
        assert b"OVERFLOW" in c.get(f"{url}/results/result").content
        assert re.search(r"<uws:ownerId>paul</uws:ownerId>", doc)
        other = {"Authorization": f"Bearer {service_tokens['embargo']}"}
        assert c.get(url, headers=other).status_code == 404  # not another user's job
        assert c.delete(url).status_code == 303 and c.get(url).status_code == 404
        r = c.post(
            "/tap/async", data={"LANG": "ADQL", "QUERY": "SELECT nothing FROM dp1.Source", "PHASE": "RUN"}
        )
        url = r.headers["location"]
        doc = c.get(url, params={"WAIT": "10"}).text
        assert "<uws:phase>ERROR</uws:phase>" in doc
        assert "QUERY_STATUS" in c.get(f"{url}/error").text
        r = c.post("/tap/async", data={"LANG": "ADQL", "QUERY": "SELECT 1 AS one"})
        url = r.headers["location"]
        c.post(f"{url}/phase", data={"PHASE": "ABORT"})
        assert c.get(f"{url}/phase").text == "ABORTED"
        assert url.rsplit("/", 1)[1] in c.get("/tap/async").text


def test_async_quota(live_server_url, app, service_tokens):
    h = {"Authorization": f"Bearer {service_tokens['admin']}"}
    quota = app.state.context.settings.async_jobs_per_user
    with httpx.Client(base_url=live_server_url, headers=h, timeout=30) as c:
        codes = [
            c.post(
                "/tap/async", data={"LANG": "ADQL", "QUERY": "SELECT 1 AS x"}, follow_redirects=False
            ).status_code
            for _ in range(quota + 1)
        ]
        assert codes[:quota] == [303] * quota and codes[-1] == 429
        for job in re.findall(r'jobref id="(\w+)"', c.get("/tap/async").text):
            c.delete(f"/tap/async/{job}")


@pytest.mark.skipif(shutil.which("stilts") is None, reason="STILTS is not installed (apt-get install stilts)")
def test_taplint_reports_no_errors(live_server_url):
    start = time.monotonic()
    out = subprocess.run(
        [
            "stilts",
            "taplint",
            f"tapurl={live_server_url}/tap",
            "report=EW",
            "maxrepeat=3",
            "stages=TMV TME TMS TMC CPV CAP AVV QGE QPO QAS UWS MDQ OBS UPL EXA",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = out.stdout + out.stderr
    errors = [line for line in text.splitlines() if line.startswith("E-")]
    warnings = [line for line in text.splitlines() if line.startswith("W-")]
    if warnings:
        logging.getLogger(__name__).warning("taplint warnings:\n%s", "\n".join(warnings))
    print(f"taplint: {len(errors)} errors, {len(warnings)} warnings in {time.monotonic() - start:.0f} s")
    assert not errors, "\n".join(errors)

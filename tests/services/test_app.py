"""The application shell: landing page, error documents, router loading, `pachon serve` wiring."""

from __future__ import annotations

import io
import logging

from astropy.io.votable import parse

from pachon.services import app as app_module


def test_landing_page_links_services(client):
    r = client.get("/")
    assert r.status_code == 200 and "/tap" in r.text and "Pachón" in r.text


def test_errors_are_votable_documents(client):
    r = client.get("/tap/tables/no.such")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/x-votable+xml")
    infos = {i.name: i for i in parse(io.BytesIO(r.content)).resources[0].infos}
    assert infos["QUERY_STATUS"].value == "ERROR" and infos["ERROR_CODE"].value == "NotFound"
    assert "no.such" in infos["QUERY_STATUS"].content


def test_missing_router_module_is_skipped(service_settings, monkeypatch, caplog):
    monkeypatch.setattr(app_module, "ROUTER_MODULES", ("pachon.services.no_such_service",))
    with caplog.at_level(logging.INFO, logger="pachon.services.app"):
        application = app_module.create_app(service_settings)
    try:
        assert "no_such_service is not available" in caplog.text
        assert application.state.services == []
    finally:
        application.state.context.close()


def test_geometry_forms(client):
    def n(where: str) -> int:
        r = client.post(
            "/tap/sync", data={"LANG": "ADQL", "QUERY": f"SELECT COUNT(*) AS n FROM dp1.Source WHERE {where}"}
        )
        assert r.status_code == 200, r.text
        return int(parse(io.BytesIO(r.content)).get_first_table().array["n"][0])

    box = "CONTAINS(POINT('ICRS', ra, dec), BOX('ICRS', 150.0, 2.0, 0.02, 0.02)) = 1"
    circle = "INTERSECTS(CIRCLE('ICRS', 150.0, 2.0, 0.02), POINT('ICRS', ra, dec)) = 1"
    adql21 = "CONTAINS(POINT(ra, dec), CIRCLE(POINT(150.0, 2.0), 0.02)) = 1"
    assert n(box) == n(circle) == n(adql21) == 50
    assert n("CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 150.0, 2.0, 0.02)) = 0") == 0
    assert n("CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 330.0, -2.0, 1)) = 1") == 0

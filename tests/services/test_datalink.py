"""DataLink: links of a dataset, the file endpoint (no path traversal), provenance, embargo, pyvo."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import numpy as np
import pytest
from images_helpers import EMBARGO_RUN, build_image_repo

from pachon.services.images.obscore import datalink_url, dataset_did


def _links(response) -> list[dict]:
    from astropy.io.votable import parse

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-votable+xml;content=datalink")
    table = parse(io.BytesIO(response.content)).get_first_table().to_table()
    return [{k: (None if row[k] is np.ma.masked else row[k]) for k in table.colnames} for row in table]


def _public_did(app) -> tuple[str, object]:
    ctx = app.state.context
    ref = ctx.repo.find_dataset("calexp", {"instrument": "Cam", "exposure": 1, "detector": 0},
                                collections="Cam/runs/public")
    return dataset_did(ref.id), ref


def _hidden_did(app) -> str:
    ctx = app.state.context
    ref = ctx.repo.find_dataset("calexp", {"instrument": "Cam", "exposure": 3, "detector": 0},
                                collections="Cam/runs/embargo")
    return dataset_did(ref.id)


def test_links_of_a_public_calexp(client, app) -> None:
    from astropy.io.votable import parse

    did, ref = _public_did(app)
    r = client.get("/datalink/links", params={"ID": did})
    rows = {row["semantics"]: row for row in _links(r)}
    assert set(rows) == {"#this", "#cutout", "#provenance"}
    rec = app.state.context.repo.file_record(ref)
    this = rows["#this"]
    assert this["access_url"] == f"http://testserver/datalink/files/{ref.id}"
    assert this["content_length"] == rec.size and this["content_type"] == "application/fits"
    assert rows["#cutout"]["service_def"] == "cutout_soda"
    assert rows["#provenance"]["access_url"].startswith("http://testserver/datalink/provenance?ID=")
    descriptor = next(res for res in parse(io.BytesIO(r.content)).resources if res.type == "meta")
    params = {p.name: p.value for p in descriptor.params}
    assert params["standardID"] == "ivo://ivoa.net/std/SODA#sync-1.0"
    assert params["accessURL"] == "http://testserver/soda/sync"
    group = {p.name: p.value for p in descriptor.groups[0].entries}
    assert group["ID"] == did and {"CIRCLE", "POLYGON", "POS"} <= set(group)
    # the file itself, byte for byte
    body = client.get(f"/datalink/files/{ref.id}")
    assert body.status_code == 200
    ctx = app.state.context
    assert body.content == Path(ctx.repo.datastore.full_path(rec.path)).read_bytes()
    # VOSI
    assert b"ivo://ivoa.net/std/DataLink#links-1.1" in client.get("/datalink/capabilities").content
    assert client.get("/datalink/links").status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/datalink/files/..%2F..%2Fpachon.yaml",
        "/datalink/files/%2e%2e%2f%2e%2e%2fregistry.sqlite3",
        "/datalink/files/..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/datalink/files/%2Fetc%2Fpasswd",
        "/datalink/files/Cam%2Fruns%2Fpublic%2Fcalexp",
        "/datalink/files/../../pachon.yaml",
    ],
)
def test_file_endpoint_has_no_path_traversal(client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert b"root:" not in r.content and b"registry" not in r.content.lower().split(b"no image")[0]
    assert not r.content.startswith(b"SQLite") and b"datastore" not in r.content


def test_embargoed_dataset_never_leaks(client, app, service_tokens) -> None:
    hidden = _hidden_did(app)
    missing = f"ivo://pachon/dataset?{uuid.uuid4()}"
    hidden_uuid, missing_uuid = hidden.rsplit("?", 1)[1], missing.rsplit("?", 1)[1]
    for token in (None, service_tokens["plain"]):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        a = client.get("/datalink/links", params={"ID": hidden}, headers=headers)
        b = client.get("/datalink/links", params={"ID": missing}, headers=headers)
        assert a.status_code == b.status_code == 200
        assert a.content.replace(hidden.encode(), b"X") == b.content.replace(missing.encode(), b"X")
        (row,) = _links(a)
        assert row["error_message"].startswith("NotFoundFault:") and row["access_url"] in (None, "")
        for path in ("/datalink/files/{}", "/datalink/provenance?ID={}"):
            fa = client.get(path.format(hidden_uuid), headers=headers)
            fb = client.get(path.format(missing_uuid), headers=headers)
            assert fa.status_code == fb.status_code == 404
            same = fb.content.replace(missing_uuid.encode(), b"X")
            assert fa.content.replace(hidden_uuid.encode(), b"X") == same
    insider = {"Authorization": f"Bearer {service_tokens['embargo']}"}
    seen = _links(client.get("/datalink/links", params={"ID": hidden}, headers=insider))
    assert {r["semantics"] for r in seen} == {"#this", "#cutout", "#provenance"}
    assert client.get(f"/datalink/files/{hidden_uuid}", headers=insider).status_code == 200


@pytest.fixture(scope="module")
def image_client(tmp_path_factory: pytest.TempPathFactory):
    """An in-process client of an app serving the image repository, embargo rule set."""
    from fastapi.testclient import TestClient

    from pachon.services.app import create_app
    from pachon.services.auth import AuthStore
    from pachon.services.settings import ServiceSettings

    root = tmp_path_factory.mktemp("dl") / "repo"
    repo, refs = build_image_repo(root)
    repo.close()
    store = AuthStore(root / "services" / "auth.sqlite3")
    store.set_rule("ImgCam/runs/embargo*", ["embargo"])
    admin = store.create_token("ada", ["exec:admin", "read:image"])
    store.close()
    app = create_app(ServiceSettings(repo=root))
    with TestClient(app) as c:
        yield c, refs, admin, root


def test_provenance_lists_only_visible_inputs(image_client) -> None:
    client, refs, admin, _ = image_client
    did = dataset_did(refs["diff1"].id)
    doc = client.get("/datalink/provenance", params={"ID": did}).json()
    assert doc["task"] == "diffim" and doc["dataset_type"] == "difference_image"
    assert [i["id"] for i in doc["inputs"]] == [dataset_did(refs["calexp1"].id)]
    full = client.get("/datalink/provenance", params={"ID": did},
                      headers={"Authorization": f"Bearer {admin}"}).json()
    assert {i["id"] for i in full["inputs"]} == {dataset_did(refs[k].id) for k in ("calexp1", "calexp3")}
    assert any(i["run"] == EMBARGO_RUN for i in full["inputs"])
    links = _links(client.get("/datalink/links", params={"ID": did}))
    progenitors = [r["access_url"] for r in links if r["semantics"] == "#progenitor"]
    assert progenitors == [datalink_url("http://testserver", refs["calexp1"].id)]
    assert progenitors[0].endswith("ID=ivo%3A%2F%2Fpachon%2Fdataset%3F" + str(refs["calexp1"].id))


def test_pyvo_datalink_client(live_server_url: str, app) -> None:
    from pyvo.dal.adhoc import DatalinkResults

    did, ref = _public_did(app)
    results = DatalinkResults.from_result_url(f"{live_server_url}/datalink/links?ID={did}")
    this = next(r for r in results if r.semantics == "#this")
    assert this.content_length == app.state.context.repo.file_record(ref).size
    soda = results.get_adhocservice_by_ivoid("ivo://ivoa.net/std/SODA#sync-1")
    assert soda.ID == "cutout_soda"
    assert this.getdataset().read()[:6] == b"SIMPLE"


def test_without_anonymous_access_every_endpoint_needs_a_token(image_client) -> None:
    from fastapi.testclient import TestClient

    from pachon.services.app import create_app
    from pachon.services.settings import ServiceSettings

    _, refs, admin, root = image_client
    did = dataset_did(refs["calexp1"].id)
    app = create_app(ServiceSettings(repo=root, anonymous_scopes={}))
    with TestClient(app) as client:
        for path, params in (("/sia/query", {}), ("/soda/sync", {"ID": did, "CIRCLE": "150 2 0.001"}),
                             ("/datalink/links", {"ID": did}), (f"/datalink/files/{refs['calexp1'].id}", {}),
                             ("/datalink/provenance", {"ID": did})):
            r = client.get(path, params=params)
            assert r.status_code == 401 and "read:image" in r.text, path
            assert r.headers["www-authenticate"].startswith("Bearer")
            ok = client.get(path, params=params, headers={"Authorization": f"Bearer {admin}"})
            assert ok.status_code == 200, (path, ok.text)
        assert client.get("/sia/capabilities").status_code == 200  # VOSI stays public

"""SIAv2: constraint evaluation on the ObsCore table, the HTTP endpoint, embargo, and pyvo."""

from __future__ import annotations

import io

import numpy as np
import pytest
from images_helpers import EMBARGO_RUN, PUBLIC_RUN, build_image_repo

from pachon.core.errors import ConfigError
from pachon.services.images.obscore import build_obscore, dataset_did
from pachon.services.images.query import select_rows
from pachon.services.images.regions import stcs_to_region


@pytest.fixture(scope="module")
def obscore(tmp_path_factory: pytest.TempPathFactory):
    repo, refs = build_image_repo(tmp_path_factory.mktemp("sia") / "repo")
    table = build_obscore(repo)
    footprints = [stcs_to_region(s) for s in table.column("s_region").to_pylist()]
    names = {dataset_did(r.id): k for k, r in refs.items()}
    yield table, footprints, names
    repo.close()


def _select(obscore, **params) -> set[str]:
    table, footprints, names = obscore
    rows = select_rows(table, footprints, {k: v if isinstance(v, list) else [v] for k, v in params.items()})
    return {names[d] for d in table.column("obs_publisher_did").to_numpy(zero_copy_only=False)[rows]}


ALL = {"calexp1", "calexp2", "calexp3", "diff1"}


def test_pos_shapes(obscore) -> None:
    # images are 40" x 30" around (150.0, 2.0) (visits 1, 3, diff) and (150.1, 2.0) (visit 2)
    assert _select(obscore, POS="CIRCLE 150.1 2.0 0.001") == {"calexp2"}
    assert _select(obscore, POS="CIRCLE 150.05 2.0 0.04") == set()  # the gap between them
    assert _select(obscore, POS="CIRCLE 150.05 2.0 0.06") == ALL
    # a circle just past the right edge of visit 2 (half width ~0.0056 deg with the rotation)
    assert _select(obscore, POS="CIRCLE 150.12 2.0 0.005") == set()
    assert _select(obscore, POS="RANGE 150.09 150.2 1.9 2.1") == {"calexp2"}
    assert _select(obscore, POS="RANGE 150.001 150.002 2.001 2.002") == {"calexp1", "calexp3", "diff1"}
    assert _select(obscore, POS="RANGE 0 360 -90 0") == set()
    assert _select(obscore, POS="POLYGON 150.09 1.99 150.11 1.99 150.11 2.01") == {"calexp2"}
    assert _select(obscore, POS=["CIRCLE 150.1 2.0 0.001", "CIRCLE 150.0 2.0 0.001"]) == ALL


def test_other_constraints(obscore) -> None:
    from astropy.time import Time

    jan2 = Time("2024-01-02T01:00:10", scale="tai").mjd
    assert _select(obscore, TIME=f"{jan2} {jan2}") == {"calexp2"}
    assert _select(obscore, TIME="60000 +Inf") == ALL
    assert _select(obscore, BAND="6e-7 6.1e-7") == {"calexp1", "calexp2", "diff1"}  # r; V has no range
    assert _select(obscore, BAND="8e-7 9e-7") == set()
    assert _select(obscore, CALIB="3") == {"diff1"}
    assert _select(obscore, CALIB=["2", "3"]) == ALL
    assert _select(obscore, COLLECTION=EMBARGO_RUN) == {"calexp3"}
    assert _select(obscore, EXPTIME="45 100") == {"calexp3"}
    assert _select(obscore, INSTRUMENT="ImgCam", DPTYPE="image", COLLECTION=PUBLIC_RUN) == ALL - {"calexp3"}
    assert _select(obscore, DPTYPE="cube") == set()
    assert _select(obscore, POL="I") == set()
    assert _select(obscore, FOV="0.01 0.02") == ALL
    did = next(d for d, n in obscore[2].items() if n == "calexp2")
    assert _select(obscore, ID=did) == {"calexp2"}
    assert _select(obscore, ID=did.rsplit("?", 1)[1]) == {"calexp2"}  # a bare UUID works too


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"POS": "CIRCLE 1 2"}, "a circle is 3"),
        ({"POS": "BOX 1 2 3 4"}, "CIRCLE, RANGE or POLYGON"),
        ({"POS": "POLYGON 0 0 1 0"}, "at least 3 vertices"),
        ({"TIME": "5 4"}, "lower bound exceeds"),
        ({"BAND": "red"}, "BAND="),
        ({"CALIB": "x"}, "CALIB="),
    ],
)
def test_bad_values_name_the_parameter(obscore, params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _select(obscore, **params)


# -- over HTTP, against the shared service repository (calexps 1, 2 public; 3 embargoed) ----------


def _table(response):
    from astropy.io.votable import parse_single_table

    assert response.status_code == 200, response.text
    return parse_single_table(io.BytesIO(response.content)).to_table()


def test_http_query_hides_embargoed_rows(client, service_tokens) -> None:
    q = {"POS": "CIRCLE 150.03 2.03 0.1"}
    anon = _table(client.get("/sia/query", params=q))
    plain = _table(client.get("/sia/query", params=q,
                              headers={"Authorization": f"Bearer {service_tokens['plain']}"}))
    embargo = _table(client.get("/sia/query", params=q,
                                headers={"Authorization": f"Bearer {service_tokens['embargo']}"}))
    assert sorted(anon["lsst_band"]) == sorted(plain["lsst_band"]) == ["g", "g"]
    assert set(anon["obs_collection"]) == {"Cam/runs/public"}
    assert sorted(embargo["lsst_band"]) == ["g", "g", "r"]
    # asking for the embargoed collection by name, or its id, gives nothing either
    hidden = embargo[embargo["obs_collection"] == "Cam/runs/embargo"][0]
    assert len(_table(client.get("/sia/query", params={"COLLECTION": "Cam/runs/embargo"}))) == 0
    assert len(_table(client.get("/sia/query", params={"ID": hidden["obs_publisher_did"]}))) == 0
    assert hidden["s_ra"] == pytest.approx(150.05, abs=1e-9)


def test_http_maxrec_overflow_and_errors(client) -> None:
    r = client.get("/sia/query", params={"MAXREC": "1"})
    assert len(_table(r)) == 1 and b'name="QUERY_STATUS" value="OVERFLOW"' in r.content
    r = client.post("/sia/query", data={"pos": "CIRCLE 150 2"})  # names are case-insensitive
    assert r.status_code == 400 and b'value="ERROR"' in r.content and b"POS=" in r.content
    r = client.get("/sia/query", params={"RESPONSEFORMAT": "text/csv"})
    assert r.status_code == 400 and b"RESPONSEFORMAT" in r.content
    r = client.get("/sia/query", params={"MAXREC": "-3"})
    assert r.status_code == 400 and b"MAXREC" in r.content


def test_http_vosi(client) -> None:
    caps = client.get("/sia/capabilities")
    assert caps.status_code == 200 and b"ivo://ivoa.net/std/SIA#query-2.0" in caps.content
    assert b"/sia/query</accessURL>" in caps.content
    avail = client.get("/sia/availability")
    assert b"<vosi:available>true</vosi:available>" in avail.content


def test_pyvo_sia2_client(live_server_url: str) -> None:
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from pyvo.dal.sia2 import SIA2Service

    service = SIA2Service(f"{live_server_url}/sia")
    results = service.search(pos=(SkyCoord(150.0, 2.0, unit="deg"), 40 * u.arcsec), calib_level=2,
                             band=(400e-9 * u.m, 560e-9 * u.m), maxrec=10)
    table = results.to_table()
    assert len(table) == 2 and set(table["lsst_band"]) == {"g"}
    assert np.all(np.abs(table["s_dec"] - 2.0) < 1e-6)
    rec = results[0]
    assert rec.access_url.startswith(live_server_url + "/datalink/links?ID=")

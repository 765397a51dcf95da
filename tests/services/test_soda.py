"""SODA cutouts: pixel boxes, WCS of the cutouts, raw files, errors, embargo, async, pyvo."""

from __future__ import annotations

import io
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from images_helpers import add_decam_raws, build_image_repo, make_exposure

from pachon.core.sphgeom import Circle, ConvexPolygon
from pachon.services.images.cutout import NoOverlapError, cutout_fits
from pachon.services.images.obscore import dataset_did


@pytest.fixture(scope="module")
def image_repo(tmp_path_factory: pytest.TempPathFactory):
    repo, refs = build_image_repo(tmp_path_factory.mktemp("soda") / "repo")
    yield repo, refs
    repo.close()


def _check_wcs(hdu, parent_wcs, x0: int, y0: int) -> None:
    """World coordinates of every cutout pixel equal the parent's within 1e-9 deg."""
    from astropy.wcs import WCS

    h, w = hdu.data.shape
    y, x = np.mgrid[0:h, 0:w]
    ra, dec = WCS(hdu.header).all_pix2world(x.ravel(), y.ravel(), 0)
    pra, pdec = parent_wcs.all_pix2world(x.ravel() + x0, y.ravel() + y0, 0)
    assert np.max(np.abs((ra - pra + 180) % 360 - 180) * np.cos(np.radians(dec))) < 1e-9
    assert np.max(np.abs(dec - pdec)) < 1e-9


def test_circle_cutout_of_exposure(image_repo) -> None:
    from astropy.io import fits

    repo, refs = image_repo
    parent = make_exposure(1)
    # a circle of 4" (20 px) around parent pixel (60, 50)
    ra, dec = parent.wcs.all_pix2world(60.0, 50.0, 0)
    data, box = cutout_fits(repo, refs["calexp1"], Circle(float(ra), float(dec), 4.0 / 3600))
    assert abs(box.x0 - 40) <= 1 and abs(box.y0 - 30) <= 1
    assert 40 <= box.width <= 42 and 40 <= box.height <= 42
    with fits.open(io.BytesIO(data)) as hdul:
        image = hdul["IMAGE"]
        y, x = np.mgrid[0 : box.height, 0 : box.width]
        np.testing.assert_array_equal(image.data, (x + box.x0) + 1000.0 * (y + box.y0))
        assert hdul["MASK"].data.shape == hdul["VARIANCE"].data.shape == image.data.shape
        _check_wcs(image, parent.wcs, box.x0, box.y0)


def test_polygon_cutout_clipped_at_the_edge(image_repo) -> None:
    repo, refs = image_repo
    w = make_exposure(2).wcs
    xs, ys = np.array([180.0, 230.0, 230.0, 180.0]), np.array([-20.0, -20.0, 10.0, 10.0])
    ra, dec = w.all_pix2world(xs, ys, 0)
    _, box = cutout_fits(repo, refs["calexp2"], ConvexPolygon.from_corners(ra, dec))
    assert (box.x0, box.y0, box.x1, box.y1) == (180, 0, 200, 11)


def test_whole_image_and_single_pixel(image_repo, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, refs = image_repo
    asked = []
    real_get = repo.get
    monkeypatch.setattr(repo, "get", lambda ref, **kw: asked.append(kw) or real_get(ref, **kw))
    _, box = cutout_fits(repo, refs["calexp1"], Circle(150.0, 2.0, 1.0))
    assert (box.x0, box.y0, box.width, box.height) == (0, 0, 200, 150)
    ra, dec = make_exposure(1).wcs.all_pix2world(17.2, 33.9, 0)
    data, box = cutout_fits(repo, refs["calexp1"], Circle(float(ra), float(dec), 0.01 / 3600))
    assert (box.x0, box.y0, box.width, box.height) == (17, 34, 1, 1)
    assert [kw["parameters"]["bbox"] for kw in asked][-1] == box  # only the box is read


def test_region_outside_the_image(image_repo) -> None:
    repo, refs = image_repo
    with pytest.raises(NoOverlapError, match="does not overlap"):
        cutout_fits(repo, refs["calexp1"], Circle(150.05, 2.0, 0.001))


def test_raw_cutout_keeps_the_tpv_wcs(tmp_path: Path, shared_data: Path) -> None:
    from astropy.io import fits
    from astropy.wcs import WCS

    repo, _ = build_image_repo(tmp_path / "repo")
    raw = add_decam_raws(repo, shared_data)[0]
    path = shared_data / "diffim" / "decam-sfft" / "input_data" / "DEC-OBS04a.mini.fits"
    with fits.open(path) as hdul:
        parent, pixels = WCS(hdul[0].header), hdul[0].data.copy()
    ra, dec = parent.all_pix2world(100.0, 150.0, 0)
    data, box = cutout_fits(repo, raw, Circle(float(ra), float(dec), 5.0 / 3600))
    assert abs(box.x0 + box.width / 2 - 100.5) <= 1 and abs(box.y0 + box.height / 2 - 150.5) <= 1
    with fits.open(io.BytesIO(data)) as hdul:
        np.testing.assert_array_equal(hdul[0].data, pixels[box.slices()])
        assert hdul[0].header["CTYPE1"] == "RA---TPV"
        _check_wcs(hdul[0], parent, box.x0, box.y0)
    repo.close()


# -- over HTTP against the shared service repository ------------------------------------------------


def _dids(client, token: str | None = None) -> dict[str, str]:
    """Publisher DIDs of the calexps visible with ``token``, by exposure (1, 2 public; 3 embargoed)."""
    from astropy.io.votable import parse_single_table

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = client.get("/sia/query", params={"POS": "CIRCLE 150.03 2.03 0.1"}, headers=headers)
    t = parse_single_table(io.BytesIO(r.content)).to_table()
    return {int(row["obs_id"].split("-")[1]): row["obs_publisher_did"] for row in t}


def _parent_wcs(app, did: str):
    ctx = app.state.context
    ref = ctx.repo.registry.get_dataset(did.rsplit("?", 1)[1])
    return ctx.repo.get(ref).wcs


def test_sync_cutout_and_errors(client, app, service_tokens) -> None:
    from astropy.io import fits

    dids = _dids(client)
    assert sorted(dids) == [1, 2]
    did = dids[1]
    wcs = _parent_wcs(app, did)
    ra, dec = wcs.all_pix2world(32.0, 32.0, 0)
    r = client.get("/soda/sync", params={"ID": did, "CIRCLE": f"{ra} {dec} {2 / 3600}"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/fits"
    with fits.open(io.BytesIO(r.content)) as hdul:
        image = hdul["IMAGE"]
        x0, y0 = -int(image.header["LTV1"]), -int(image.header["LTV2"])
        assert image.data.shape == (21, 21) and (x0, y0) == (22, 22)
        _check_wcs(image, wcs, x0, y0)
    # POS and POST work as well
    r = client.post("/soda/sync", data={"ID": did, "POS": f"CIRCLE {ra} {dec} {2 / 3600}"})
    assert r.status_code == 200 and len(r.content) > 2880
    (catalog,) = app.state.context.repo.query_datasets("source", "Cam/runs/public")
    bad = [
        ({"CIRCLE": f"{ra} {dec} 0.001"}, 400, "UsageError: give exactly one ID"),
        ({"ID": did}, 400, "UsageError: give exactly one of CIRCLE"),
        ({"ID": did, "CIRCLE": "1 2", }, 400, "UsageError: CIRCLE="),
        ({"ID": did, "CIRCLE": "1 2 0.1", "POLYGON": "1 2 3 4 5 6"}, 400, "UsageError"),
        ({"ID": did, "CIRCLE": "10 10 0.01"}, 400, "NoOverlap:"),
        ({"ID": str(uuid.uuid4()), "CIRCLE": "10 10 0.01"}, 404, "NotFoundFault:"),
        ({"ID": "../../../etc/passwd", "CIRCLE": "10 10 0.01"}, 404, "NotFoundFault:"),
        ({"ID": str(catalog.id), "CIRCLE": f"{ra} {dec} 0.001"}, 404, "NotFoundFault:"),  # not an image
    ]
    for params, status, start in bad:
        r = client.get("/soda/sync", params=params)
        assert r.status_code == status and r.text.startswith(start), (params, r.text)
    caps = client.get("/soda/capabilities").content
    assert b"ivo://ivoa.net/std/SODA#sync-1.0" in caps and b"ivo://ivoa.net/std/SODA#async-1.0" in caps


def test_embargoed_cutout_is_indistinguishable_from_missing(client, service_tokens) -> None:
    hidden = _dids(client, service_tokens["embargo"])[3]
    circle = "150.05 2.05 0.0005"
    missing = f"ivo://pachon/dataset?{uuid.uuid4()}"
    for token in (None, service_tokens["plain"], service_tokens["image_only"]):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        a = client.get("/soda/sync", params={"ID": hidden, "CIRCLE": circle}, headers=headers)
        b = client.get("/soda/sync", params={"ID": missing, "CIRCLE": circle}, headers=headers)
        assert a.status_code == b.status_code == 404
        assert a.text.replace(hidden, "X") == b.text.replace(missing, "X")
    ok = client.get("/soda/sync", params={"ID": hidden, "CIRCLE": circle},
                    headers={"Authorization": f"Bearer {service_tokens['embargo']}"})
    assert ok.status_code == 200 and ok.content[:6] == b"SIMPLE"


def test_async_job_lifecycle(client, service_tokens) -> None:
    from astropy.io import fits

    did = _dids(client)[1]
    auth = {"Authorization": f"Bearer {service_tokens['plain']}"}
    r = client.post("/soda/async", data={"ID": did, "CIRCLE": "150.0 2.0 0.0005", "PHASE": "RUN"},
                    headers=auth, follow_redirects=False)
    assert r.status_code == 303
    job = r.headers["location"].rsplit("/", 1)[1]
    deadline = time.monotonic() + 20
    while (phase := client.get(f"/soda/async/{job}/phase", headers=auth).text) not in ("COMPLETED", "ERROR"):
        assert time.monotonic() < deadline, phase
        time.sleep(0.05)
    assert phase == "COMPLETED", client.get(f"/soda/async/{job}/error", headers=auth).text
    doc = client.get(f"/soda/async/{job}", headers=auth).text
    assert "<uws:phase>COMPLETED</uws:phase>" in doc and f"/soda/async/{job}/results/cutout" in doc
    cut = client.get(f"/soda/async/{job}/results/cutout", headers=auth)
    with fits.open(io.BytesIO(cut.content)) as hdul:
        assert hdul["IMAGE"].data.shape == (20, 20)  # 9 px each way from a pixel corner + edges
    # another user cannot see the job; the owner can delete it
    assert client.get(f"/soda/async/{job}", headers={"Authorization": f"Bearer {service_tokens['admin']}"}
                      ).status_code == 404
    assert client.delete(f"/soda/async/{job}", headers=auth, follow_redirects=False).status_code == 303
    assert client.get(f"/soda/async/{job}", headers=auth).status_code == 404
    # a job for an unknown dataset ends in ERROR with a SODA message
    r = client.post("/soda/async", data={"ID": str(uuid.uuid4()), "CIRCLE": "1 1 0.1", "PHASE": "RUN"},
                    headers=auth)
    job = r.url.path.rsplit("/", 1)[1]
    while client.get(f"/soda/async/{job}/phase", headers=auth).text not in ("ERROR", "COMPLETED"):
        time.sleep(0.05)
    assert client.get(f"/soda/async/{job}/error", headers=auth).text.startswith("NotFoundFault:")
    assert client.post("/soda/async", data={"ID": did}, headers=auth).status_code == 400


def test_pyvo_cutout_through_sia_and_datalink(live_server_url: str, app) -> None:
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from astropy.io import fits
    from pyvo.dal.sia2 import SIA2Service

    results = SIA2Service(f"{live_server_url}/sia").search(
        pos=(SkyCoord(150.0, 2.0, unit="deg"), 5 * u.arcsec))
    assert len(results) == 1
    record = results[0]
    stream = record.processed(circle=(150.0 * u.deg, 2.0 * u.deg, 3 * u.arcsec))
    with fits.open(io.BytesIO(stream.read())) as hdul:
        image = hdul["IMAGE"]
        x0, y0 = -int(image.header["LTV1"]), -int(image.header["LTV2"])
        assert image.data.shape == (32, 32)  # 15 px each way from a pixel corner, plus edge pixels
        _check_wcs(image, _parent_wcs(app, record["obs_publisher_did"]), x0, y0)
    # the whole file through DataLink #this (bysemantics would fetch the IVOA vocabulary: offline)
    this = next(link for link in record.getdatalink() if link.semantics == "#this")
    with fits.open(io.BytesIO(this.getdataset().read())) as hdul:
        assert hdul["IMAGE"].data.shape == (64, 64)
    did = record["obs_publisher_did"]
    assert dataset_did(uuid.UUID(did.rsplit("?", 1)[1])) == did

"""Shared fixtures of the service tests: a small repository, the app, clients, a live server.

The repository (session scope, built once):

- instrument ``Cam`` (2 detectors, bands g and r), exposures 1..4 on day 2024-01-01;
- ``calexp`` (Exposure, 64x64 pixels, TAN WCS of 0.2"/pixel) for exposures 1 and 2 in the public
  run ``Cam/runs/public`` (centred at RA 150.00/150.01, Dec 2.0) and exposure 3 in the embargoed
  run ``Cam/runs/embargo`` (RA 150.05, Dec 2.05);
- ``source`` catalogs (ArrowTable, Rubin ``Source`` columns) of 50 rows for exposures 1 and 3
  (sourceId 1000+ public, 9000+ embargoed) and an ``object`` catalog (Rubin ``Object`` columns)
  in each run;
- access rule: ``Cam/runs/embargo*`` visible only to group ``embargo``.

Tokens (`service_tokens`): ``embargo`` (read:tap read:image, group embargo), ``plain``
(read:tap read:image), ``admin`` (exec:admin read:tap read:image), ``image_only`` (read:image).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

PUBLIC_RUN = "Cam/runs/public"
EMBARGO_RUN = "Cam/runs/embargo"
EMBARGO_GROUP = "embargo"
CENTERS = {1: (150.00, 2.00), 2: (150.01, 2.00), 3: (150.05, 2.05)}


def _wcs(ra: float, dec: float, shape: tuple[int, int]) -> Any:
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [shape[1] / 2 + 0.5, shape[0] / 2 + 0.5]
    scale = 0.2 / 3600
    w.wcs.cd = [[-scale, 0.0], [0.0, scale]]
    return w


def make_exposure(
    ra: float, dec: float, band: str, exposure_id: int, shape: tuple[int, int] = (64, 64)
) -> Any:
    """A small calexp-like Exposure with a TAN WCS centred on (ra, dec)."""
    from pachon.core.exposure import Exposure
    from pachon.core.visit_info import VisitInfo

    rng = np.random.default_rng(exposure_id)
    image = (rng.normal(100.0, 5.0, shape) + np.arange(shape[1])[None, :]).astype(np.float32)
    info = VisitInfo(
        exposure_time=30.0,
        dark_time=30.0,
        mjd_tai_mid=60310.0 + exposure_id / 24,
        physical_filter=f"{band}-1",
        band=band,
        airmass=1.1,
        boresight_ra=ra,
        boresight_dec=dec,
        rotation_angle=0.0,
        instrument="Cam",
        exposure_id=exposure_id,
        visit_id=None,
        detector=0,
        observatory=None,
    )
    return Exposure(
        image, variance=np.full(shape, 25.0, np.float32), wcs=_wcs(ra, dec, shape), visit_info=info
    )


def source_table(
    exposure_id: int, ra0: float, dec0: float, first_id: int, band: str, n: int = 50
) -> pa.Table:
    """``n`` Rubin ``Source`` rows scattered within 20" of (ra0, dec0)."""
    rng = np.random.default_rng(first_id)
    ra = ra0 + rng.uniform(-20, 20, n) / 3600
    dec = dec0 + rng.uniform(-20, 20, n) / 3600
    flux = rng.uniform(1e3, 1e5, n)
    return pa.table(
        {
            "sourceId": pa.array(np.arange(first_id, first_id + n), pa.int64()),
            "visit": pa.array(np.full(n, exposure_id), pa.int64()),
            "detector": pa.array(np.zeros(n, int), pa.int16()),
            "band": pa.array([band] * n, pa.string()),
            "ra": ra,
            "dec": dec,
            "coord_ra": ra,
            "coord_dec": dec,
            "x": rng.uniform(0, 64, n),
            "y": rng.uniform(0, 64, n),
            "psfFlux": flux,
            "psfFluxErr": np.sqrt(flux),
            "psfFlux_flag": pa.array(rng.uniform(size=n) < 0.1),
        }
    )


def object_table(ra0: float, dec0: float, first_id: int, n: int = 20) -> pa.Table:
    """``n`` Rubin ``Object`` rows around (ra0, dec0)."""
    rng = np.random.default_rng(first_id + 7)
    ra = ra0 + rng.uniform(-20, 20, n) / 3600
    dec = dec0 + rng.uniform(-20, 20, n) / 3600
    return pa.table(
        {
            "objectId": pa.array(np.arange(first_id, first_id + n), pa.int64()),
            "coord_ra": ra,
            "coord_dec": dec,
            "g_psfFlux": rng.uniform(1e3, 1e4, n),
            "r_psfFlux": rng.uniform(1e3, 1e4, n),
            "refExtendedness": rng.uniform(0, 1, n),
        }
    )


def build_service_repo(root: Path) -> Path:
    """Create the small service repository described in the module docstring in ``root``."""
    from pachon.repo import Repository

    repo = Repository.create(root)
    try:
        repo.insert_dimension_records("instrument", [{"name": "Cam", "detector_max": 2}])
        repo.insert_dimension_records(
            "physical_filter",
            [
                {"instrument": "Cam", "name": "g-1", "band": "g"},
                {"instrument": "Cam", "name": "r-1", "band": "r"},
            ],
        )
        repo.insert_dimension_records(
            "detector", [{"instrument": "Cam", "id": i, "full_name": f"D{i}"} for i in range(2)]
        )
        repo.insert_dimension_records("day_obs", [{"instrument": "Cam", "id": 20240101}])
        repo.insert_dimension_records(
            "exposure",
            [
                {
                    "instrument": "Cam",
                    "id": e,
                    "physical_filter": "g-1" if e <= 2 else "r-1",
                    "band": "g" if e <= 2 else "r",
                    "day_obs": 20240101,
                    "exposure_time": 30.0,
                    "datetime_begin": f"2024-01-01T0{e}:00:00",
                    "datetime_end": f"2024-01-01T0{e}:00:30",
                    "observation_type": "science",
                    "tracking_ra": CENTERS.get(e, (150.0, 2.0))[0],
                    "tracking_dec": CENTERS.get(e, (150.0, 2.0))[1],
                }
                for e in range(1, 5)
            ],
        )
        repo.register_dataset_type("calexp", ["instrument", "exposure", "detector"], "Exposure")
        repo.register_dataset_type("source", ["instrument", "exposure", "detector"], "ArrowTable")
        repo.register_dataset_type("object", ["instrument"], "ArrowTable")
        for e, run in ((1, PUBLIC_RUN), (2, PUBLIC_RUN), (3, EMBARGO_RUN)):
            ra, dec = CENTERS[e]
            band = "g" if e <= 2 else "r"
            did = {"instrument": "Cam", "exposure": e, "detector": 0}
            ref = repo.put(
                make_exposure(ra, dec, band, e), "calexp", did, run=run, provenance={"task": "calibrate"}
            )
            if e != 2:
                first = 9000 if run == EMBARGO_RUN else 1000
                repo.put(
                    source_table(e, ra, dec, first, band),
                    "source",
                    did,
                    run=run,
                    provenance={"task": "calibrate"},
                    inputs=[ref],
                )
        repo.put(object_table(*CENTERS[1], 500), "object", {"instrument": "Cam"}, run=PUBLIC_RUN)
        repo.put(object_table(*CENTERS[3], 9500), "object", {"instrument": "Cam"}, run=EMBARGO_RUN)
    finally:
        repo.close()
    return root


@pytest.fixture(scope="session")
def service_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the small service repository (see the module docstring)."""
    return build_service_repo(tmp_path_factory.mktemp("service") / "repo")


@pytest.fixture(scope="session")
def service_tokens(service_repo: Path) -> dict[str, str]:
    """Bearer tokens by role (``embargo``, ``plain``, ``admin``, ``image_only``)."""
    from pachon.services.auth import AuthStore

    store = AuthStore(service_repo / "services" / "auth.sqlite3")
    try:
        store.set_rule("Cam/runs/embargo*", [EMBARGO_GROUP])
        return {
            "embargo": store.create_token("eve", ["read:tap", "read:image"], groups=[EMBARGO_GROUP]),
            "plain": store.create_token("paul", ["read:tap", "read:image"]),
            "admin": store.create_token("ada", ["exec:admin", "read:tap", "read:image"]),
            "image_only": store.create_token("ian", ["read:image"]),
        }
    finally:
        store.close()


@pytest.fixture(scope="session")
def service_settings(service_repo: Path, service_tokens: dict[str, str]) -> Any:
    """`ServiceSettings` of the service repository (default anonymous access, small limits)."""
    from pachon.services.settings import ServiceSettings

    return ServiceSettings(
        repo=service_repo, max_rows=1000, default_maxrec=1000, query_timeout_s=20.0, async_jobs_per_user=20
    )


@pytest.fixture(scope="session")
def app(service_settings: Any) -> Iterator[Any]:
    """The FastAPI application serving `service_repo`."""
    from pachon.services.app import create_app

    application = create_app(service_settings)
    yield application
    application.state.context.close()


@pytest.fixture
def client(app: Any) -> Iterator[Any]:
    """An HTTP client calling `app` in process (Starlette TestClient on httpx)."""
    import warnings

    with warnings.catch_warnings():  # starlette deprecates httpx-based TestClient in favour of httpx2
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    c = TestClient(app, raise_server_exceptions=False)  # no lifespan: the app outlives the test
    yield c
    c.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_server_url(app: Any) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT``) of `app` served by uvicorn in a thread over real HTTP."""
    import uvicorn

    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)

"""A small repository of image datasets for the ObsCore/SIA/SODA/DataLink tests.

Instrument ``ImgCam`` (one detector), visits 1-3 in band r (visit 3 in an unknown band ``V``):

- ``calexp`` (Exposure, 200x150 px, TAN-SIP WCS at 0.2"/px) of visits 1 and 2 in the public run
  ``ImgCam/runs/public``; visit 1 centred on (150.0, 2.0), visit 2 on (150.1, 2.0);
- ``calexp`` of visit 3 in the embargoed run ``ImgCam/runs/embargo``, centred on (150.0, 2.0)
  like visit 1, so every sky query that finds visit 1 would find it too;
- ``difference_image`` of visit 1 (public), made from the visit-1 calexp and (as a template)
  the embargoed visit-3 calexp: its provenance must not reveal that input to outsiders.

Pixel values are ``x + 1000 y`` in parent coordinates, so a cutout's pixels say where they came
from.  `add_decam_raws` adds two real DECam raws (TPV WCS) from ``../shared/data``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pachon.repo import Repository

PUBLIC_RUN = "ImgCam/runs/public"
EMBARGO_RUN = "ImgCam/runs/embargo"
WIDTH, HEIGHT = 200, 150
SCALE_ARCSEC = 0.2
CENTERS = {1: (150.0, 2.0), 2: (150.1, 2.0), 3: (150.0, 2.0)}
# visit -> (begin, end) ISO TAI and band
TIMES = {1: ("2024-01-01T01:00:00", "2024-01-01T01:00:30"),
         2: ("2024-01-02T01:00:00", "2024-01-02T01:00:30"),
         3: ("2024-02-01T01:00:00", "2024-02-01T01:01:00")}
BANDS = {1: "r", 2: "r", 3: "V"}
SIP = {"a": np.array([[0, 0, 2e-7], [0, 1e-7, 0], [3e-7, 0, 0]]),
       "b": np.array([[0, 0, -1e-7], [0, 2e-7, 0], [1e-7, 0, 0]])}


def _records(repo: Repository) -> None:
    repo.insert_dimension_records("instrument", [{"name": "ImgCam", "detector_max": 1}])
    repo.insert_dimension_records("physical_filter", [
        {"instrument": "ImgCam", "name": "r-1", "band": "r"},
        {"instrument": "ImgCam", "name": "V-1", "band": "V"},
    ])
    repo.insert_dimension_records("detector", [{"instrument": "ImgCam", "id": 0, "full_name": "S00"}])
    repo.insert_dimension_records("day_obs", [{"instrument": "ImgCam", "id": d} for d in
                                              (20240101, 20240102, 20240201)])
    recs = []
    for v, (begin, end) in TIMES.items():
        recs.append({"instrument": "ImgCam", "id": v, "name": f"IC_{v:04d}",
                     "physical_filter": "r-1" if BANDS[v] == "r" else "V-1", "band": BANDS[v],
                     "day_obs": int(begin[:10].replace("-", "")), "exposure_time": 30.0 * (1 + (v == 3)),
                     "datetime_begin": begin, "datetime_end": end, "target_name": f"field{v}"})
    repo.insert_dimension_records("visit", recs)


def make_exposure(visit: int):
    """The visit's 200x150 exposure: pixel value x + 1000 y, TAN-SIP WCS centred on CENTERS."""
    from pachon.core.exposure import Exposure
    from pachon.core.wcs import make_tan_wcs

    ra, dec = CENTERS[visit]
    wcs = make_tan_wcs(ra, dec, SCALE_ARCSEC, rotation_deg=10.0, crpix=((WIDTH - 1) / 2, (HEIGHT - 1) / 2),
                       sip=SIP)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    image = (x + 1000.0 * y).astype(np.float32)
    return Exposure(image, variance=np.ones_like(image), wcs=wcs)


def build_image_repo(root: Path) -> tuple[Repository, dict[str, object]]:
    """Create the repository described in the module docstring; returns it and its refs by name."""
    repo = Repository.create(root)
    _records(repo)
    repo.register_dataset_type("calexp", ["instrument", "visit", "detector"], "Exposure")
    repo.register_dataset_type("difference_image", ["instrument", "visit", "detector"], "Exposure")
    refs: dict[str, object] = {}
    for v in (1, 2, 3):
        run = EMBARGO_RUN if v == 3 else PUBLIC_RUN
        refs[f"calexp{v}"] = repo.put(make_exposure(v), "calexp",
                                      {"instrument": "ImgCam", "visit": v, "detector": 0}, run=run)
    refs["diff1"] = repo.put(make_exposure(1), "difference_image",
                             {"instrument": "ImgCam", "visit": 1, "detector": 0}, run=PUBLIC_RUN,
                             provenance={"task": "diffim"}, inputs=[refs["calexp1"], refs["calexp3"]])
    return repo, refs


DECAM_FILES = ("DEC-OBS04a.mini.fits", "DEC-OBS04b.mini.fits")


def add_decam_raws(repo: Repository, shared_data: Path) -> list[object]:
    """Ingest two real DECam CCD cutouts (256x256, TPV WCS, band i) as raws."""
    folder = shared_data / "diffim" / "decam-sfft" / "input_data"
    report = repo.ingest_raws([folder / f for f in DECAM_FILES])
    assert not report.failed, report.failed
    return report.refs

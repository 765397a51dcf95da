"""Focal-plane geometry of the Rubin cameras and the radial distortion."""

from __future__ import annotations

import numpy as np
import pytest

from pachon.core.errors import ConfigError, DataIdError
from pachon.core.geom import parse_fits_section
from pachon.instruments import RadialDistortion, get_instrument


@pytest.fixture(scope="module")
def lsstcam():
    return get_instrument("LSSTCam")


def test_lsstcam_detector_ids_follow_rubin_order(lsstcam):
    dets = lsstcam.detectors
    assert len(dets) == 205
    assert [d.id for d in dets] == list(range(205))
    assert dets[0].name == "R01_S00" and dets[8].name == "R01_S22" and dets[9].name == "R02_S00"
    assert lsstcam.detector("R22_S11").id == 94  # R22 is the 11th science raft: 10*9 + 4
    assert dets[188].name == "R43_S22"
    assert [d.name for d in dets[189:193]] == ["R00_SG0", "R00_SG1", "R00_SW0", "R00_SW1"]
    assert dets[204].name == "R44_SW1"
    purposes = [d.purpose for d in dets]
    assert purposes.count("SCIENCE") == 189
    assert purposes.count("GUIDER") == 8 and purposes.count("WAVEFRONT") == 8
    assert lsstcam.detector(94) is lsstcam.detector("R22_S11")
    with pytest.raises(DataIdError, match="R99_S11"):
        lsstcam.detector("R99_S11")


def test_lsstcam_ccd_types_and_sizes(lsstcam):
    itl, e2v = lsstcam.detector("R02_S02"), lsstcam.detector("R22_S11")
    assert (itl.physical_type, itl.bbox.width, itl.bbox.height) == ("ITL", 4072, 4000)
    assert (e2v.physical_type, e2v.bbox.width, e2v.bbox.height) == ("E2V", 4096, 4004)
    n_itl = sum(d.physical_type == "ITL" and d.purpose == "SCIENCE" for d in lsstcam.detectors)
    assert n_itl == 8 * 9
    for det in (itl, e2v):
        assert len(det.amplifiers) == 16
        covered = sum(a.bbox.area for a in det.amplifiers)
        assert covered == det.bbox.area
    assert itl.amplifiers[0].raw_serial_prescan_bbox.width == 3
    assert e2v.amplifiers[0].raw_serial_prescan_bbox.width == 10
    assert itl.amplifiers[0].raw_serial_overscan_bbox.width == 64
    wf = lsstcam.detector("R00_SW0")
    assert (wf.bbox.width, wf.bbox.height, len(wf.amplifiers)) == (4072, 2000, 8)


def test_itl_amplifiers_match_real_latiss_raw(shared_data):
    """Amplifier boxes and flips agree with DATASEC/DETSEC of every segment of a real raw."""
    from astropy.io import fits

    det = get_instrument("LATISS").detector(0)
    with fits.open(shared_data / "isr/lsst-raw-layout/3018092000065-det000.fits") as hdul:
        for amp in det.amplifiers:
            hdr = hdul[amp.hdu].header
            assert hdr["EXTNAME"] == f"Segment{amp.name[1:]}"
            assert amp.raw_bbox.shape == hdul[amp.hdu].data.shape
            assert amp.raw_data_bbox == parse_fits_section(hdr["DATASEC"])[0]
            box, flip_x, flip_y = parse_fits_section(hdr["DETSEC"])
            assert (amp.bbox, amp.flip_x, amp.flip_y) == (box, flip_x, flip_y)


def test_center_of_r22_s11_is_focal_plane_origin(lsstcam):
    det = lsstcam.detector("R22_S11")
    fx, fy = det.pixel_to_focal_plane(*det.center_pixel)
    assert abs(fx) < 0.005 and abs(fy) < 0.005  # half a 10 µm pixel
    # one pixel to the right is 10 µm to the right
    fx1, _ = det.pixel_to_focal_plane(det.center_pixel[0] + 1, det.center_pixel[1])
    assert fx1 == pytest.approx(0.010, abs=1e-12)


def test_pixel_focal_plane_round_trip(lsstcam):
    rng = np.random.default_rng(1)
    for name in ("R22_S11", "R01_S00", "R43_S22", "R04_SG1", "R40_SW0"):
        det = lsstcam.detector(name)
        x = rng.uniform(0, det.bbox.width, 1000)
        y = rng.uniform(0, det.bbox.height, 1000)
        fx, fy = det.pixel_to_focal_plane(x, y)
        x2, y2 = det.focal_plane_to_pixel(fx, fy)
        assert np.max(np.abs(x2 - x)) < 1e-6 and np.max(np.abs(y2 - y)) < 1e-6
        tx, ty = lsstcam.focal_plane_to_field_angle(fx, fy)
        fx2, fy2 = lsstcam.field_angle_to_focal_plane(tx, ty)
        x3, y3 = det.focal_plane_to_pixel(fx2, fy2)
        assert np.max(np.hypot(x3 - x, y3 - y)) < 1e-6


def test_neighbouring_detectors_do_not_overlap(lsstcam):
    lo, hi = [], []
    for det in lsstcam.detectors:
        cx, cy = det.corners_mm()
        lo.append((cx.min(), cy.min()))
        hi.append((cx.max(), cy.max()))
    lo, hi = np.array(lo), np.array(hi)
    overlap_x = np.minimum(hi[:, None, 0], hi[None, :, 0]) - np.maximum(lo[:, None, 0], lo[None, :, 0])
    overlap_y = np.minimum(hi[:, None, 1], hi[None, :, 1]) - np.maximum(lo[:, None, 1], lo[None, :, 1])
    overlapping = (overlap_x > 0) & (overlap_y > 0)
    np.fill_diagonal(overlapping, False)
    assert not overlapping.any()
    # S11 and S12 of R22 are 42.25 mm apart, leaving a gap of 42.25 - 40.96 mm between e2v CCDs
    a, b = lsstcam.detector("R22_S11"), lsstcam.detector("R22_S12")
    gap = b.corners_mm()[0].min() - a.corners_mm()[0].max()
    assert gap == pytest.approx(42.25 - 40.96, abs=1e-9)


def test_field_angle_plate_scale_and_edge(lsstcam):
    tx, _ = lsstcam.focal_plane_to_field_angle(1.0, 0.0)
    assert np.degrees(tx) * 3600 == pytest.approx(20.0, rel=1e-6)  # 0.2"/10 µm pixel
    # the outer corner of the science array (R43_S22 far corner) is ~1.75 deg off axis
    cx, cy = lsstcam.detector("R43_S22").corners_mm()
    tx, ty = lsstcam.focal_plane_to_field_angle(cx, cy)
    assert np.degrees(np.hypot(tx, ty)).max() == pytest.approx(2.0, abs=0.1)
    tx, _ = lsstcam.focal_plane_to_field_angle(317.5, 0.0)  # edge of the science rafts along x
    assert np.degrees(tx) == pytest.approx(1.766, abs=0.01)


def test_radial_distortion_inverse_and_validation():
    dist = RadialDistortion(20.0, (1e-8, -2e-14))
    r = np.linspace(0, 400, 101)
    assert np.allclose(dist.angle_to_radius(dist.radius_to_angle(r)), r, atol=1e-9, rtol=0)
    theta = dist.radius_to_angle(300.0)
    assert theta == pytest.approx(300 * 20 / 206264.80624709636 * (1 + 1e-8 * 9e4 - 2e-14 * 8.1e9), rel=1e-12)
    fx, fy = dist.field_angle_to_focal_plane(0.0, 0.0)
    assert fx == 0.0 and fy == 0.0
    with pytest.raises(ConfigError, match="plate_scale"):
        RadialDistortion(0.0)


def test_comcam_and_latiss_geometry():
    comcam, latiss = get_instrument("LSSTComCam"), get_instrument("LATISS")
    assert [d.name for d in comcam.detectors] == [f"R22_S{r}{c}" for r in range(3) for c in range(3)]
    assert all(d.physical_type == "ITL" for d in comcam.detectors)
    assert comcam.plate_scale == 20.0
    center = comcam.detector("R22_S11")
    assert np.allclose(center.pixel_to_focal_plane(*center.center_pixel), 0.0)
    assert len(latiss.detectors) == 1 and latiss.detector(0).bbox.width == 4072
    tx, _ = latiss.focal_plane_to_field_angle(0.010, 0.0)
    assert np.degrees(tx) * 3600 == pytest.approx(0.1, rel=1e-9)


def test_focal_plane_to_detector(lsstcam):
    det, x, y = lsstcam.focal_plane_to_detector(np.array([0.0, 42.25, 1000.0]), np.array([0.0, 0.0, 0.0]))
    assert det.tolist() == [94, 95, -1]
    assert np.allclose(x[:2], 2047.5) and np.allclose(y[:2], 2001.5) and np.isnan(x[2])


def test_dimension_records(lsstcam):
    rec = lsstcam.dimension_records()
    (inst,) = rec["instrument"]
    assert inst["name"] == "LSSTCam" and inst["detector_max"] == 205
    assert inst["class_name"] == "pachon.instruments.lsst.LsstInstrument"
    assert len(rec["detector"]) == 205
    r22 = [d for d in rec["detector"] if d["id"] == 94][0]
    assert r22 == {"instrument": "LSSTCam", "id": 94, "full_name": "R22_S11", "raft": "R22",
                   "name_in_raft": "S11", "purpose": "SCIENCE", "physical_type": "E2V"}
    bands = {f["name"]: f["band"] for f in rec["physical_filter"]}
    assert bands["r_57"] == "r" and bands["y_10"] == "y"

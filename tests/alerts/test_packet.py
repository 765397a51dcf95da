"""Alert packets built from APDB rows: official schema validation, round trips, cutouts."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from pachon.alerts.packet import build_alert, cutout_to_fits_bytes, fits_bytes_to_cutout
from pachon.alerts.schema import latest_version, schema_path
from pachon.alerts.serialize import deserialize_alert, serialize_alert, validate_alert
from pachon.algorithms.association import summarize_dia_objects
from pachon.apdb.synthetic import dia_forced_source_table, dia_source_table
from pachon.core.errors import FormatError
from pachon.core.exposure import Exposure
from pachon.core.psf import GaussianPsf
from pachon.core.wcs import make_tan_wcs


def _history():
    times = 60000.0 + np.array([-400.0, -100.0, -30.0, -1.0, 0.0])
    sources = pa.concat_tables([
        dia_source_table([100 + i], 150.0 + 1e-5 * i, 2.0, t, visit=i, detector=3,
                         psf_flux=500.0 + 10 * i, dia_object_id=100)
        for i, t in enumerate(times)
    ])
    forced = dia_forced_source_table(np.arange(5) + 900, 100, 150.0, 2.0, times,
                                     visit=1, detector=3, psf_flux=7.0)
    return sources, forced


def _cutout(value: float) -> Exposure:
    image = np.full((31, 31), value, np.float32)
    image[15, 15] += 100.0
    wcs = make_tan_wcs(150.0, 2.0, 0.2, rotation_deg=30.0, crpix=(1000.0, 2000.0))
    return Exposure(image, variance=np.full((31, 31), 4.0, np.float32), wcs=wcs,
                    psf=GaussianPsf(1.5), xy0=(985, 1985))


def test_build_validate_round_trip() -> None:
    sources, forced = _history()
    rows = sources.to_pylist()
    obj = summarize_dia_objects(sources).to_pylist()[0]
    cutouts = {"science": _cutout(10.0), "template": _cutout(5.0), "difference": _cutout(0.0)}
    alert = build_alert(rows[-1], obj, sources, forced, None, cutouts)
    assert alert["diaSourceId"] == 104
    # history: 12 months back, the triggering source left out, oldest first
    assert [s["diaSourceId"] for s in alert["prvDiaSources"]] == [101, 102, 103]
    assert len(alert["prvDiaForcedSources"]) == 4
    assert alert["diaObject"]["nDiaSources"] == 5
    assert alert["diaObject"]["r_psfFluxMean"] == pytest.approx(520.0, rel=1e-6)
    assert alert["diaSource"]["ssObjectId"] is None
    validate_alert(alert)
    from lsst.alert.packet import Schema

    assert Schema.from_file(str(schema_path(latest_version()))).validate(alert)
    for wire in (False, True):
        packet = serialize_alert(alert, wire=wire)
        back = deserialize_alert(packet, version=None if wire else latest_version())
        assert back == alert
    image = fits_bytes_to_cutout(back["cutoutScience"])
    assert image.image[15, 15] == 110.0 and image.xy0 == (985, 1985)


def test_cutout_fits_keeps_wcs_variance_psf() -> None:
    cutout = _cutout(1.0)
    back = fits_bytes_to_cutout(cutout_to_fits_bytes(cutout))
    np.testing.assert_array_equal(back.image, cutout.image)
    np.testing.assert_array_equal(back.variance, cutout.variance)
    x = np.array([985.0, 1000.0, 1015.0])
    y = np.array([1985.0, 2000.0, 2015.0])
    np.testing.assert_allclose(back.pixel_to_sky(x, y), cutout.pixel_to_sky(x, y), atol=1e-10)
    ra, dec = back.pixel_to_sky(1000.0, 2000.0)
    assert (float(ra), float(dec)) == pytest.approx((150.0, 2.0), abs=1e-9)
    np.testing.assert_allclose(back.psf.kernel_image(0, 0),
                               GaussianPsf(1.5).kernel_image(1000, 2000), atol=1e-12)


def test_ss_source_and_missing_required_field() -> None:
    sources, _ = _history()
    row = sources.to_pylist()[-1]
    ss = {"diaSourceId": 104, "ssObjectId": 42, "eclLambda": 1.0, "eclBeta": 2.0,
          "galLon": 3.0, "galLat": 4.0, "ephRa": 150.0, "ephDec": 2.0, "ephOffset": 0.1}
    alert = build_alert(row, None, None, None, ss, None)
    validate_alert(alert)
    assert alert["ssSource"]["ssObjectId"] == 42 and alert["ssSource"]["designation"] is None
    assert alert["prvDiaSources"] == [] and alert["cutoutScience"] is None
    row = dict(row, x=None)
    with pytest.raises(FormatError, match=r"diaSource\.x"):
        build_alert(row, None, None, None, None, None)
    with pytest.raises(FormatError, match="unknown cutout kinds"):
        build_alert(sources.to_pylist()[-1], None, None, None, None, {"sci": b""})


def test_nan_becomes_null_and_older_version() -> None:
    sources, _ = _history()
    row = dict(sources.to_pylist()[-1], apFlux=float("nan"))
    alert = build_alert(row, None, None, None, None, None, version="10.0")
    assert alert["diaSource"]["apFlux"] is None
    assert "mpc_orbits" in alert
    validate_alert(alert, "10.0")
    assert deserialize_alert(serialize_alert(alert, version="10.0", wire=True)) == alert

"""ZTF-like packets mapped to Rubin's filter fields."""

from __future__ import annotations

import fastavro
import pytest

from pachon.alerts.ztf import map_ztf_alert, survey_from_schema_name, ztf_light_curve
from pachon.core.errors import FormatError


def test_ztf_mapping_numbers(shared_data):
    path = shared_data / "alerts" / "ztf" / "2019_01_10_739260766315010006.avro"
    with open(path, "rb") as handle:
        alert = next(fastavro.reader(handle))
    cand = alert["candidate"]
    mapped = map_ztf_alert(alert)
    src = mapped["diaSource"]
    assert mapped["alertId"] == src["diaSourceId"] == 739260766315010006
    assert mapped["objectId"] == "ZTF17aaacxxf"
    assert src["midpointMjdTai"] == pytest.approx(cand["jd"] - 2400000.5)
    assert src["band"] == {1: "g", 2: "r", 3: "i"}[cand["fid"]]
    # flux in nJy from the AB magnitude: 31.4 - 2.5 log10(flux) == magpsf
    assert 31.4 - 2.5 * __import__("math").log10(abs(src["psfFlux"])) == pytest.approx(cand["magpsf"])
    assert src["snr"] == pytest.approx(1.0857 / cand["sigmapsf"])
    assert (src["psfFlux"] > 0) == (cand["isdiffpos"] in ("t", "1"))
    mjd, mag, band = ztf_light_curve(alert)
    detections = [p for p in alert["prv_candidates"] if p["magpsf"] is not None]
    assert len(mjd) == len(detections) + 1 and mag[-1] == cand["magpsf"]


def test_survey_names():
    assert survey_from_schema_name("ztf.alert") == "ztf"
    assert survey_from_schema_name("lsst.v7_1.alert") == "rubin"
    assert survey_from_schema_name("winter.alert") == "winter"
    with pytest.raises(FormatError, match="DESIRT/DECam"):
        survey_from_schema_name("desirt.alert")
    with pytest.raises(FormatError, match="unknown alert schema 'foo.alert'"):
        survey_from_schema_name("foo.alert")

"""Reading the real Rubin alerts of ../shared/data/alerts/rubin into the in-memory form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pachon.alerts.packet import fits_bytes_to_cutout
from pachon.alerts.readers import conform_alert, read_alert_file, read_rubin_parquet
from pachon.alerts.serialize import validate_alert
from pachon.core.errors import FormatError
from pachon.core.sphgeom import angular_separation

WIRE = "alerts/rubin/hsc_cosmos_rubin_v7_1_wireformat.avro"
PARQUET = "alerts/rubin/lsstcam_20251231_det174_v10_0.parquet"
CUTOUTS = ("cutoutScience", "cutoutDifference", "cutoutTemplate")


def test_parquet_values_match_pyarrow(shared_data: Path) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(shared_data / PARQUET)
    alerts = list(read_rubin_parquet(shared_data / PARQUET))
    assert len(alerts) == table.num_rows == 25
    first = table.slice(0, 1).to_pylist()[0]
    assert alerts[0]["diaSourceId"] == first["diaSourceId"] == 169813006680588318
    assert alerts[0]["diaSource"]["ra"] == first["diaSource"]["ra"]
    assert alerts[0]["diaSource"]["dec"] == first["diaSource"]["dec"]
    assert alerts[0]["diaSource"]["band"] == "i"
    assert alerts[0]["diaSource"]["visit"] == 2025123100244
    assert alerts[0]["diaSource"]["detector"] == 174
    # the Parquet stores some ints as doubles: conformed back to int
    assert isinstance(alerts[0]["diaObject"]["nDiaSources"], int)
    assert alerts[0]["diaObject"]["nDiaSources"] == 1
    assert "brokerIngestMjd" not in alerts[0]  # broker column, not in the schema
    assert [len(a["prvDiaSources"] or []) for a in alerts].count(16) == 1
    for alert in alerts:
        validate_alert(alert, "10.0")


def test_read_alert_file_detects_the_format(shared_data: Path) -> None:
    (wire, version), = list(read_alert_file(shared_data / WIRE))
    assert version == "7.1"
    assert wire["diaSource"]["diaSourceId"] == 25409136044802067
    pairs = list(read_alert_file(shared_data / PARQUET))
    assert {v for _, v in pairs} == {"10.0"}
    assert pairs[0][0] == next(read_rubin_parquet(shared_data / PARQUET))


@pytest.mark.parametrize("name", [WIRE, PARQUET])
def test_real_cutouts_have_a_tan_wcs_on_the_source(shared_data: Path, name: str) -> None:
    for alert, _ in list(read_alert_file(shared_data / name))[:5]:
        source = alert["diaSource"]
        for field in CUTOUTS:
            cutout = fits_bytes_to_cutout(alert[field])
            assert list(cutout.wcs.wcs.ctype) == ["RA---TAN", "DEC--TAN"]
            assert np.isfinite(cutout.image).mean() > 0.5
            height, width = cutout.image.shape
            ra, dec = cutout.pixel_to_sky(
                cutout.xy0[0] + (width - 1) / 2, cutout.xy0[1] + (height - 1) / 2
            )
            assert angular_separation(ra, dec, source["ra"], source["dec"]) * 3600 < 1.0
            x, y = cutout.sky_to_pixel(source["ra"], source["dec"])
            assert abs(x - source["x"]) < 0.05 and abs(y - source["y"]) < 0.05


def test_not_an_alert_file(tmp_path: Path) -> None:
    path = tmp_path / "x.avro"
    path.write_bytes(b"hello world")
    with pytest.raises(FormatError, match="x.avro"):
        list(read_alert_file(path))


def test_conform_rejects_null_required_field(shared_data: Path) -> None:
    alert = next(read_rubin_parquet(shared_data / PARQUET))
    alert["diaSource"]["midpointMjdTai"] = None
    with pytest.raises(FormatError, match="midpointMjdTai"):
        conform_alert(alert, "10.0")

"""Generic YAML instrument definitions: validation, matching, exposure-id rules, registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pachon.core.errors import ConfigError, MetadataTranslationError
from pachon.instruments import GenericInstrument, Instrument, get_instrument, list_instruments
from pachon.instruments.registry import DATA_DIR

BASE = {
    "name": "TestCam",
    "match": {"INSTRUME": "testcam", "TELESCOP": "re:^Test [0-9]+m$"},
    "plate_scale": 10.0,
    "pixel_size_mm": 0.015,
    "detectors": [{"id": 0, "name": "D0", "width": 120, "height": 100,
                   "amplifiers": [
                       {"name": "L", "data_section": "[11:60,1:90]", "serial_overscan_section": "[1:10,1:90]",
                        "parallel_overscan_section": "[11:60,91:100]"},
                       {"name": "R", "data_section": "[61:110,1:90]",
                        "serial_overscan_section": "[111:120,1:90]",
                        "flip_x": True, "gain": 2.5}]}],
    "filters": {"R-Bessel": "r"},
    "header": {"time": {"key": "MJD-OBS", "format": "mjd", "scale": "utc"},
               "filter": {"key": "FILTER", "default": "R-Bessel"},
               "observation_type": {"key": "IMAGETYP",
                                    "map": {"Bias Frame": "bias", "Light Frame": "science"}},
               "ra": {"key": "OBJCTRA", "unit": "hourangle"}, "dec": {"key": "OBJCTDEC", "unit": "deg"},
               "exposure_id": {"source": "keyword", "key": "FRAMENO"}},
}
HEADER = {"INSTRUME": "TestCam", "TELESCOP": "Test 2m", "EXPTIME": 30.0, "MJD-OBS": 60000.25,
          "IMAGETYP": "Light Frame", "OBJCTRA": "12 30 00", "OBJCTDEC": "-45 30 00", "FRAMENO": 17}


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "testcam.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_generic_definition_translates(tmp_path):
    inst = Instrument.from_yaml(_write(tmp_path, BASE))
    assert isinstance(inst, GenericInstrument) and inst.can_translate(HEADER)
    assert not inst.can_translate({**HEADER, "TELESCOP": "Other 2m"})
    info = inst.translate_header(HEADER, filename="f.fits")
    assert info.day_obs == 20230224  # MJD 60000.25 = 2023-02-25T06:00 UTC; minus 12 h is the 24th
    assert info.exposure_id == info.day_obs * 100000 + 17
    assert info.observation_type == "science" and info.physical_filter == "R-Bessel" and info.band == "r"
    assert info.tracking_ra == pytest.approx(187.5) and info.tracking_dec == pytest.approx(-45.5)
    bias = inst.translate_header({**HEADER, "IMAGETYP": "Bias Frame"}, filename="f.fits")
    assert bias.observation_type == "bias" and bias.visit_id is None
    det = inst.detector(0)
    left, right = det.amplifiers
    assert det.bbox.shape == (90, 100)
    assert (left.bbox.x0, right.bbox.x0, right.flip_x, right.gain, left.gain) == (0, 50, True, 2.5, 1.0)
    assert left.raw_parallel_overscan_bbox.to_fits_section() == "[11:60,91:100]"


def test_validation_errors_name_file_and_field(tmp_path):
    bad = {**BASE, "plate_scale": -1}
    with pytest.raises(ConfigError, match=r"testcam\.yaml.*'plate_scale'"):
        GenericInstrument.from_yaml(_write(tmp_path, bad))
    bad = {**BASE, "header": {**BASE["header"], "exposure_id": {"source": "filename"}}}
    with pytest.raises(ConfigError, match=r"'header\.exposure_id'.*needs 'regex'"):
        GenericInstrument.from_yaml(_write(tmp_path, bad))
    bad = {**BASE, "colour": "blue"}
    with pytest.raises(ConfigError, match="'colour'"):
        GenericInstrument.from_yaml(_write(tmp_path, bad))
    det = dict(BASE["detectors"][0], amplifiers=[{"data_section": "[1:200,1:90]"}])
    with pytest.raises(ConfigError, match="outside raw_bbox"):
        GenericInstrument.from_yaml(_write(tmp_path, {**BASE, "detectors": [det]}))
    with pytest.raises(ConfigError, match="not valid YAML"):
        (tmp_path / "broken.yaml").write_text("name: [unclosed")
        GenericInstrument.from_yaml(tmp_path / "broken.yaml")


def test_missing_header_keys(tmp_path):
    inst = GenericInstrument.from_yaml(_write(tmp_path, BASE))
    header = dict(HEADER)
    del header["EXPTIME"]
    with pytest.raises(MetadataTranslationError, match=r"f\.fits: header key 'EXPTIME' is missing"):
        inst.translate_header(header, filename="f.fits")
    with pytest.raises(MetadataTranslationError, match="'MJD-OBS'"):
        inst.translate_header({**HEADER, "MJD-OBS": "yesterday"}, filename="f.fits")


def test_whole_frame_default_and_registry(tmp_path):
    data = {**BASE, "name": "TestCam2", "detectors": [{"width": 64, "height": 32}]}
    inst = get_instrument(_write(tmp_path, data))
    assert "TestCam2" in list_instruments() and get_instrument("TestCam2") is inst
    (amp,) = inst.detector(0).amplifiers
    assert amp.raw_data_bbox == amp.raw_bbox and amp.bbox.shape == (32, 64)
    rec = inst.dimension_records()
    assert rec["instrument"][0]["class_name"] == "pachon.instruments.generic.GenericInstrument"
    assert rec["physical_filter"] == [{"instrument": "TestCam2", "name": "R-Bessel", "band": "r"}]
    with pytest.raises(ConfigError, match="unknown instrument 'NoCam'"):
        get_instrument("NoCam")


def test_shipped_definitions_are_valid():
    names = {GenericInstrument.from_yaml(p).name for p in DATA_DIR.glob("*.yaml")}
    assert names == {"CAHA-CAFOS", "SAAO-1m", "MicroObservatory", "DECam-mini"}
    assert {"LSSTCam", "LSSTComCam", "LATISS"} | names <= set(list_instruments())

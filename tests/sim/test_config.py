from __future__ import annotations

import pytest

from pachon.core.errors import ConfigError
from pachon.sim import SimConfig, simulate_survey
from pachon.sim.survey import visits_from_table


def test_unknown_band() -> None:
    with pytest.raises(ConfigError, match=r"survey.bands has unknown band\(s\) \['q'\]"):
        SimConfig.from_dict({"survey": {"bands": ["g", "q"]}})


def test_negative_exposure_time() -> None:
    with pytest.raises(ConfigError, match="survey.exposure_time must be positive, got -5"):
        SimConfig.from_dict({"survey": {"exposure_time": -5.0}})


def test_unknown_instrument() -> None:
    with pytest.raises(ConfigError, match="unknown instrument 'NoSuchCam'"):
        SimConfig(instrument="NoSuchCam")


def test_unsupported_instrument(tmp_path) -> None:
    with pytest.raises(ConfigError, match="Rubin-style raw headers"):
        simulate_survey(SimConfig(instrument="CAHA-CAFOS"), tmp_path)


def test_unknown_keys_and_detectors() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['seeing'\] in section 'survey'"):
        SimConfig.from_dict({"survey": {"seeing": 1.0}})
    with pytest.raises(ConfigError, match=r"detectors \[7\] are not detectors of PachonTestCam"):
        SimConfig(detectors=(0, 7))


def test_visit_table_errors() -> None:
    row = {
        "mjd_start": 60400.1,
        "ra": 10.0,
        "dec": -20.0,
        "band": "r",
        "exposure_time": 30.0,
        "seeing_fwhm": 0.8,
    }
    assert visits_from_table([row, row])[1].seq_num == 101
    with pytest.raises(ConfigError, match="row 0: unknown band 'k'"):
        visits_from_table([{**row, "band": "k"}])
    with pytest.raises(ConfigError, match="row 0: exposure_time must be positive"):
        visits_from_table([{**row, "exposure_time": -1}])

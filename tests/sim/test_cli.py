from __future__ import annotations

from click.testing import CliRunner

from pachon.cli.main import cli


def test_sim_survey_command(tmp_path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        [
            "sim",
            "survey",
            "--instrument",
            "PachonTestCam",
            "--visits",
            "2",
            "--bands",
            "r",
            "--detectors",
            "2",
            "--no-calibs",
            "--seed",
            "3",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2 science raws, 0 calibration raws" in result.output
    assert len(list((out / "raw").glob("*.fits"))) == 2


def test_sim_survey_bad_config(tmp_path) -> None:
    runner = CliRunner()
    bad = runner.invoke(cli, ["sim", "survey", "--bands", "r,w", "--out", str(tmp_path)])
    assert bad.exit_code == 1 and "ConfigError" in bad.output and "unknown band" in bad.output
    bad = runner.invoke(cli, ["sim", "survey", "--exptime", "-3", "--out", str(tmp_path)])
    assert bad.exit_code == 1 and "exposure_time must be positive" in bad.output
    bad = runner.invoke(cli, ["sim", "survey", "--instrument", "Nope", "--out", str(tmp_path)])
    assert bad.exit_code == 1 and "unknown instrument 'Nope'" in bad.output

"""``pachon run`` and ``pachon pipeline show|list`` through click."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from pipe_helpers import N_DETECTORS

from pachon.cli.main import cli
from pachon.repo import Repository


def test_pipeline_show(pipeline_file: Path) -> None:
    result = CliRunner().invoke(cli, ["pipeline", "show", f"{pipeline_file}#first"])
    assert result.exit_code == 0, result.output
    assert "scale (pachon.pipe.examples.ScaleTask)" in result.output and "total (" not in result.output


def test_run_failure_exit_code_and_resume(toy_repo: Repository, tmp_path: Path) -> None:
    pipe = tmp_path / "p.yaml"
    pipe.write_text("tasks:\n  scale:\n    class: pachon.pipe.examples.ScaleTask\n"
                    "    config: {fail_on: [11.0]}\n  total: pachon.pipe.examples.SumTask\n")
    args = ["run", "-p", str(pipe), "-b", str(toy_repo.root), "-i", "raw/toy", "-o", "cli/out",
            "--where", "instrument = 'Cam' AND exposure <= 2"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "FAILED scale" in result.output and "'exposure': 1" in result.output
    assert "total" in result.output and "skipped" in result.output
    pipe.write_text("tasks:\n  scale: pachon.pipe.examples.ScaleTask\n  total: "
                    "pachon.pipe.examples.SumTask\n")
    result = CliRunner().invoke(cli, [*args, "--skip-existing", "--clobber-failures", "-j", "2"])
    assert result.exit_code == 0, result.output
    rows = [ln.split() for ln in result.output.splitlines() if ln.startswith(("scale ", "total "))]
    lines = {r[0]: r[1:] for r in rows}
    assert lines["scale"][:3] == ["1", "0", str(2 * N_DETECTORS - 1)]  # succeeded, no_work, existing
    assert lines["total"][:3] == ["1", "0", "1"]
    bad = CliRunner().invoke(cli, ["run", "-p", str(pipe), "-b", str(toy_repo.root), "-i", "raw/toy",
                                   "-o", "x", "--where", "visitt = 1"])
    assert bad.exit_code == 1 and "QueryError" in bad.output


def test_shipped_pipelines_by_name() -> None:
    """The installed pipelines are addressable by name (``-p ap#sfp``), listed, and a bad name is named."""
    runner = CliRunner()
    listed = runner.invoke(cli, ["pipeline", "list"])
    assert listed.exit_code == 0, listed.output
    names = {ln.split()[0] for ln in listed.output.splitlines() if ln and not ln.startswith(" ")}
    assert {"ap", "cp", "diffim", "isr"} <= names
    shown = runner.invoke(cli, ["pipeline", "show", "ap#sfp"])
    assert shown.exit_code == 0, shown.output
    assert "characterize (" in shown.output and "association (" not in shown.output
    bad = runner.invoke(cli, ["pipeline", "show", "nosuchpipeline"])
    assert bad.exit_code == 2 and "'nosuchpipeline' is neither a pipeline file" in bad.output

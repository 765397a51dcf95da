"""README.md's two opening commands must stay true: CI runs the test command verbatim."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ci_test_command() -> str:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    marker = lines.index("# The test command of README.md, verbatim:")
    return lines[marker + 1].strip()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = _ci_test_command()
    assert command.startswith("python3 -m venv .venv")
    assert command in readme


def test_readme_opens_with_the_demo_command():
    readme = (ROOT / "README.md").read_text()
    head = readme[:1500]
    assert "pachon demo" in head
    assert _ci_test_command() in head

"""Fixtures of the pipeline-framework tests: a small SQLite repository with toy inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipe_helpers import PIPELINE_YAML, make_toy_repo

from pachon.repo import Repository


@pytest.fixture
def toy_repo(tmp_path: Path) -> Repository:
    """A repository with 4 exposures x 3 detectors of toy_input in 'raw/toy'."""
    repo = make_toy_repo(tmp_path / "repo")
    yield repo
    repo.close()


@pytest.fixture
def pipeline_file(tmp_path: Path) -> Path:
    """The toy pipeline YAML (scale -> total, subset 'first')."""
    path = tmp_path / "toy.yaml"
    path.write_text(PIPELINE_YAML)
    return path

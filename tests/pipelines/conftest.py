"""Fixtures of the pipeline tests: the simulated night through cp, built once per session."""

from __future__ import annotations

import pytest
from night_helpers import Night, build_night


@pytest.fixture(scope="session")
def night(tmp_path_factory: pytest.TempPathFactory) -> Night:
    """Simulated night, ingested, calibrations made by the cp pipeline and certified."""
    n = build_night(tmp_path_factory.mktemp("cp_night"))
    yield n
    n.repo.close()

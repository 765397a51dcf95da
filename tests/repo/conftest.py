"""Fixtures of the repository tests: one contract suite run on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from pachon.repo import Repository


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Repository:
    """An empty repository whose registry is SQLite or a fresh PostgreSQL database."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    r = Repository.create(tmp_path / "repo", registry_url=url)
    yield r
    r.close()


def _populate(repo: Repository) -> None:
    """Instrument Cam: 2 detectors, filters g-1 (g) and r-1 (r), exposures 1..4 (1, 2 in g)."""
    repo.insert_dimension_records("instrument", [{"name": "Cam", "detector_max": 2}])
    repo.insert_dimension_records(
        "physical_filter",
        [
            {"instrument": "Cam", "name": "g-1", "band": "g"},
            {"instrument": "Cam", "name": "r-1", "band": "r"},
        ],
    )
    repo.insert_dimension_records(
        "detector", [{"instrument": "Cam", "id": i, "full_name": f"D{i}"} for i in range(2)]
    )
    repo.insert_dimension_records("day_obs", [{"instrument": "Cam", "id": 20240101}])
    repo.insert_dimension_records(
        "exposure",
        [
            {
                "instrument": "Cam",
                "id": e,
                "physical_filter": "g-1" if e <= 2 else "r-1",
                "band": "g" if e <= 2 else "r",
                "day_obs": 20240101,
                "exposure_time": 10.0 * e,
                "datetime_begin": f"2024-01-01T0{e}:00:00",
            }
            for e in range(1, 5)
        ],
    )


@pytest.fixture
def populate():
    """A function filling a repository with the small instrument Cam (see `_populate`)."""
    return _populate

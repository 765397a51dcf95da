"""Shared fixtures of the simulator tests: small, quiet configurations of PachonTestCam."""

from __future__ import annotations

import pytest

from pachon.sim.config import SimConfig


def quiet_config(**detector: object) -> SimConfig:
    """One r visit on PachonTestCam without the signatures that disturb photometry tests."""
    det = {
        "crosstalk": 0.0,
        "nonlinearity": 0.0,
        "brighter_fatter": 0.0,
        "cosmic_ray_rate": 0.0,
        "prnu": 0.0,
        "n_bad_columns": 0,
        "hot_pixel_fraction": 0.0,
        **detector,
    }
    return SimConfig.from_dict(
        {
            "survey": {"n_visits": 1, "bands": ["r"], "seeing_fwhm": [0.7, 0.7]},
            "sky": {
                "star_density": 60000.0,
                "star_mag_range": [17.0, 19.5],
                "galaxy_density": 20000.0,
                "n_transients": 0,
                "n_movers": 0,
                "satellite_probability": 0.0,
                "n_bright_stars": 0,
            },
            "optics": {"ghost_fraction": 0.0},
            "detector": det,
        }
    )


@pytest.fixture(scope="session")
def make_quiet_config():
    """The factory :func:`quiet_config` (keyword arguments override detector settings)."""
    return quiet_config

"""The DSS plate-solution model on a synthetic header (no data needed)."""

from __future__ import annotations

import numpy as np
import pytest

from pachon.algorithms.astrometry import DssHeaderError, DssPlateSolution
from pachon.algorithms.astrometry.sip import inverse_gnomonic


def _header(**extra: float) -> dict:
    h = {
        "PLTRAH": 10, "PLTRAM": 30, "PLTRAS": 0.0, "PLTDECSN": "-", "PLTDECD": 20, "PLTDECM": 15,
        "PLTDECS": 36.0, "PPO3": 100000.0, "PPO6": 100000.0, "XPIXELSZ": 20.0, "YPIXELSZ": 20.0,
        "CNPIX1": 4000, "CNPIX2": 4500, "AMDX1": 60.0, "AMDX2": 0.0, "AMDX3": 5.0,
        "AMDY1": 60.0, "AMDY2": 0.0, "AMDY3": -3.0,
    }  # fmt: skip
    h.update(extra)
    return h


def test_dss_linear_plate_geometry():
    dss = DssPlateSolution.from_header(_header())
    assert dss.ra0 == pytest.approx(157.5) and dss.dec0 == pytest.approx(-20.26)
    # the plate centre (PPO3/PPO6 microns) is plate pixel 5000 -> image pixel 5000 - CNPIX - 0.5
    ra, dec = dss.pixel_to_world(999.5, 499.5)
    ra_c, dec_c = inverse_gnomonic(5.0 / 3600, -3.0 / 3600, 157.5, -20.26)
    assert float(ra) == pytest.approx(float(ra_c), abs=1e-10)
    assert float(dec) == pytest.approx(float(dec_c), abs=1e-10)
    # one pixel is 20 microns * 60"/mm = 1.2"; x on the plate runs against the image x
    r1, d1 = dss.pixel_to_world(1000.5, 499.5)
    assert (float(r1) - float(ra)) * np.cos(np.radians(float(dec))) * 3600 == pytest.approx(-1.2, rel=1e-4)
    r2, d2 = dss.pixel_to_world(999.5, 500.5)
    assert (float(d2) - float(dec)) * 3600 == pytest.approx(1.2, rel=1e-4)


def test_dss_nonlinear_inverse_round_trip():
    dss = DssPlateSolution.from_header(_header(AMDX4=1e-3, AMDX12=2e-5, AMDY5=-1e-3, AMDY13=1e-9, AMDY2=0.3))
    x, y = np.meshgrid(np.linspace(-3000, 3000, 9), np.linspace(-2000, 4000, 9))
    bx, by = dss.world_to_pixel(*dss.pixel_to_world(x, y))
    assert np.max(np.hypot(bx - x, by - y)) < 1e-4


def test_dss_missing_keywords_named():
    h = _header()
    del h["PPO3"]
    with pytest.raises(DssHeaderError, match="PPO3"):
        DssPlateSolution.from_header(h, name="plate.fits")

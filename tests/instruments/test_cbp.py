"""Collimated Beam Projector transform."""

from __future__ import annotations

import numpy as np
import pytest

from pachon.core.errors import ConfigError
from pachon.instruments import CbpTransform, get_instrument


@pytest.fixture(scope="module")
def cbp():
    return CbpTransform(get_instrument("LSSTCam"), cbp_focal_length_mm=635.0, mask_rotation_deg=30.0,
                        camera_rotation_deg=10.0)


def test_beam_on_axis_lands_at_focal_plane_centre(cbp):
    fx, fy = cbp.spot_to_focal_plane(0.0, 0.0, d_az_deg=0.0, d_alt_deg=0.0)
    assert abs(fx) < 1e-12 and abs(fy) < 1e-12
    det, x, y = cbp.spot_to_pixel(0.0, 0.0)
    centre = get_instrument("LSSTCam").detector("R22_S11")
    assert det == centre.id
    assert (x, y) == pytest.approx(centre.center_pixel)


def test_beam_offset_angle_and_plate_scale():
    plain = CbpTransform(get_instrument("LSSTCam"))
    tx, ty = plain.beam_field_angle(0.5, 0.0)
    assert np.degrees(tx) == pytest.approx(0.5, abs=1e-12) and abs(ty) < 1e-15
    # a 1 mm spot offset is 1/635 rad off the beam axis: 324.8" -> 16.24 mm at 20"/mm (plus distortion)
    fx, _ = plain.spot_to_focal_plane(1.0, 0.0)
    assert fx == pytest.approx(206264.806 / 635.0 / 20.0, rel=2e-5)


def test_round_trips(cbp):
    rng = np.random.default_rng(3)
    d_az, d_alt = rng.uniform(-1.5, 1.5, 200), rng.uniform(-1.5, 1.5, 200)
    tx, ty = cbp.beam_field_angle(d_az, d_alt)
    a2, b2 = cbp.beam_offsets(tx, ty)
    assert np.allclose(a2, d_az, atol=1e-10) and np.allclose(b2, d_alt, atol=1e-10)
    sx, sy = rng.uniform(-5, 5, 500), rng.uniform(-5, 5, 500)
    det, x, y = cbp.spot_to_pixel(sx, sy, d_az_deg=0.7, d_alt_deg=-0.4)
    on = det >= 0
    assert on.mean() > 0.8
    for d in np.unique(det[on]):
        sel = det == d
        sx2, sy2 = cbp.pixel_to_spot(int(d), x[sel], y[sel], d_az_deg=0.7, d_alt_deg=-0.4)
        assert np.max(np.hypot(sx2 - sx[sel], sy2 - sy[sel])) < 1e-9  # mm, i.e. << a pixel


def test_invalid_focal_length():
    with pytest.raises(ConfigError, match="cbp_focal_length_mm"):
        CbpTransform(get_instrument("LATISS"), cbp_focal_length_mm=0)

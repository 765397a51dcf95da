"""DCR model: refraction numbers; a simulated extreme-colour dipole that the model predicts and removes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pachon.algorithms.diffim.dcr import (
    Observation,
    dcr_offset,
    measure_offset,
    offset_to_pixels,
    refraction,
    refractivity,
    shift_template_source,
)
from pachon.core.errors import ConfigError


def test_refraction_numbers() -> None:
    # Edlen: standard air at 589 nm has n - 1 = 2.77e-4 (15 C, 1013.25 hPa)
    assert abs(refractivity(589.0, 1013.25, 15.0) - 2.77e-4) < 0.02e-4
    # 45 degrees at sea level: ~57 arcsec, scaled by pressure at Pachon
    assert abs(refraction(589.0, Observation(math.sqrt(2), 0.0, 1013.25, 15.0)) - 57.2) < 0.5
    # zenith: no refraction, no offset
    e, n = dcr_offset("g", 3.0, Observation(1.0, 40.0), Observation(1.0, 0.0))
    assert abs(e) < 1e-12 and abs(n) < 1e-12
    # red sources refract less than the reference: shifted away from the zenith (q = 0: north)
    e, n = dcr_offset("g", 3.0, Observation(2.0, 0.0), Observation(1.0, 0.0))
    assert abs(e) < 1e-12 and -0.25 < n < -0.15
    with pytest.raises(ConfigError, match="band"):
        dcr_offset("w", 1.0, Observation(2.0, 0.0), Observation(1.0, 0.0))


def test_extreme_colour_dipole_predicted_and_removed() -> None:
    from pachon.algorithms.dia.measure import measure_dia_sources, pixel_angle_to_bearing
    from pachon.algorithms.diffim.detect import detect_dia_sources
    from pachon.algorithms.diffim.simulate import PairSpec, draw_points, make_pair
    from pachon.algorithms.diffim.subtract import subtract_images

    spec = PairSpec(shape=(256, 256), n_stars=80)
    sci, tpl, _ = make_pair(spec, seed=7)
    science_obs, template_obs = Observation(2.0, 35.0), Observation(1.05, -10.0)
    east, north = dcr_offset("g", 3.5, science_obs, template_obs)  # a very red star
    x0, y0, flux = 128.3, 121.6, 6e4
    dx, dy = offset_to_pixels(sci, x0, y0, float(east), float(north))
    assert 0.8 < math.hypot(dx, dy) < 1.6  # ~0.25 arcsec at 0.2 arcsec / pixel
    s_star, t_star = np.zeros(spec.shape), np.zeros(spec.shape)
    draw_points(s_star, np.array([x0 + dx]), np.array([y0 + dy]), np.array([flux]), spec.sigma_science)
    draw_points(t_star, np.array([x0]), np.array([y0]), np.array([flux]), spec.sigma_template)
    sci.image += s_star.astype(sci.image.dtype)
    tpl.image += t_star.astype(tpl.image.dtype)
    res = subtract_images(sci, tpl)
    det = detect_dia_sources(res.difference, res.score)
    tab = measure_dia_sources(res.difference, res.score, det, science=sci, template=tpl).to_pydict()
    i = int(np.argmin(np.hypot(np.array(tab["x"]) - x0, np.array(tab["y"]) - y0)))
    assert tab["isDipole"][i]
    bearing = float(np.degrees(np.arctan2(east, north)) % 360)
    assert abs((tab["dipoleAngle"][i] - bearing + 180) % 360 - 180) < 10
    assert abs(float(pixel_angle_to_bearing(sci, x0, y0, math.degrees(math.atan2(dy, dx)))) - bearing) < 0.5
    mx, my = measure_offset(res.difference, x0, y0, flux)
    assert math.hypot(mx - dx, my - dy) < 0.15 * math.hypot(dx, dy)
    corrected = shift_template_source(tpl, x0, y0, dx, dy, flux)  # catalogue flux and position
    res2 = subtract_images(sci, corrected)
    box = np.s_[int(y0) - 6 : int(y0) + 7, int(x0) - 6 : int(x0) + 7]
    assert np.abs(res.score[box]).max() > 20
    assert np.abs(res2.score[box]).max() < 5

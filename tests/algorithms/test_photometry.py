"""Zero point and colour term recovered from matched stars with known truth."""

from __future__ import annotations

import numpy as np
import pytest

from pachon.algorithms.photometry import PhotometryError, fit_zero_point


def test_known_zero_point_and_colour_term():
    rng = np.random.default_rng(5)
    n = 200
    ref_mag = rng.uniform(16, 20, n)
    colour = rng.uniform(-0.2, 1.5, n)
    zp, k = 28.3, 0.07  # one count is 28.3 mag; m_inst picks up k * colour
    ref = 10 ** (-0.4 * (ref_mag - 31.4))
    inst = 10 ** (-0.4 * (ref_mag - zp - k * colour))
    inst_err = 0.005 * inst
    inst = inst * (1 + rng.normal(0, 0.005, n))
    inst[:5] *= 1.3  # outliers (blends)
    fit = fit_zero_point(inst, inst_err, ref, 0.002 * ref, colour=colour, colour_term=None)
    # m_ref - m_inst = zp' + k' colour with m_inst = -2.5 log10(count)
    assert abs(fit.zero_point - zp) < 0.003, fit.zero_point
    assert abs(fit.colour_term - k) < 0.004, fit.colour_term
    assert fit.zero_point_err < 0.002
    assert fit.used[:5].sum() == 0


def test_too_few_stars_raise_with_data_id():
    with pytest.raises(PhotometryError, match="visit=3"):
        fit_zero_point([1.0], [0.1], [1.0], [0.1], data_id="visit=3")

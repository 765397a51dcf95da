"""Pipeline-level colour term: a reference system that differs from the instrument by a known colour term.

The simulated field's reference catalogue is put on a system with ``r_ref = r_inst + k (g - r_ref)``
(the colour in the reference's own system, as a real catalogue gives it); calibrate_image with
``colour_bands=("g", "r")`` must recover ``k`` and keep the zero point of a grey (colour-zero) star.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "algorithms"))
from sfp_sim import make_exposure, sim_field  # noqa: E402

from pachon.core.errors import ConfigError  # noqa: E402
from pachon.pipelines.calibrate_task import CalibrateConfig, calibrate_image  # noqa: E402
from pachon.pipelines.characterize_task import CharacterizeConfig, characterize_image  # noqa: E402


@pytest.fixture(scope="module")
def characterized():
    field = sim_field()
    exp = make_exposure(field, seed=4)
    return field, characterize_image(exp, CharacterizeConfig(read_noise=4.5, repair_cosmic_rays=False))


def _refcat_with_colour_term(refcat, k):
    """``r_ref = r + k (g - r_ref)``, i.e. ``r_ref = (r + k g) / (1 + k)``; returns it and ``g - r_ref``."""
    ref = dict(refcat)
    with np.errstate(invalid="ignore", divide="ignore"):
        g, r = -2.5 * np.log10(ref["g_flux"]), -2.5 * np.log10(ref["r_flux"])
        r_ref = (r + k * g) / (1 + k)
        scale = 10 ** (-0.4 * (r_ref - r))
    ref["r_flux"] = ref["r_flux"] * scale
    ref["r_fluxErr"] = ref["r_fluxErr"] * scale
    return ref, g - r_ref


@pytest.mark.parametrize("k", [0.0, 0.12])
def test_colour_term_recovered(characterized, k):
    field, char = characterized
    ref, colour = _refcat_with_colour_term(field.refcat, k)
    cfg = CalibrateConfig(colour_bands=("g", "r"))
    res = calibrate_image(char, ref, "r", epoch_year=field.epoch_year, config=cfg, data_id="colour test")
    used = res.zero_point.used.sum()
    print(f"k truth {k:.3f}: fitted {res.zero_point.colour_term:.4f} from {used} stars")
    assert used >= 20
    assert abs(res.zero_point.colour_term - k) < 0.015
    # the zero point (colour 0) is the instrument's: within 5 mmag of truth
    frac = field.aperture_fraction(CharacterizeConfig().apcorr_radius)
    truth_zp = 31.4 - 2.5 * np.log10(field.calib_truth / frac)
    assert abs(res.zero_point.zero_point - truth_zp) < 0.005
    # the stars span a colour range wide enough to constrain k
    assert np.ptp(colour[np.isfinite(colour)]) > 1.0


def test_unknown_colour_band_is_a_clear_error(characterized):
    field, char = characterized
    cfg = CalibrateConfig(colour_bands=("w", "r"))
    with pytest.raises(ConfigError, match="w_flux"):
        calibrate_image(char, field.refcat, "r", epoch_year=field.epoch_year, config=cfg, data_id="x")

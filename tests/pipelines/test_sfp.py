"""Single-frame processing on a simulated field, checked against the simulator's truth."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "algorithms"))
from sfp_sim import make_exposure, sim_field  # noqa: E402

from pachon.algorithms.astrometry import AstrometryError  # noqa: E402
from pachon.algorithms.psf.fit import PsfFitError  # noqa: E402
from pachon.core.sphgeom import angular_separation  # noqa: E402
from pachon.core.wcs import make_tan_wcs  # noqa: E402
from pachon.pipelines.calibrate_task import calibrate_image  # noqa: E402
from pachon.pipelines.characterize_task import CharacterizeConfig, characterize_image  # noqa: E402


def _rough_wcs(exp):
    c = exp.wcs.pixel_to_world_values(255.5, 255.5)
    # 3" and 2" off, 2% scale error, 0.7 deg rotation: what a telescope's header gives
    return make_tan_wcs(float(c[0]) + 3 / 3600, float(c[1]) - 2 / 3600, 0.2 * 1.02, 0.7, crpix=(255.5, 255.5))


@pytest.fixture(scope="module")
def processed():
    field = sim_field()
    exp = make_exposure(field, seed=1, n_cosmic_rays=30)
    exp.wcs = _rough_wcs(exp)
    char = characterize_image(exp, CharacterizeConfig(read_noise=4.5))
    res = calibrate_image(char, field.refcat, "r", epoch_year=field.epoch_year, data_id="visit=0 detector=0")
    t = res.sources
    tr = field.truth
    ra, dec = t.column("coord_ra").to_numpy(), t.column("coord_dec").to_numpy()
    sep = angular_separation(ra[:, None], dec[:, None], tr["ra"][None], tr["dec"][None]) * 3600
    j = np.argmin(sep, axis=1)
    d = sep[np.arange(len(j)), j]
    txy = np.column_stack([tr["x"], tr["y"]])
    nn = np.hypot(*(txy[:, None] - txy[None]).transpose(2, 0, 1))
    np.fill_diagonal(nn, np.inf)
    isolated = (
        (d < 0.3)
        & (tr["kind"][j] == 0)
        & (nn.min(axis=1)[j] > 20)
        & (t.column("deblend_nChild").to_numpy() == 0)
        & (t.column("parentSourceId").to_numpy() == 0)
        & ~t.column("pixelFlags_edge").to_numpy()
    )
    return field, char, res, j, d, isolated


def _isolated_pulls(field, char):
    """PSF-flux pulls of stars whose neighbours add < 0.1σ of PSF-weighted light (noiseless truth)."""
    m, det, tr = char.measurements, char.detections, field.truth
    dist = np.hypot(m["x"][:, None] - tr["x"][None], m["y"][:, None] - tr["y"][None])
    j = np.argmin(dist, axis=1)
    sel = (
        (dist[np.arange(len(j)), j] < 0.5)
        & (tr["kind"][j] == 0)
        & (det.n_child == 0)
        & (det.parent < 0)
        & ~m["pixelFlags_edge"]
    )
    f, e, _ = char.apcorr.apply(m["x"], m["y"], m["psf_instFlux"], m["psf_instFluxErr"])
    k = np.flatnonzero(sel & (f / e > 10))
    # PSF fluxes are normalized to the calibration aperture: the truth is the light the
    # simulator drew inside that circle
    truth = tr["flux"][j[k]] * field.aperture_fraction(CharacterizeConfig().apcorr_radius)
    clean = np.abs(field.neighbour_flux(j[k])) < 0.1 * e[k]
    return ((f[k] - truth) / e[k])[clean]


def test_astrometric_scatter_vs_truth(processed):
    field, char, res, j, d, iso = processed
    t = res.sources
    snr = t.column("psfFlux").to_numpy() / t.column("psfFluxErr").to_numpy()
    bright = iso & (snr > 50)
    assert bright.sum() >= 10
    rms_mas = float(np.sqrt(np.mean(d[bright] ** 2))) * 1000
    print(f"astrometric rms of {int(bright.sum())} isolated bright stars vs truth: {rms_mas:.2f} mas")
    assert rms_mas <= 10.0, rms_mas
    assert res.astrometry.n_matches >= 20
    assert "SIP" in res.exposure.wcs.wcs.ctype[0]


def test_zero_point_vs_truth(processed):
    field, char, res, *_ = processed
    # instrumental fluxes are normalized to the calibration aperture (apcorr_radius)
    frac = field.aperture_fraction(CharacterizeConfig().apcorr_radius)
    truth_zp = 31.4 - 2.5 * np.log10(field.calib_truth / frac)
    dzp = res.zero_point.zero_point - truth_zp
    err = res.zero_point.zero_point_err
    print(f"zero point - truth: {dzp * 1000:.2f} mmag (stat. error {err * 1000:.2f})")
    assert abs(dzp) <= 0.005


def test_psf_flux_pulls_isolated_stars():
    # one field, twelve noise realizations: ~1200 stars, so the mean pull is known to ±0.03
    field = sim_field()
    pulls = []
    for seed in range(11, 23):
        exp = make_exposure(field, seed=seed)
        char = characterize_image(exp, CharacterizeConfig(read_noise=4.5, repair_cosmic_rays=False))
        pulls.append(_isolated_pulls(field, char))
    pull = np.concatenate(pulls)
    mean, width = float(pull.mean()), float(1.4826 * np.median(np.abs(pull - np.median(pull))))
    print(f"PSF-flux pulls of {len(pull)} stars: mean {mean:.3f} std {pull.std():.3f} robust {width:.3f}")
    assert len(pull) >= 800
    assert abs(mean) < 0.05, mean
    assert 0.9 < pull.std() < 1.1, pull.std()


def test_psf_model_residual_ellipticity(processed):
    _, char, res, *_ = processed
    m = char.measurements
    used = char.psf_used | char.psf_reserved
    e1 = (m["ixx"] - m["iyy"]) / (m["ixx"] + m["iyy"])
    e1p = (m["ixxPSF"] - m["iyyPSF"]) / (m["ixxPSF"] + m["iyyPSF"])
    e2 = 2 * m["ixy"] / (m["ixx"] + m["iyy"])
    e2p = 2 * m["ixyPSF"] / (m["ixxPSF"] + m["iyyPSF"])
    de1, de2 = (e1 - e1p)[used], (e2 - e2p)[used]
    n = used.sum()
    assert n >= 20
    # mean residual within 3 standard errors of zero (noise only, no model bias)
    for de in (de1, de2):
        assert abs(de.mean()) < 3 * de.std() / np.sqrt(n) + 1e-3


def test_cosmic_rays_masked(processed):
    _, char, *_ = processed
    assert 25 <= char.n_cosmic_rays <= 40
    assert char.exposure.mask.get("CR").sum() >= 30


def test_detection_completeness(processed):
    field, char, res, j, d, iso = processed
    tr = field.truth
    t = res.sources
    ra, dec = t.column("coord_ra").to_numpy(), t.column("coord_dec").to_numpy()
    stars = (tr["kind"] == 0) & tr["on_detector"]
    sep = angular_separation(tr["ra"][stars][:, None], tr["dec"][stars][:, None], ra[None], dec[None])
    found = (sep * 3600 < 0.4).any(axis=1)
    mags = tr["mag"][stars]
    curve = {
        lo: float(found[(mags >= lo) & (mags < lo + 1)].mean())
        for lo in range(17, 23)
        if ((mags >= lo) & (mags < lo + 1)).sum()
    }
    print("completeness by r mag:", curve)
    assert curve[17] == 1.0 and min(curve[18], curve[19], curve[20]) >= 0.85
    assert curve[22] < curve[19]


def test_blank_image_raises_psf_error():
    field = sim_field()
    exp = make_exposure(field, seed=2)
    exp.image[:] = np.random.default_rng(0).normal(field.sky, np.sqrt(field.sky), exp.image.shape)
    with pytest.raises(PsfFitError, match="star"):
        characterize_image(exp, CharacterizeConfig(repair_cosmic_rays=False))


def test_wrong_wcs_and_blank_refcat_raise_astrometry_error(processed):
    field, char, *_ = processed
    wrong = make_tan_wcs(10.0, 10.0, 0.2, 0.0, crpix=(255.5, 255.5))
    char.exposure.wcs = wrong
    with pytest.raises(AstrometryError, match="visit=0 detector=0"):
        calibrate_image(char, field.refcat, "r", epoch_year=field.epoch_year, data_id="visit=0 detector=0")
    blank = {k: v[:0] for k, v in field.refcat.items()}
    with pytest.raises(AstrometryError, match="blank"):
        calibrate_image(char, blank, "r", epoch_year=field.epoch_year, data_id="visit=0 detector=0")

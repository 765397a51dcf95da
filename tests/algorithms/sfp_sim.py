"""A small simulated field for the single-frame-processing tests: post-ISR-like exposures with truth.

The simulator renders expected electrons (sources only); we add a flat sky, Gaussian noise of
the right variance and optionally cosmic rays, and attach the raw header's approximate TAN WCS
(the simulated optics add a radial distortion that the WCS fit must absorb).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from pachon.core.exposure import Exposure
from pachon.core.visit_info import VisitInfo

__all__ = ["SimField", "sim_field", "make_exposure"]

READ_NOISE = 4.5


@dataclass
class SimField:
    """Noiseless pieces of one simulated detector-visit and its truth."""

    electrons: np.ndarray
    sky: float
    truth: dict[str, np.ndarray]
    wcs: Any
    refcat: dict[str, np.ndarray]
    calib_truth: float
    band: str
    visit: Any
    psf_sigma: float
    epoch_year: float
    drawn_fraction: float
    psf_stamp: np.ndarray
    stamps: Any

    def neighbour_flux(self, rows: np.ndarray) -> np.ndarray:
        """PSF-weighted light of everything else (electrons, noiseless) under truth sources ``rows``.

        ``sum(S (E - f S)) / sum(S^2)`` with ``S`` the star's drawn unit stamp and ``E`` the
        noiseless image: what neighbours add to a perfect PSF flux of that star.
        """
        rows = np.asarray(rows, int)
        out = np.full(len(rows), np.inf)
        h = self.psf_stamp.shape[0] // 2
        ny, nx = self.electrons.shape
        for k, i in enumerate(rows):  # test helper: one stamp per star is fine here
            x, y = float(self.truth["x"][i]), float(self.truth["y"][i])
            ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
            if ix - h < 0 or iy - h < 0 or ix + h >= nx or iy + h >= ny:
                continue
            s = self.stamps.stamp(x - ix, y - iy)
            e = self.electrons[iy - h : iy + h + 1, ix - h : ix + h + 1]
            out[k] = float((s * (e - self.truth["flux"][i] * s)).sum() / (s * s).sum())
        return out

    def aperture_fraction(self, radius: float) -> float:
        """Fraction of a star's total flux that the simulator drew inside a circle of ``radius`` px."""
        import sep

        h = self.psf_stamp.shape[0] // 2
        s = np.ascontiguousarray(self.psf_stamp, dtype=np.float64)
        return float(sep.sum_circle(s, np.array([float(h)]), np.array([float(h)]), radius, subpix=0)[0][0])


@functools.lru_cache(maxsize=4)
def sim_field(seed: int = 3, star_density: float = 300000.0, galaxy_density: float = 5000.0) -> SimField:
    """Render one PachonTestCam detector of one r-band visit (cached per arguments)."""
    from pachon.sim import Simulator
    from pachon.sim.astrometry import detector_tan_wcs, pixel_scale_arcsec
    from pachon.sim.config import SimConfig
    from pachon.sim.refcat import make_refcat_columns
    from pachon.sim.scene import sky_electrons

    cfg = SimConfig.from_dict(
        {
            "detectors": [0],
            "survey": {"n_visits": 1, "bands": ["r"], "seeing_fwhm": [0.7, 0.7]},
            "sky": {
                "star_density": star_density,
                "star_mag_range": [16.5, 22.5],
                "galaxy_density": galaxy_density,
                "n_transients": 0,
                "n_movers": 0,
                "satellite_probability": 0.0,
                "n_bright_stars": 0,
            },
            "optics": {"ghost_fraction": 0.0},
            "detector": {"brighter_fatter": 0.0, "cosmic_ray_rate": 0.0},
        }
    )
    sim = Simulator(cfg, seed=seed)
    visit, det = sim.visits[0], sim.detectors[0]
    electrons, truth, _ = sim.render(visit, det)
    pix = pixel_scale_arcsec(sim.instrument, det)
    sky = sky_electrons(visit, cfg.optics, pix)
    wcs = detector_tan_wcs(sim.instrument, det, visit.ra, visit.dec, visit.rotation_deg)
    refcat = make_refcat_columns(sim.catalog, sim._rng(7), mag_limit=cfg.refcat_mag_limit)
    ext = cfg.optics.extinction["r"] * (visit.airmass - 1.0)
    calib = 10 ** (0.4 * (31.4 - cfg.optics.zeropoints["r"] + ext)) / visit.exposure_time
    sigma = sim.visit_psf(visit).fwhm_estimate() / pix / 2.3548
    # point sources are drawn in finite stamps: the image holds this fraction of each star's flux
    from pachon.sim.render import PsfField

    stamps = PsfField(sim.visit_psf(visit), det, pix).stamps(det.bbox.width / 2, det.bbox.height / 2)
    unit = stamps.stamp(0.0, 0.0)
    drawn = float(unit.sum())
    epoch = 2000.0 + (visit.mjd_mid - 51544.5) / 365.25
    return SimField(electrons, sky, truth, wcs, refcat, calib, "r", visit, sigma, epoch, drawn, unit, stamps)


def make_exposure(field: SimField, *, seed: int = 0, n_cosmic_rays: int = 0) -> Exposure:
    """A post-ISR-like exposure (electrons, sky not subtracted) with Gaussian noise."""
    rng = np.random.default_rng(seed)
    expected = field.electrons + field.sky
    variance = expected + READ_NOISE**2
    image = expected + rng.standard_normal(expected.shape) * np.sqrt(variance)
    if n_cosmic_rays:
        ny, nx = image.shape
        ys, xs = rng.integers(5, ny - 5, n_cosmic_rays), rng.integers(5, nx - 5, n_cosmic_rays)
        for k in range(n_cosmic_rays):  # short tracks of 1-3 pixels
            length = int(rng.integers(1, 4))
            image[ys[k], xs[k] : xs[k] + length] += rng.uniform(2000, 20000)
    info = VisitInfo(
        exposure_time=float(field.visit.exposure_time),
        band=field.band,
        boresight_ra=float(field.visit.ra),
        boresight_dec=float(field.visit.dec),
        mjd_tai_mid=float(field.visit.mjd_mid),
        visit_id=int(field.visit.index),
        detector=0,
    )
    return Exposure(
        image.astype(np.float32),
        variance=variance.astype(np.float32),
        wcs=field.wcs.deepcopy(),
        visit_info=info,
    )

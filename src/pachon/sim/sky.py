"""The simulated sky: stars, galaxies, variables, transients and solar-system movers.

Distributions are simple but realistic: power-law number counts, main-sequence-like colours,
proper motions of a few mas/yr and sub-mas parallaxes (positions at the Gaia epoch 2016.0),
Sérsic bulge + exponential disk galaxies, RR Lyrae-like sawtooth light curves, supernova-like
rise and decline, stellar flares, and asteroids moving from a fraction of a degree (main belt)
to many degrees per day (near-Earth objects, streaked within one exposure).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from pachon.sim.astrometry import field_angle_to_sky
from pachon.sim.config import SkyConfig

__all__ = ["SkyCatalog", "make_sky", "EPOCH_MJD", "KIND_CODES", "rr_lyrae_shape", "solar_position"]

log = logging.getLogger(__name__)

#: Reference epoch of catalogue positions (Gaia DR3, J2016.0) as an MJD (TAI).
EPOCH_MJD = 57388.0
KIND_CODES = {"star": 1, "galaxy": 2, "transient": 3, "mover": 4}
_ID_STRIDE = 1_000_000_000
_MAS = 1.0 / 3.6e6


def rr_lyrae_shape(phase: np.ndarray) -> np.ndarray:
    """Sawtooth light-curve shape in magnitudes: a fast rise (15 % of the period) to −0.5, then a
    linear decline to +0.5; zero mean over a period."""
    p = np.mod(phase, 1.0)
    return np.where(p < 0.15, 0.5 - p / 0.15, -0.5 + (p - 0.15) / 0.85)


def solar_position(mjd: np.ndarray | float) -> np.ndarray:
    """Geocentric equatorial unit vector towards the Sun (low-precision, ~0.01 deg)."""
    d = np.asarray(mjd, float) - 51544.5
    g = np.radians(357.529 + 0.98560028 * d)
    lam = np.radians(280.459 + 0.98564736 * d + 1.915 * np.sin(g) + 0.020 * np.sin(2 * g))
    eps = np.radians(23.439)
    return np.stack([np.cos(lam), np.sin(lam) * np.cos(eps), np.sin(lam) * np.sin(eps)], axis=-1)


def _colours(ref_mag: np.ndarray, gr: np.ndarray, *, galaxy: bool) -> dict[str, np.ndarray]:
    """Magnitudes in every band from an r magnitude and a g−r colour."""
    ri = (0.35 if galaxy else 0.40) * gr + (0.1 if galaxy else -0.02)
    return {
        "u": ref_mag + gr + (1.0 + 0.8 * gr if not galaxy else 1.2),
        "g": ref_mag + gr,
        "r": ref_mag,
        "i": ref_mag - ri,
        "z": ref_mag - ri - 0.5 * ri - 0.02,
        "y": ref_mag - ri - 0.8 * ri - 0.04,
    }


def _power_law_mags(rng: np.random.Generator, n: int, lo: float, hi: float, slope: float) -> np.ndarray:
    u = rng.uniform(0.0, 1.0, n)
    a, b = 10 ** (slope * lo), 10 ** (slope * hi)
    return np.log10(a + u * (b - a)) / slope


@dataclass
class SkyCatalog:
    """Column arrays of every simulated source population (``id`` unique across them)."""

    stars: dict[str, np.ndarray]
    galaxies: dict[str, np.ndarray]
    transients: dict[str, np.ndarray]
    movers: dict[str, np.ndarray]

    def star_positions(self, mjd: float) -> tuple[np.ndarray, np.ndarray]:
        """Apparent star positions (deg) at ``mjd``: proper motion and parallax applied."""
        s = self.stars
        years = (mjd - EPOCH_MJD) / 365.25
        ra0, dec0 = np.radians(s["ra"]), np.radians(s["dec"])
        sun = solar_position(mjd)
        east = sun[1] * np.cos(ra0) - sun[0] * np.sin(ra0)
        north = (
            -sun[0] * np.sin(dec0) * np.cos(ra0) - sun[1] * np.sin(dec0) * np.sin(ra0) + sun[2] * np.cos(dec0)
        )
        d_east = (s["pm_ra"] * years - s["parallax"] * east) * _MAS
        d_north = (s["pm_dec"] * years - s["parallax"] * north) * _MAS
        dec = s["dec"] + d_north
        return s["ra"] + d_east / np.cos(np.radians(dec)), dec

    def star_mags(self, band: str, mjd: float) -> np.ndarray:
        """Star magnitudes in ``band`` at ``mjd`` (variables follow their light curves)."""
        s = self.stars
        phase = (mjd - EPOCH_MJD) / np.where(s["period"] > 0, s["period"], 1.0) + s["phase0"]
        return s[f"mag_{band}"] + np.where(s["period"] > 0, s["amplitude"] * rr_lyrae_shape(phase), 0.0)

    def transient_mags(self, band: str, mjd: float) -> np.ndarray:
        """Transient magnitudes at ``mjd`` (``inf`` when invisible)."""
        t = self.transients
        dt = mjd - t["t0"]
        peak = t[f"mag_{band}"]
        is_sn = t["kind"] == "sn"
        with np.errstate(divide="ignore", invalid="ignore"):
            rise = np.clip((dt + t["rise"]) / t["rise"], 0.0, None) ** 2
            sn = np.where(dt < 0, peak - 2.5 * np.log10(rise), peak + t["decline"] * dt)
            flare_flux = 10 ** (-0.4 * t["quiescent"]) + np.where(
                dt >= 0, 10 ** (-0.4 * peak) * np.exp(-dt * 1440.0 / t["tau_min"]), 0.0
            )
            flare = -2.5 * np.log10(flare_flux)
        out = np.where(is_sn, sn, flare)
        return np.where(np.isfinite(out), out, np.inf)

    def mover_positions(self, mjd: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mover positions (deg) at ``mjd`` (scalar, or an array broadcasting against the movers)."""
        m = self.movers
        dt = np.asarray(mjd, float) - m["mjd0"]
        dec = m["dec0"] + m["rate_dec"] * dt
        return m["ra0"] + m["rate_ra"] * dt / np.cos(np.radians(dec)), dec

    def ids(self) -> np.ndarray:
        """All source ids."""
        return np.concatenate([p["id"] for p in (self.stars, self.galaxies, self.transients, self.movers)])


def _random_positions(
    rng: np.random.Generator, n: int, ra: float, dec: float, radius_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    r = math.radians(radius_deg) * np.sqrt(rng.uniform(0.0, 1.0, n))
    phi = rng.uniform(0.0, 2 * np.pi, n)
    return field_angle_to_sky(r * np.cos(phi), r * np.sin(phi), ra, dec, 0.0)


def _ids(kind: str, n: int) -> np.ndarray:
    return KIND_CODES[kind] * _ID_STRIDE + np.arange(1, n + 1, dtype=np.int64)


def make_sky(
    cfg: SkyConfig,
    rng: np.random.Generator,
    *,
    ra: float,
    dec: float,
    radius_deg: float,
    mjd_range: tuple[float, float],
    bright_centres: list[tuple[float, float]] | None = None,
    mover_times: list[float] | None = None,
) -> SkyCatalog:
    """Draw the sources inside a cap of ``radius_deg`` around ``(ra, dec)``.

    Parameters
    ----------
    cfg
        Populations.
    rng
        Random generator (the only source of randomness: the sky is reproducible).
    ra, dec, radius_deg
        The cap to fill (deg).
    mjd_range
        First and last MJD of the survey: transients peak and movers pass within it.
    bright_centres
        Points (field centres) near which ``cfg.n_bright_stars`` bright stars are placed each.
    mover_times
        Visit mid-times: each mover passes its start position at one of them (so it is seen).
    """
    cfg.validate()
    area = 2 * np.pi * (1 - math.cos(math.radians(radius_deg))) * (180 / np.pi) ** 2
    n_star = int(rng.poisson(cfg.star_density * area))
    sra, sdec = _random_positions(rng, n_star, ra, dec, radius_deg)
    smag = _power_law_mags(rng, n_star, *cfg.star_mag_range, slope=0.3)
    for cra, cdec in bright_centres or []:
        bra, bdec = _random_positions(rng, cfg.n_bright_stars, cra, cdec, 0.004)
        sra, sdec = np.concatenate([sra, bra]), np.concatenate([sdec, bdec])
        smag = np.concatenate([smag, cfg.bright_star_mag + rng.uniform(0, 0.5, cfg.n_bright_stars)])
    n_star = len(sra)
    gr = rng.uniform(0.2, 1.4, n_star)
    variable = rng.uniform(0, 1, n_star) < cfg.variable_fraction
    stars = {
        "id": _ids("star", n_star),
        "ra": sra,
        "dec": sdec,
        "g_r": gr,
        "pm_ra": rng.normal(0.0, 5.0, n_star),
        "pm_dec": rng.normal(-2.0, 5.0, n_star),
        "parallax": rng.lognormal(np.log(0.4), 0.6, n_star),
        "period": np.where(variable, rng.uniform(0.4, 0.7, n_star), 0.0),
        "amplitude": np.where(variable, rng.uniform(0.3, 1.0, n_star), 0.0),
        "phase0": rng.uniform(0, 1, n_star),
    }
    if cfg.variable_mag_range is not None and variable.any():
        # variables redrawn uniform in this range (a separate stream: the other draws are unchanged)
        vrng = np.random.default_rng(rng.integers(2**63))
        smag = np.where(variable, vrng.uniform(*cfg.variable_mag_range, n_star), smag)
    stars.update({f"mag_{b}": m for b, m in _colours(smag, gr, galaxy=False).items()})

    n_gal = int(rng.poisson(cfg.galaxy_density * area))
    gra, gdec = _random_positions(rng, n_gal, ra, dec, radius_deg)
    gmag = _power_law_mags(rng, n_gal, *cfg.galaxy_mag_range, slope=0.35)
    ggr = rng.uniform(0.3, 1.1, n_gal)
    size = np.clip(rng.lognormal(np.log(0.6), 0.4, n_gal) * 10 ** (-0.1 * (gmag - 22)), 0.15, 4.0)
    ell = np.clip(np.abs(rng.normal(0, 0.25, n_gal)), 0, 0.7)
    beta = rng.uniform(0, np.pi, n_gal)
    galaxies = {
        "id": _ids("galaxy", n_gal),
        "ra": gra,
        "dec": gdec,
        "g_r": ggr,
        "bulge_frac": rng.uniform(0.0, 0.6, n_gal),
        "disk_hlr": size,
        "bulge_hlr": size * rng.uniform(0.3, 0.6, n_gal),
        "bulge_n": np.full(n_gal, 4.0),
        "e1": ell * np.cos(2 * beta),
        "e2": ell * np.sin(2 * beta),
    }
    galaxies.update({f"mag_{b}": m for b, m in _colours(gmag, ggr, galaxy=True).items()})

    n_tr = cfg.n_transients
    lo, hi = mjd_range
    tra, tdec = _random_positions(rng, n_tr, ra, dec, radius_deg * 0.7)
    kind = np.where(np.arange(n_tr) % 2 == 0, "sn", "flare")
    tpeak = np.where(kind == "sn", rng.uniform(18.5, 20.5, n_tr), rng.uniform(17.5, 19.5, n_tr))
    tgr = np.where(kind == "sn", rng.uniform(-0.1, 0.3, n_tr), rng.uniform(-0.5, 0.0, n_tr))
    transients = {
        "id": _ids("transient", n_tr),
        "ra": tra,
        "dec": tdec,
        "kind": kind.astype(object),
        "t0": np.where(kind == "sn", rng.uniform(lo - 5, hi + 1, n_tr), rng.uniform(lo, hi, n_tr)),
        "rise": rng.uniform(12, 20, n_tr),
        "decline": rng.uniform(0.02, 0.05, n_tr),
        "tau_min": rng.uniform(5, 30, n_tr),
        "quiescent": rng.uniform(21.0, 22.5, n_tr),
        "g_r": tgr,
    }
    transients.update({f"mag_{b}": m for b, m in _colours(tpeak, tgr, galaxy=False).items()})

    n_mv = cfg.n_movers
    mra, mdec = _random_positions(rng, n_mv, ra, dec, radius_deg * 0.3)
    fast = np.arange(n_mv) % 2 == 1
    speed = np.where(fast, rng.uniform(3.0, 8.0, n_mv), rng.uniform(0.15, 0.3, n_mv))
    angle = rng.uniform(0, 2 * np.pi, n_mv)
    mgr = rng.uniform(0.4, 0.7, n_mv)
    movers = {
        "id": _ids("mover", n_mv),
        "ra0": mra,
        "dec0": mdec,
        "mjd0": (rng.choice(np.asarray(mover_times), n_mv) if mover_times else rng.uniform(lo, hi, n_mv)),
        "rate_ra": speed * np.cos(angle),
        "rate_dec": speed * np.sin(angle),
        "g_r": mgr,
    }
    movers.update(
        {f"mag_{b}": m for b, m in _colours(rng.uniform(17.5, 19.5, n_mv), mgr, galaxy=False).items()}
    )
    log.info(
        "sky: %d stars (%d variable), %d galaxies, %d transients, %d movers in %.3f deg^2",
        n_star,
        int(variable.sum()),
        n_gal,
        n_tr,
        n_mv,
        area,
    )
    return SkyCatalog(stars, galaxies, transients, movers)

"""What one visit sees: every source's focal-plane position and flux (electrons) at the visit.

A :class:`Scene` is computed once per visit for the whole focal plane; each detector then
picks its sources by pixel position (:meth:`Scene.on_detector`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pachon.sim.astrometry import sky_to_field_angle
from pachon.sim.config import OpticsConfig
from pachon.sim.psf import BAND_WAVELENGTH_NM
from pachon.sim.sky import SkyCatalog
from pachon.sim.survey import Visit

__all__ = [
    "Scene",
    "make_scene",
    "flux_electrons",
    "sky_electrons",
    "KIND_POINT",
    "KIND_GALAXY",
    "KIND_STREAK",
    "field_radius_mm",
]

log = logging.getLogger(__name__)

KIND_POINT, KIND_GALAXY, KIND_STREAK = 0, 1, 2


def flux_electrons(mag: np.ndarray, band: str, visit: Visit, optics: OpticsConfig) -> np.ndarray:
    """Electrons collected from sources of AB magnitude ``mag`` (before vignetting and flat)."""
    extinction = optics.extinction[band] * (visit.airmass - 1.0)
    with np.errstate(over="ignore"):
        return (
            10 ** (-0.4 * (np.asarray(mag, float) + extinction - optics.zeropoints[band]))
            * visit.exposure_time
        )


def sky_electrons(visit: Visit, optics: OpticsConfig, pixel_scale: float) -> float:
    """Sky electrons per pixel (before vignetting and flat)."""
    per_arcsec2 = 10 ** (-0.4 * (optics.sky_brightness[visit.band] - optics.zeropoints[visit.band]))
    return float(per_arcsec2 * visit.exposure_time * pixel_scale**2)


def field_radius_mm(instrument: Any) -> float:
    """Largest focal-plane radius (mm) of the instrument's detector corners."""
    return max(float(np.max(np.hypot(*d.corners_mm()))) for d in instrument.detectors)


@dataclass
class Scene:
    """Column arrays of the sources of one visit (``kind``: point, galaxy or streak)."""

    visit: Visit
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.columns["id"])

    def on_detector(self, detector: Any, margin: float = 30.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Indices of sources within ``margin`` pixels of ``detector``, and their pixel positions."""
        c = self.columns
        x, y = detector.focal_plane_to_pixel(c["fx"], c["fy"])
        b = detector.bbox
        keep = (
            (x > b.x0 - margin)
            & (x < b.x0 + b.width + margin)
            & (y > b.y0 - margin)
            & (y < b.y0 + b.height + margin)
        )
        if np.any(c["kind"] == KIND_STREAK):
            x1, y1 = detector.focal_plane_to_pixel(c["fx1"], c["fy1"])
            x0, y0 = detector.focal_plane_to_pixel(c["fx0"], c["fy0"])
            lo_x, hi_x = np.minimum(x0, x1), np.maximum(x0, x1)
            lo_y, hi_y = np.minimum(y0, y1), np.maximum(y0, y1)
            streak = (
                (c["kind"] == KIND_STREAK)
                & (hi_x > b.x0 - margin)
                & (lo_x < b.x0 + b.width + margin)
                & (hi_y > b.y0 - margin)
                & (lo_y < b.y0 + b.height + margin)
            )
            keep |= streak
        idx = np.flatnonzero(keep)
        return idx, x[idx], y[idx]


def _dcr_offsets(g_r: np.ndarray, visit: Visit, optics: OpticsConfig) -> tuple[np.ndarray, np.ndarray]:
    if not optics.dcr:
        return np.zeros_like(g_r), np.zeros_like(g_r)
    tan_z = math.tan(math.acos(min(1.0, 1.0 / visit.airmass)))
    scale = (BAND_WAVELENGTH_NM["g"] / BAND_WAVELENGTH_NM[visit.band]) ** 2
    shift = optics.dcr_arcsec_per_mag * scale * (g_r - 0.6) * tan_z / 3600.0
    q = math.radians(visit.parallactic_deg)
    return shift * math.sin(q), shift * math.cos(q)


def make_scene(catalog: SkyCatalog, visit: Visit, instrument: Any, optics: OpticsConfig) -> Scene:
    """Positions (focal plane, mm) and fluxes (electrons) of every source at ``visit``."""
    band, t_mid = visit.band, visit.mjd_mid
    parts: list[dict[str, np.ndarray]] = []
    s = catalog.stars
    ra, dec = catalog.star_positions(t_mid)
    parts.append(
        {
            "id": s["id"],
            "ra": ra,
            "dec": dec,
            "mag": catalog.star_mags(band, t_mid),
            "g_r": s["g_r"],
            "kind": np.full(len(ra), KIND_POINT),
        }
    )
    g = catalog.galaxies
    parts.append(
        {
            "id": g["id"],
            "ra": g["ra"],
            "dec": g["dec"],
            "mag": g[f"mag_{band}"],
            "g_r": g["g_r"],
            "kind": np.full(len(g["id"]), KIND_GALAXY),
            "galaxy_index": np.arange(len(g["id"])),
        }
    )
    t = catalog.transients
    tmag = catalog.transient_mags(band, t_mid)
    live = np.isfinite(tmag)
    parts.append(
        {
            "id": t["id"][live],
            "ra": t["ra"][live],
            "dec": t["dec"][live],
            "mag": tmag[live],
            "g_r": t["g_r"][live],
            "kind": np.full(int(live.sum()), KIND_POINT),
        }
    )
    m = catalog.movers
    mra, mdec = catalog.mover_positions(t_mid)
    ra0, dec0 = catalog.mover_positions(visit.mjd_start)
    ra1, dec1 = catalog.mover_positions(visit.mjd_start + visit.exposure_time / 86400.0)
    parts.append(
        {
            "id": m["id"],
            "ra": mra,
            "dec": mdec,
            "mag": m[f"mag_{band}"],
            "g_r": m["g_r"],
            "kind": np.full(len(mra), KIND_STREAK),
            "ra0": ra0,
            "dec0": dec0,
            "ra1": ra1,
            "dec1": dec1,
        }
    )
    n_total = sum(len(p["id"]) for p in parts)
    cols: dict[str, np.ndarray] = {}
    for key in ("id", "ra", "dec", "mag", "g_r", "kind"):
        cols[key] = np.concatenate([p[key] for p in parts])
    cols["galaxy_index"] = np.full(n_total, -1, dtype=np.int64)
    cols["galaxy_index"][len(ra) : len(ra) + len(g["id"])] = parts[1]["galaxy_index"]
    d_east, d_north = _dcr_offsets(cols["g_r"], visit, optics)
    cols["ra_obs"] = cols["ra"] + d_east / np.cos(np.radians(cols["dec"]))
    cols["dec_obs"] = cols["dec"] + d_north
    cols["flux"] = flux_electrons(cols["mag"], band, visit, optics)

    def focal(ra_: np.ndarray, dec_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tx, ty = sky_to_field_angle(ra_, dec_, visit.ra, visit.dec, visit.rotation_deg)
        return instrument.field_angle_to_focal_plane(tx, ty)

    cols["fx"], cols["fy"] = focal(cols["ra_obs"], cols["dec_obs"])
    for end in ("0", "1"):
        fx_end, fy_end = cols["fx"].copy(), cols["fy"].copy()
        n_mv = len(mra)
        if n_mv:
            fx_end[-n_mv:], fy_end[-n_mv:] = focal(parts[3][f"ra{end}"], parts[3][f"dec{end}"])
        cols[f"fx{end}"], cols[f"fy{end}"] = fx_end, fy_end
    return Scene(visit, cols)

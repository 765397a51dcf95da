"""The simulation engine: one detector of one visit (or calibration exposure) at a time.

:class:`Simulator` holds the instrument, the sky and every detector's fixed signatures, all
drawn from the seed, so any (visit, detector) can be simulated alone and reproducibly.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pachon.sim import detector as det_sig
from pachon.sim.astrometry import pixel_scale_arcsec, sky_to_field_angle
from pachon.sim.charge_bf import apply_charge_bf, charge_bf_kernel
from pachon.sim.config import SimConfig
from pachon.sim.psf import VisitPsf
from pachon.sim.render import PsfField
from pachon.sim.scene import (
    KIND_GALAXY,
    KIND_POINT,
    KIND_STREAK,
    Scene,
    field_radius_mm,
    make_scene,
    sky_electrons,
)
from pachon.sim.sky import SkyCatalog, make_sky
from pachon.sim.survey import Visit, make_visits

__all__ = ["Simulator", "DetectorFrame"]

log = logging.getLogger(__name__)


@dataclass
class DetectorFrame:
    """One simulated detector exposure: raw amplifier arrays and its truth rows."""

    detector: Any
    raws: list[np.ndarray]
    sources: dict[str, np.ndarray] = field(default_factory=dict)
    effects: list[dict[str, Any]] = field(default_factory=list)
    sky_level: float = 0.0


class Simulator:
    """Everything fixed by the configuration and seed.

    Parameters
    ----------
    config
        The simulation configuration.
    seed
        Seed of every random draw (sky, cadence, signatures, noise).
    visits
        Explicit visits; made from ``config.survey`` when None.
    """

    def __init__(self, config: SimConfig, *, seed: int = 0, visits: list[Visit] | None = None) -> None:
        from pachon.sim.writer import check_supported

        config.validate()
        self.config = config
        self.seed = int(seed)
        self.instrument = config.get_instrument()
        check_supported(self.instrument)
        ids = (
            config.detectors
            if config.detectors is not None
            else [d.id for d in self.instrument.detectors if d.purpose == "SCIENCE"]
        )
        self.detectors = [self.instrument.detector(i) for i in ids]
        self.field_radius_mm = field_radius_mm(self.instrument)
        self.visits = visits if visits is not None else make_visits(config.survey, self._rng(1))
        self._signatures: dict[int, det_sig.DetectorSignatures] = {}
        self._catalog: SkyCatalog | None = None

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *key])

    @property
    def catalog(self) -> SkyCatalog:
        """The sky, covering every simulated detector of every field (drawn on first use)."""
        if self._catalog is None:
            self._catalog = self._make_catalog()
        return self._catalog

    def _make_catalog(self) -> SkyCatalog:
        from pachon.sim.astrometry import field_angle_to_sky

        radius_mm = max(float(np.max(np.hypot(*d.corners_mm()))) for d in self.detectors)
        fields = sorted({(v.ra, v.dec) for v in self.visits})
        ra0, dec0 = self.visits[0].ra, self.visits[0].dec
        offsets = [
            math.degrees(float(np.hypot(*sky_to_field_angle(ra, dec, ra0, dec0, 0.0)))) for ra, dec in fields
        ]
        radius = radius_mm * self.instrument.plate_scale / 3600.0 * 1.05 + max(offsets) + 0.002
        # bright stars near the middle of the first simulated detector of each field
        centres = []
        d0 = self.detectors[0]
        fx, fy = d0.pixel_to_focal_plane(np.array(d0.center_pixel[0]), np.array(d0.center_pixel[1]))
        tx, ty = self.instrument.focal_plane_to_field_angle(fx, fy)
        for ra, dec in fields:
            rot = next(v.rotation_deg for v in self.visits if (v.ra, v.dec) == (ra, dec))
            cra, cdec = field_angle_to_sky(tx, ty, ra, dec, rot)
            centres.append((float(cra), float(cdec)))
        mjds = [v.mjd_start for v in self.visits]
        return make_sky(
            self.config.sky,
            self._rng(2),
            ra=ra0,
            dec=dec0,
            radius_deg=radius,
            mjd_range=(min(mjds), max(mjds) + 1),
            bright_centres=centres,
            mover_times=[v.mjd_mid for v in self.visits],
        )

    def signatures(self, detector: Any) -> det_sig.DetectorSignatures:
        """The fixed signatures of ``detector`` (flat, dark, defects, bias levels, crosstalk)."""
        if detector.id not in self._signatures:
            self._signatures[detector.id] = det_sig.make_signatures(
                detector,
                self.config.detector,
                vignetting=self.config.optics.vignetting,
                field_radius_mm=self.field_radius_mm,
                rng=self._rng(3, detector.id),
            )
        return self._signatures[detector.id]

    def visit_psf(self, visit: Visit) -> VisitPsf:
        """The PSF model of ``visit``."""
        return VisitPsf(visit.seeing_fwhm, visit.band, self.config.optics, self.field_radius_mm)

    def scene(self, visit: Visit) -> Scene:
        """Source positions and fluxes of ``visit``."""
        return make_scene(self.catalog, visit, self.instrument, self.config.optics)

    def render(
        self, visit: Visit, detector: Any, scene: Scene | None = None
    ) -> tuple[np.ndarray, dict, list]:
        """Expected electrons of sky + sources (before flat and noise), and truth rows."""
        scene = scene if scene is not None else self.scene(visit)
        cfg = self.config
        pix = pixel_scale_arcsec(self.instrument, detector)
        psf = PsfField(self.visit_psf(visit), detector, pix)
        image = np.zeros(detector.bbox.shape, dtype=np.float64)
        idx, xs, ys = scene.on_detector(detector, margin=psf.half + 2)
        c = scene.columns
        g = self.catalog.galaxies
        kinds, flux = c["kind"][idx], c["flux"][idx]
        bf = 0.0 if cfg.detector.bf_on_charge else cfg.detector.brighter_fatter
        for k, i in enumerate(idx):
            f = float(flux[k])
            if f <= 0 or not math.isfinite(f):
                continue
            if kinds[k] == KIND_POINT:
                psf.draw_point(image, float(xs[k]), float(ys[k]), f, bf=bf)
            elif kinds[k] == KIND_GALAXY:
                j = int(c["galaxy_index"][i])
                psf.draw_galaxy(
                    image,
                    float(xs[k]),
                    float(ys[k]),
                    f,
                    bulge_frac=float(g["bulge_frac"][j]),
                    bulge_hlr=float(g["bulge_hlr"][j]),
                    disk_hlr=float(g["disk_hlr"][j]),
                    e1=float(g["e1"][j]),
                    e2=float(g["e2"][j]),
                    rotation_deg=visit.rotation_deg,
                )
            elif kinds[k] == KIND_STREAK:
                x0, y0 = detector.focal_plane_to_pixel(c["fx0"][i], c["fy0"][i])
                x1, y1 = detector.focal_plane_to_pixel(c["fx1"][i], c["fy1"][i])
                psf.draw_streak(image, float(x0), float(y0), float(x1), float(y1), f)
        effects = self._ghosts(image, detector, scene, idx, xs, ys, pix)
        effects += self._satellite(image, visit, detector, psf)
        sig = self.signatures(detector)
        inside = detector.contains_pixel(xs, ys)
        ixs = np.clip(np.rint(xs).astype(int), 0, detector.bbox.width - 1)
        iys = np.clip(np.rint(ys).astype(int), 0, detector.bbox.height - 1)
        truth = {
            "source_id": c["id"][idx],
            "kind": kinds,
            "x": xs,
            "y": ys,
            "ra": c["ra_obs"][idx],
            "dec": c["dec_obs"][idx],
            "mag": c["mag"][idx],
            "flux": flux,
            "illumination": (sig.illumination[iys, ixs] * sig.large_scale[iys, ixs]).astype(float),
            "on_detector": inside,
        }
        return image, truth, effects

    def _ghosts(
        self,
        image: np.ndarray,
        detector: Any,
        scene: Scene,
        idx: np.ndarray,
        xs: np.ndarray,
        ys: np.ndarray,
        pix: float,
    ) -> list[dict[str, Any]]:
        optics = self.config.optics
        if optics.ghost_fraction <= 0:
            return []
        c = scene.columns
        bright = np.flatnonzero((c["mag"] < optics.ghost_mag) & (c["kind"] == KIND_POINT))
        out = []
        radius = 8.0 / pix
        for i in bright:
            gx, gy = detector.focal_plane_to_pixel(c["fx"][i] * 1.03, c["fy"][i] * 1.03)
            gx, gy = float(gx), float(gy)
            half = int(radius) + 1
            yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
            r = np.hypot(xx - (gx - round(gx)), yy - (gy - round(gy)))
            ring = ((r < radius) & (r > 0.5 * radius)).astype(np.float64)
            flux = float(c["flux"][i]) * optics.ghost_fraction
            from pachon.sim.render import add_stamp

            if add_stamp(image, ring * flux / ring.sum(), int(round(gx)), int(round(gy))):
                out.append(
                    {
                        "kind": "ghost",
                        "x0": gx,
                        "y0": gy,
                        "x1": gx,
                        "y1": gy,
                        "value": flux,
                        "source_id": int(c["id"][i]),
                    }
                )
        return out

    def _satellite(
        self, image: np.ndarray, visit: Visit, detector: Any, psf: PsfField
    ) -> list[dict[str, Any]]:
        rng = self._rng(4, visit.index)
        if rng.uniform() >= self.config.sky.satellite_probability:
            return []
        # a straight trail across the focal plane: a point near the centre and a direction
        p = rng.uniform(-0.5, 0.5, 2) * self.field_radius_mm
        phi = rng.uniform(0, np.pi)
        per_pixel = float(rng.uniform(500.0, 5000.0)) * visit.exposure_time / 30.0
        x0, y0 = detector.focal_plane_to_pixel(np.array(p[0]), np.array(p[1]))
        x1, y1 = detector.focal_plane_to_pixel(np.array(p[0] + math.cos(phi)), np.array(p[1] + math.sin(phi)))
        dx, dy = float(x1 - x0), float(y1 - y0)
        norm = math.hypot(dx, dy)
        nx_, ny_ = -dy / norm, dx / norm
        sigma = psf.visit_psf.fwhm_estimate() / psf.pixel_scale / 2.3548
        h, w = image.shape
        # distance of each pixel row/column to the line, vectorized on a band of pixels
        if abs(dx) >= abs(dy):
            cols = np.arange(w)
            yc = float(y0) + (cols - float(x0)) * dy / dx
            rows = (
                np.rint(yc)[None, :].astype(int) + np.arange(-int(5 * sigma) - 1, int(5 * sigma) + 2)[:, None]
            )
            cc = np.broadcast_to(cols[None, :], rows.shape)
        else:
            rows_ = np.arange(h)
            xc = float(x0) + (rows_ - float(y0)) * dx / dy
            cc = (
                np.rint(xc)[None, :].astype(int) + np.arange(-int(5 * sigma) - 1, int(5 * sigma) + 2)[:, None]
            )
            rows = np.broadcast_to(rows_[None, :], cc.shape)
        ok = (rows >= 0) & (rows < h) & (cc >= 0) & (cc < w)
        if not ok.any():
            return []
        dist = (cc - float(x0)) * nx_ + (rows - float(y0)) * ny_
        value = per_pixel * np.exp(-0.5 * (dist / sigma) ** 2) / (math.sqrt(2 * np.pi) * sigma)
        np.add.at(image, (rows[ok], cc[ok]), value[ok])
        return [
            {
                "kind": "satellite",
                "x0": float(x0),
                "y0": float(y0),
                "x1": float(x1),
                "y1": float(y1),
                "value": per_pixel,
            }
        ]

    def expose(
        self,
        expected: np.ndarray,
        detector: Any,
        *,
        dark_time: float,
        rng: np.random.Generator,
        cosmic_rays: bool = True,
    ) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
        """Turn expected incident electrons into raw arrays: flat, dark, shot noise, cosmic rays,
        saturation and bleed, then the amplifier electronics."""
        cfg = self.config.detector
        sig = self.signatures(detector)
        e = expected.astype(np.float32) * sig.flat
        e += sig.dark * np.float32(dark_time)
        e += np.sqrt(np.maximum(e, 0.0)) * rng.standard_normal(e.shape, dtype=np.float32)
        effects: list[dict[str, Any]] = []
        if cosmic_rays and cfg.cosmic_ray_rate > 0:
            effects += det_sig.add_cosmic_rays(e, cfg.cosmic_ray_rate, dark_time, detector.pixel_size_mm, rng)
        if cfg.bf_on_charge and cfg.brighter_fatter > 0:
            kernel = charge_bf_kernel(cfg.brighter_fatter, cfg.bf_kernel_sigma)
            e = apply_charge_bf(e, kernel).astype(np.float32)
        effects += det_sig.saturate_and_bleed(e, sig.full_well, self._amp_map(detector))
        return det_sig.read_out(e, detector, sig, cfg, rng), effects

    def _amp_map(self, detector: Any) -> np.ndarray:
        cache = self.__dict__.setdefault("_amp_maps", {})
        if detector.id not in cache:
            cache[detector.id] = det_sig.amp_index_map(detector)
        return cache[detector.id]

    def simulate_detector(self, visit: Visit, detector: Any, scene: Scene | None = None) -> DetectorFrame:
        """Simulate one detector of one science visit."""
        image, truth, effects = self.render(visit, detector, scene)
        sig = self.signatures(detector)
        pix = pixel_scale_arcsec(self.instrument, detector)
        sky = sky_electrons(visit, self.config.optics, pix)
        expected = (image + sky) * sig.illumination
        raws, more = self.expose(
            expected, detector, dark_time=visit.exposure_time, rng=self._rng(5, visit.index, detector.id)
        )
        return DetectorFrame(detector, raws, truth, effects + more, sky)

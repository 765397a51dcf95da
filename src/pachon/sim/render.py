"""Drawing a visit's sources onto one detector (electrons, before flat field and noise).

Point sources share pre-drawn PSF images: per cell of the detector, GalSim draws the
pixel-convolved PSF once on a grid oversampled ``OVERSAMPLE`` times, and each star's stamp is
a bilinear interpolation between the four nearest sub-pixel phases (positions good to a few
thousandths of a pixel).  Bright stars (large stamps) and galaxies (Sérsic bulge + exponential
disk) are drawn by GalSim individually at their exact offsets.  Streaks are sums of point
stamps along the trail.  The loop runs over sources, never over pixels.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from pachon.sim.psf import VisitPsf

__all__ = ["PsfStamps", "PsfField", "add_stamp", "brighter_fatter", "OVERSAMPLE"]

log = logging.getLogger(__name__)

OVERSAMPLE = 8


def add_stamp(image: np.ndarray, stamp: np.ndarray, ix: int, iy: int) -> bool:
    """Add ``stamp`` centred on pixel ``(ix, iy)`` into ``image`` (clipped); False when disjoint."""
    sh, sw = stamp.shape
    x0, y0 = ix - sw // 2, iy - sh // 2
    ny, nx = image.shape
    ax0, ay0, ax1, ay1 = max(x0, 0), max(y0, 0), min(x0 + sw, nx), min(y0 + sh, ny)
    if ax0 >= ax1 or ay0 >= ay1:
        return False
    image[ay0:ay1, ax0:ax1] += stamp[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0]
    return True


def brighter_fatter(stamp: np.ndarray, strength: float) -> np.ndarray:
    """Brighter-fatter redistribution ``I + div(D grad I)`` with ``D = strength * I`` (pixels^2).

    Charge already collected repels new charge, so bright cores spread (flux is conserved).
    ``D`` is capped at 0.2 so that the explicit step stays stable in saturated cores.
    """
    if strength <= 0:
        return stamp
    diffusion = np.minimum(strength * stamp, 0.2)
    gy, gx = np.gradient(stamp)
    return stamp + np.gradient(diffusion * gx, axis=1) + np.gradient(diffusion * gy, axis=0)


class PsfStamps:
    """A PSF realised on an oversampled grid, sampled into pixel stamps at any sub-pixel offset.

    Parameters
    ----------
    psf
        GalSim profile of the PSF (arcsec).
    pixel_scale
        Arcsec per pixel.
    half_size
        Stamps are ``2 * half_size + 1`` pixels on a side.
    """

    def __init__(self, psf: Any, pixel_scale: float, half_size: int, oversample: int = OVERSAMPLE) -> None:
        import galsim

        k = oversample
        self.half = half_size
        self.size = 2 * half_size + 1
        self.k = k
        n = k * (self.size + 1) + 1
        obj = galsim.Convolve(psf, galsim.Pixel(pixel_scale))
        fine = obj.drawImage(nx=n, ny=n, scale=pixel_scale / k, method="no_pixel")
        self.fine = fine.array.astype(np.float64) * (k * k)
        self.centre = n // 2

    def stamp(self, dx: float, dy: float) -> np.ndarray:
        """Unit-flux stamp of a source at ``(dx, dy)`` pixels from the stamp's central pixel."""
        k, s, h = self.k, self.size, self.half
        px, py = self.centre - k * dx, self.centre - k * dy
        x0, y0 = int(math.floor(px)), int(math.floor(py))
        wx, wy = px - x0, py - y0
        bx, by = x0 - k * h, y0 - k * h
        f = self.fine

        def view(oy: int, ox: int) -> np.ndarray:
            return f[by + oy : by + oy + k * s : k, bx + ox : bx + ox + k * s : k]

        return (1 - wy) * ((1 - wx) * view(0, 0) + wx * view(0, 1)) + wy * (
            (1 - wx) * view(1, 0) + wx * view(1, 1)
        )


class PsfField:
    """The PSF of one visit over one detector: GalSim profiles and shared stamps per cell.

    The detector is divided into ``cells x cells`` regions with the PSF of each region's centre.
    """

    def __init__(
        self, visit_psf: VisitPsf, detector: Any, pixel_scale: float, *, cell_pixels: int = 1024
    ) -> None:
        self.visit_psf = visit_psf
        self.detector = detector
        self.pixel_scale = pixel_scale
        b = detector.bbox
        self.ncx = max(1, round(b.width / cell_pixels))
        self.ncy = max(1, round(b.height / cell_pixels))
        fwhm_px = visit_psf.fwhm_estimate() / pixel_scale
        self.half = int(max(7, math.ceil(3.5 * fwhm_px)))
        self._profiles: dict[tuple[int, int], Any] = {}
        self._stamps: dict[tuple[int, int], PsfStamps] = {}

    def cell(self, x: float, y: float) -> tuple[int, int]:
        """Cell index of pixel position ``(x, y)``."""
        b = self.detector.bbox
        cx = min(self.ncx - 1, max(0, int((x - b.x0) / b.width * self.ncx)))
        cy = min(self.ncy - 1, max(0, int((y - b.y0) / b.height * self.ncy)))
        return cx, cy

    def profile(self, x: float, y: float) -> Any:
        """GalSim PSF profile (arcsec, along pixel axes) of the cell holding ``(x, y)``."""
        key = self.cell(x, y)
        if key not in self._profiles:
            b = self.detector.bbox
            xc = b.x0 + (key[0] + 0.5) * b.width / self.ncx - 0.5
            yc = b.y0 + (key[1] + 0.5) * b.height / self.ncy - 0.5
            fx, fy = self.detector.pixel_to_focal_plane(np.array(xc), np.array(yc))
            self._profiles[key] = self.visit_psf.at(float(fx), float(fy))
        return self._profiles[key]

    def stamps(self, x: float, y: float) -> PsfStamps:
        """Shared oversampled stamps of the cell holding ``(x, y)``."""
        key = self.cell(x, y)
        if key not in self._stamps:
            self._stamps[key] = PsfStamps(self.profile(x, y), self.pixel_scale, self.half)
        return self._stamps[key]

    def draw_point(
        self, image: np.ndarray, x: float, y: float, flux: float, *, bf: float = 0.0, big_flux: float = 3e6
    ) -> None:
        """Add a point source of ``flux`` electrons at ``(x, y)`` (bright ones drawn by GalSim in a
        stamp large enough for their wings)."""
        ix, iy = int(math.floor(x + 0.5)), int(math.floor(y + 0.5))
        dx, dy = x - ix, y - iy
        if flux > big_flux:
            half = int(min(200, self.half * (flux / big_flux) ** 0.25 * 2))
            n = 2 * half + 1
            stamp = self.profile(x, y).drawImage(nx=n, ny=n, scale=self.pixel_scale, offset=(dx, dy)).array
            stamp = stamp.astype(np.float64) * flux
        else:
            stamp = self.stamps(x, y).stamp(dx, dy) * flux
        if bf > 0 and flux > 1e4:
            stamp = brighter_fatter(stamp, bf)
        add_stamp(image, stamp, ix, iy)

    def draw_galaxy(
        self,
        image: np.ndarray,
        x: float,
        y: float,
        flux: float,
        *,
        bulge_frac: float,
        bulge_hlr: float,
        disk_hlr: float,
        e1: float,
        e2: float,
        rotation_deg: float,
    ) -> None:
        """Add a bulge + disk galaxy (half-light radii in arcsec) convolved with the local PSF."""
        import galsim

        gsp = self.visit_psf.gsparams
        parts = []
        if bulge_frac > 0:
            parts.append(galsim.DeVaucouleurs(half_light_radius=bulge_hlr, flux=bulge_frac, gsparams=gsp))
        if bulge_frac < 1:
            parts.append(galsim.Exponential(half_light_radius=disk_hlr, flux=1.0 - bulge_frac, gsparams=gsp))
        gal = galsim.Add(parts) if len(parts) > 1 else parts[0]
        gal = gal.shear(e1=e1, e2=e2).rotate(rotation_deg * galsim.degrees)
        ix, iy = int(math.floor(x + 0.5)), int(math.floor(y + 0.5))
        half = int(min(64, max(self.half, math.ceil(2.5 * disk_hlr / self.pixel_scale) + self.half)))
        n = 2 * half + 1
        obj = galsim.Convolve(gal, self.profile(x, y), gsparams=gsp)
        stamp = obj.drawImage(nx=n, ny=n, scale=self.pixel_scale, offset=(x - ix, y - iy)).array
        add_stamp(image, stamp.astype(np.float64) * flux, ix, iy)

    def draw_streak(self, image: np.ndarray, x0: float, y0: float, x1: float, y1: float, flux: float) -> None:
        """Add a source trailing from ``(x0, y0)`` to ``(x1, y1)`` during the exposure."""
        n = max(1, int(math.ceil(2 * math.hypot(x1 - x0, y1 - y0))))
        t = (np.arange(n) + 0.5) / n
        b = self.detector.bbox
        for xs, ys in zip(x0 + t * (x1 - x0), y0 + t * (y1 - y0), strict=True):
            if (
                b.x0 - self.half <= xs < b.x0 + b.width + self.half
                and b.y0 - self.half <= ys < b.y0 + b.height + self.half
            ):
                self.draw_point(image, float(xs), float(ys), flux / n)

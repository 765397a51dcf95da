"""Science/template pairs with known truth, for tests, the reliability training and benchmarks.

Point sources are drawn with a double-Gaussian PSF (core plus 10 % wing at twice the width:
not a single Gaussian, so the matching kernel is not trivially in the basis), sampled at pixel
centres exactly as the attached :class:`~pachon.core.psf.ImagePsf` is.  The science image
can hold:

* static stars (also in the template);
* ``transients``: point sources only in the science image;
* ``variables``: stars whose science flux differs from the template flux;
* ``dipoles``: stars displaced by a fraction of a pixel in the science image;
* ``trails``: line segments (a moving object during the exposure) only in the science image;
* ``cosmic_rays``: single hot pixels (bogus, unmasked) in the science image.

Noise is Gaussian with the Poisson variance of sky plus sources (gain 1); the variance planes
hold the expected variance.  Truth comes back as a dict of arrays per kind.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from pachon.core.exposure import Exposure
from pachon.core.psf import ImagePsf
from pachon.core.wcs import make_tan_wcs

__all__ = ["PairSpec", "draw_points", "double_gaussian_psf", "make_pair"]

_log = logging.getLogger(__name__)


def _profile(dx: np.ndarray, dy: np.ndarray, sigma: float) -> np.ndarray:
    """Double Gaussian at offsets (unnormalized sum of 0.9 core + 0.1 wing, unit integral)."""
    core = np.exp(-0.5 * (dx**2 + dy**2) / sigma**2) / (2 * np.pi * sigma**2)
    s2 = 2.0 * sigma
    wing = np.exp(-0.5 * (dx**2 + dy**2) / s2**2) / (2 * np.pi * s2**2)
    return 0.9 * core + 0.1 * wing


def double_gaussian_psf(sigma: float, half: int | None = None) -> ImagePsf:
    """The simulator's PSF as an :class:`ImagePsf`."""
    half = half if half is not None else math.ceil(8 * sigma)
    r = np.arange(-half, half + 1, dtype=float)
    yy, xx = np.meshgrid(r, r, indexing="ij")
    return ImagePsf(_profile(xx, yy, sigma))


def draw_points(
    image: np.ndarray, x: np.ndarray, y: np.ndarray, flux: np.ndarray, sigma: float | np.ndarray
) -> None:
    """Add point sources (double-Gaussian PSF of core width ``sigma``) to ``image`` in place.

    ``sigma`` is one width for all sources or one per source.
    """
    if len(x) == 0:
        return
    sig = np.broadcast_to(np.asarray(sigma, float), np.shape(x))
    half = math.ceil(8 * float(sig.max()))
    off = np.arange(-half, half + 1)
    ix, iy = np.rint(x).astype(int), np.rint(y).astype(int)
    px = ix[:, None, None] + off[None, None, :]
    py = iy[:, None, None] + off[None, :, None]
    stamps = _profile(px - x[:, None, None], py - y[:, None, None], sig[:, None, None]) * flux[:, None, None]
    h, w = image.shape
    ok = (px >= 0) & (px < w) & (py >= 0) & (py < h)
    px, py = np.broadcast_arrays(px, py)
    np.add.at(image, (py[ok], px[ok]), stamps[ok])


@dataclass
class PairSpec:
    """What :func:`make_pair` draws (counts in electrons; widths in pixels)."""

    shape: tuple[int, int] = (512, 512)
    sigma_science: float = 2.0
    sigma_template: float = 1.6
    sky: float = 400.0
    template_depth: float = 4.0  # template noise variance is sky / depth
    n_stars: int = 300
    star_flux: tuple[float, float] = (3e3, 3e5)
    transient_flux: np.ndarray = field(default_factory=lambda: np.zeros(0))
    transient_xy: np.ndarray | None = None  # (n, 2) positions; random when None
    n_variables: int = 0
    n_dipoles: int = 0
    dipole_shift: float = 0.3
    trails: list[tuple[float, float, float]] = field(default_factory=list)  # (length, angle deg, flux)
    n_cosmic_rays: int = 0
    background_science: tuple[float, float, float] = (0.0, 0.0, 0.0)  # a + b x + c y
    # science core width grows linearly by this much from pixel (0, 0) to (w - 1, h - 1),
    # centred on sigma_science (the attached PSF is the one at the centre); template constant
    science_psf_variation: float = 0.0

    def science_sigma_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Science PSF core width at array positions ``(x, y)``."""
        h, w = self.shape
        t = 0.5 * (np.asarray(x, float) / (w - 1) + np.asarray(y, float) / (h - 1)) - 0.5
        return self.sigma_science + self.science_psf_variation * t


def make_pair(spec: PairSpec, seed: int = 0) -> tuple[Exposure, Exposure, dict[str, dict[str, np.ndarray]]]:
    """A science exposure, a template on the same grid, and the truth (see module docstring)."""
    rng = np.random.default_rng(seed)
    h, w = spec.shape
    m = 20.0
    n = spec.n_stars
    sx, sy = rng.uniform(m, w - m, n), rng.uniform(m, h - m, n)
    lo, hi = np.log(spec.star_flux[0]), np.log(spec.star_flux[1])
    sflux = np.exp(rng.uniform(lo, hi, n))
    sci = np.zeros(spec.shape)
    tpl = np.zeros(spec.shape)
    truth: dict[str, dict[str, np.ndarray]] = {}
    sci_flux = sflux.copy()
    sci_x, sci_y = sx.copy(), sy.copy()
    k = 0
    nv, nd = spec.n_variables, spec.n_dipoles
    if nv:
        factor = rng.choice([-1.0, 1.0], nv) * rng.uniform(0.3, 0.8, nv)
        sci_flux[k : k + nv] = sflux[k : k + nv] * (1 + factor)
        truth["variables"] = {
            "x": sx[k : k + nv],
            "y": sy[k : k + nv],
            "flux": sci_flux[k : k + nv] - sflux[k : k + nv],
        }
        k += nv
    if nd:
        ang = rng.uniform(0, 2 * np.pi, nd)
        sci_x[k : k + nd] += spec.dipole_shift * np.cos(ang)
        sci_y[k : k + nd] += spec.dipole_shift * np.sin(ang)
        truth["dipoles"] = {
            "x": sx[k : k + nd],
            "y": sy[k : k + nd],
            "angle": np.degrees(ang),
            "flux": sflux[k : k + nd],
        }
        k += nd
    draw_points(tpl, sx, sy, sflux, spec.sigma_template)
    draw_points(sci, sci_x, sci_y, sci_flux, spec.science_sigma_at(sci_x, sci_y))
    nt = len(spec.transient_flux)
    if nt:
        tx, ty = rng.uniform(m, w - m, nt), rng.uniform(m, h - m, nt)
        if spec.transient_xy is not None:
            tx, ty = np.asarray(spec.transient_xy, float).T
        draw_points(sci, tx, ty, np.asarray(spec.transient_flux, float), spec.science_sigma_at(tx, ty))
        truth["transients"] = {"x": tx, "y": ty, "flux": np.asarray(spec.transient_flux, float)}
    if spec.trails:
        rows = np.array(spec.trails, float)
        cx, cy = rng.uniform(3 * m, w - 3 * m, len(rows)), rng.uniform(3 * m, h - 3 * m, len(rows))
        for (length, angle, flux), x0, y0 in zip(rows, cx, cy, strict=True):
            t = np.linspace(-0.5, 0.5, max(2, int(4 * length)))
            a = math.radians(angle)
            px_, py_ = x0 + t * length * math.cos(a), y0 + t * length * math.sin(a)
            draw_points(sci, px_, py_, np.full(len(t), flux / len(t)), spec.science_sigma_at(px_, py_))
        truth["trails"] = {"x": cx, "y": cy, "length": rows[:, 0], "angle": rows[:, 1], "flux": rows[:, 2]}
    yy, xx = np.mgrid[0:h, 0:w]
    a, b, c = spec.background_science
    bg = a + b * xx + c * yy
    var_s = spec.sky + np.clip(sci, 0, None)
    var_t = (spec.sky + np.clip(tpl, 0, None)) / spec.template_depth
    sci_img = sci + bg + rng.standard_normal(spec.shape) * np.sqrt(var_s)
    tpl_img = tpl + rng.standard_normal(spec.shape) * np.sqrt(var_t)
    if spec.n_cosmic_rays:
        cx_ = rng.integers(10, w - 10, spec.n_cosmic_rays)
        cy_ = rng.integers(10, h - 10, spec.n_cosmic_rays)
        sci_img[cy_, cx_] += rng.uniform(30, 100, spec.n_cosmic_rays) * math.sqrt(spec.sky)
        truth["cosmic_rays"] = {"x": cx_.astype(float), "y": cy_.astype(float)}
    truth["stars"] = {"x": sx, "y": sy, "flux": sflux}
    wcs = make_tan_wcs(150.0, 2.0, 0.2, crpix=(0.5 * w, 0.5 * h))
    science = Exposure(sci_img, variance=var_s, wcs=wcs, psf=double_gaussian_psf(spec.sigma_science))
    template = Exposure(
        tpl_img, variance=var_t, wcs=wcs.deepcopy(), psf=double_gaussian_psf(spec.sigma_template)
    )
    return science, template, truth

"""Choosing PSF stars and fitting the pixel-basis model (:class:`PixelBasisPsf`).

Star selection (:func:`select_psf_stars`) keeps bright, unblended, unflagged sources on the
stellar locus: the densest, smallest cluster of ``ixx + iyy`` among bright sources.  The fit
(:func:`fit_pixel_psf`) recentres every star's stamp on its centroid with a Fourier shift,
normalizes it by its flux and solves, for all pixels at once, the weighted linear least-squares
problem of a polynomial in position; stars with outlying residuals are rejected and the fluxes
refitted against the model, a few times.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from pachon.algorithms.measurement.stamps import extract_stamps
from pachon.algorithms.psf.pixel_psf import PixelBasisPsf, fourier_shift, poly_design
from pachon.core.errors import AlgorithmError

__all__ = [
    "PsfFitError",
    "PsfFitResult",
    "fit_pixel_psf",
    "fit_psf_stamps",
    "select_psf_stars",
    "star_stamps",
]

_log = logging.getLogger(__name__)


class PsfFitError(AlgorithmError):
    """Too few usable stars to model the PSF (an image with no stars, or all saturated)."""


def select_psf_stars(
    snr: np.ndarray,
    ixx: np.ndarray,
    iyy: np.ndarray,
    good: np.ndarray,
    *,
    min_snr: float = 50.0,
    width: float = 0.15,
) -> np.ndarray:
    """Boolean selection of PSF stars.

    Parameters
    ----------
    snr
        Flux signal-to-noise of each source.
    ixx, iyy
        Adaptive second moments (pixels²).
    good
        Sources without blend, saturation, edge or cosmic-ray flags.
    min_snr
        Faintest usable star.
    width
        Half-width of the accepted band around the stellar locus, as a fraction of its size.
    """
    size = np.sqrt(np.abs(0.5 * (ixx + iyy)))
    cand = good & (snr > min_snr) & np.isfinite(size) & (size > 0.3)
    if cand.sum() < 3:
        return cand
    s = size[cand]
    # the stellar locus: the smallest size with many neighbours (galaxies are larger, CRs smaller)
    counts = (np.abs(s[:, None] - s[None, :]) < width * s[:, None]).sum(axis=1)
    dense = counts >= 0.5 * counts.max()
    locus = np.median(s[dense & (s <= np.median(s[dense]))]) if dense.any() else np.median(s)
    locus = np.median(s[np.abs(s - locus) < width * locus])
    return cand & (np.abs(size - locus) < width * locus)


@dataclass
class PsfFitResult:
    """The fitted model and the bookkeeping of which stars it used."""

    psf: PixelBasisPsf
    used: np.ndarray
    flux: np.ndarray
    chi2: np.ndarray


def fit_pixel_psf(
    image: np.ndarray,
    variance: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    *,
    size: int = 25,
    order: int = 2,
    bad: np.ndarray | None = None,
    n_iter: int = 3,
    reject: float = 4.0,
    min_stars: int | None = None,
    xy0: tuple[int, int] = (0, 0),
) -> PsfFitResult:
    """Fit a :class:`PixelBasisPsf` to the stars at ``(x, y)`` (array pixel coordinates).

    Parameters
    ----------
    image, variance
        Background-subtracted pixels and their variance.
    x, y
        Star centroids.
    size
        Kernel width (odd).
    order
        Polynomial order of the spatial variation (lowered automatically when stars are few).
    bad
        Pixels to ignore (they get zero weight in their star's stamp).
    n_iter, reject
        Rejection iterations and threshold (robust sigma of the stars' chi²).
    min_stars
        Fewest stars accepted; default ``2 * n_terms + 2`` for order 0.
    xy0
        Parent position of the array's first pixel (the model is in parent coordinates).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if size % 2 == 0 or size < 5:
        raise PsfFitError(f"fit_pixel_psf: size must be odd and >= 5, got {size!r}")
    need = min_stars if min_stars is not None else 3
    if len(x) < need:
        raise PsfFitError(
            f"fit_pixel_psf: {len(x)} PSF star(s) found, need at least {need}; the image may hold no "
            "stars (check the detection threshold and the background)"
        )
    while order > 0 and len(x) < 3 * (order + 1) * (order + 2) // 2:
        order -= 1
    shifted, pix_var, flux = star_stamps(image, variance, x, y, size, bad)
    ok_pix = np.isfinite(pix_var)
    px, py = x + xy0[0], y + xy0[1]
    centre = (0.5 * (px.min() + px.max()), 0.5 * (py.min() + py.max()))
    scale = (max(0.5 * np.ptp(px), 1.0), max(0.5 * np.ptp(py), 1.0))
    used = (flux > 0) & ok_pix.all(axis=(1, 2))
    coef, order, used, flux, chi2 = fit_psf_stamps(
        shifted, pix_var, flux, used, px, py, centre, scale,
        order=order, n_iter=n_iter, reject=reject, need=need,
    )  # fmt: skip
    psf = PixelBasisPsf(coef, order, centre, scale)
    _log.info("PSF model: %d stars, order %d, size %d", int(used.sum()), order, size)
    return PsfFitResult(psf, used, flux, chi2)


def star_stamps(
    image: np.ndarray,
    variance: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    size: int,
    bad: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stamps of the stars at ``(x, y)`` shifted to be centred, their variance and aperture flux.

    Returns ``(shifted, pix_var, flux)``: ``(n, size, size)`` stamps (Fourier-shifted onto the
    centroids), the pixel variances (``inf`` where off the image, bad or without variance) and
    the flux inside the inscribed circle.
    """
    h = size // 2
    x, y = np.asarray(x, float), np.asarray(y, float)
    ix, iy = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
    data, inside = extract_stamps(image, ix, iy, h)
    var, _ = extract_stamps(variance, ix, iy, h, fill=np.inf)
    ok_pix = inside & np.isfinite(var) & (var > 0)
    if bad is not None:
        ok_pix &= ~extract_stamps(bad, ix, iy, h)[0].astype(bool)
    data = np.where(ok_pix, data, 0.0)
    shifted = fourier_shift(data, ix - x, iy - y)
    r2 = (np.arange(-h, h + 1)[None, :] ** 2 + np.arange(-h, h + 1)[:, None] ** 2).astype(float)
    flux = np.where(r2[None] <= h * h, shifted, 0.0).sum(axis=(1, 2))
    return shifted, np.where(ok_pix, var, np.inf), flux


def fit_psf_stamps(
    shifted: np.ndarray,
    pix_var: np.ndarray,
    flux: np.ndarray,
    used: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    centre: tuple[float, float],
    scale: tuple[float, float],
    *,
    order: int,
    n_iter: int = 3,
    reject: float = 4.0,
    need: int = 3,
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]:
    """The pixel-basis fit of centred star stamps at positions ``(px, py)`` (any coordinates).

    ``shifted``: stamps centred on the stars; ``pix_var``: their variance (``inf`` = ignore);
    ``flux``: first flux estimates; ``used``: stars allowed in.  The polynomial is in
    ``((px, py) - centre) / scale``.  Returns the coefficient cube, the order kept, the stars
    used after rejection, the refitted fluxes and each star's reduced χ².
    """
    ok_pix = np.isfinite(pix_var)
    chi2 = np.zeros(len(px))
    coef = np.zeros((1,) + shifted.shape[1:])
    order_used = 0
    for it in range(n_iter + 1):
        if used.sum() < max(need, 2):
            raise PsfFitError(
                f"fit_pixel_psf: only {int(used.sum())} usable PSF star(s) left after rejection "
                f"(iteration {it}); the image may hold no stars or only saturated ones"
            )
        coef, order_used, _ = _solve_orders(shifted, pix_var, flux, used, px, py, centre, scale, order)
        design = poly_design((px - centre[0]) / scale[0], (py - centre[1]) / scale[1], order_used)
        model = np.einsum("nt,tij->nij", design, coef)
        model /= model.sum(axis=(1, 2), keepdims=True)
        # refit the fluxes against the model, then measure each star's chi²
        flux = (model * shifted).sum(axis=(1, 2)) / (model * model).sum(axis=(1, 2))
        resid = (shifted - flux[:, None, None] * model) ** 2 / pix_var
        chi2 = resid.sum(axis=(1, 2)) / ok_pix.sum(axis=(1, 2)).clip(1)
        med = np.median(chi2[used])
        mad = 1.4826 * np.median(np.abs(chi2[used] - med)) + 1e-12
        used = used & (chi2 < med + reject * mad) & (flux > 0)
    return coef, order_used, used, flux, chi2


def _weighted_fit(
    norm: np.ndarray, weight: np.ndarray, design: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-pixel weighted least squares of ``norm (n, s, s)`` on ``design (n, t)``.

    Returns the coefficient cube ``(t, s, s)``, the per-pixel coefficient variances and χ².
    """
    n, s, _ = norm.shape
    y = norm.reshape(n, -1)
    w = weight.reshape(n, -1)
    nmat = np.einsum("np,nt,nu->ptu", w, design, design)
    rhs = np.einsum("np,nt,np->pt", w, design, y)
    nmat += np.eye(design.shape[1])[None] * 1e-12 * np.trace(nmat, axis1=1, axis2=2)[:, None, None]
    cov = np.linalg.inv(nmat)
    c = np.einsum("ptu,pu->pt", cov, rhs)
    chi2 = float((w * (y - design @ c.T) ** 2).sum())
    cvar = np.diagonal(cov, axis1=1, axis2=2)
    return c.T.reshape(-1, s, s), cvar.T.reshape(-1, s, s), chi2


def _solve_orders(
    shifted: np.ndarray,
    pix_var: np.ndarray,
    flux: np.ndarray,
    used: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    centre: tuple[float, float],
    scale: tuple[float, float],
    max_order: int,
) -> tuple[np.ndarray, int, np.ndarray]:
    """Fit orders ``0..max_order`` and keep the highest one the data demand.

    Every pixel's polynomial is fitted independently with inverse-variance weights of the
    flux-normalized stamps; a higher order is kept only when its χ² drop exceeds what noise
    alone gives for the added parameters by 3σ (a χ² test): with few or faint stars a pixel
    basis otherwise fits noise and spurious variation leaks into the PSF fluxes.  Every order
    up to ``max_order`` is tried against the best so far.
    """
    norm = shifted / flux[:, None, None]
    weight = np.where(used[:, None, None], flux[:, None, None] ** 2 / pix_var, 0.0)
    u, v = (px - centre[0]) / scale[0], (py - centre[1]) / scale[1]
    best = _weighted_fit(norm, weight, poly_design(u, v, 0))
    best_order = 0
    n_pix = int((weight.sum(axis=0) > 0).sum())
    for order in range(1, max_order + 1):
        design = poly_design(u, v, order)
        if used.sum() < 2 * design.shape[1]:
            break
        trial = _weighted_fit(norm, weight, design)
        # χ² is scaled by its reduced value so that an imperfect noise model does not bias the test
        dof = max(int((weight > 0).sum()) - n_pix * design.shape[1], 1)
        red = max(trial[2] / dof, 1e-12)
        added = n_pix * (design.shape[1] - best[0].shape[0])
        # a failed order does not end the search: a field variation symmetric about the
        # optical axis (r²) shows up at order 2 with nothing at order 1
        if (best[2] - trial[2]) / red >= added + 3.0 * np.sqrt(2.0 * added):
            best, best_order = trial, order
    _log.debug("PSF spatial order %d kept (of %d)", best_order, max_order)
    return best[0], best_order, best[1]

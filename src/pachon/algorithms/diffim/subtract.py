"""Image differencing of a science exposure and a template on the same pixel grid.

:func:`subtract_images` runs the whole Alard–Lupton chain (choose the direction, find kernel
stars, fit the kernel and background, convolve, decorrelate, score) and returns a
:class:`DiffimResult`; ``algorithm="zogy"`` uses :mod:`pachon.algorithms.diffim.zogy` instead.
The template must already be warped onto the science grid
(:func:`pachon.algorithms.warp.warp_exposure`).

Bad input, per exposure:

* no template coverage (all template pixels ``NO_DATA``): :class:`~pachon.core.errors.NoWorkFound`;
* partial coverage or masked regions: those pixels are set to NaN and flagged ``NO_DATA`` in
  the difference (template defects grown by the kernel width);
* too few kernel stars: the kernel is fitted on the PSF models (``AlConfig.fallback="psf"``,
  logged as a warning; ``DiffimResult.kernel.from_psf`` is True) or
  :class:`~pachon.algorithms.diffim.al.KernelFitError` is raised (``fallback="raise"``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from pachon.algorithms.diffim import al as al_mod
from pachon.algorithms.diffim.basis import (
    delta_basis,
    gaussian_basis,
    kernel_half_width,
    laplacian_regularization,
    matching_sigmas,
)
from pachon.algorithms.diffim.cells import CellGrid, kernels_to_fourier
from pachon.algorithms.diffim.decorrelation import filtered_difference
from pachon.algorithms.diffim.mismatch import HEADER_KEY as MISMATCH_KEY
from pachon.algorithms.diffim.mismatch import template_mismatch
from pachon.core.errors import ConfigError, NoWorkFound
from pachon.core.exposure import Exposure
from pachon.core.psf import ImagePsf

__all__ = [
    "DiffimConfig", "DiffimResult", "clean_planes", "fill_rows", "residual_noise_ratio", "subtract_images",
]

_log = logging.getLogger(__name__)


@dataclass
class DiffimConfig:
    """Configuration of :func:`subtract_images`.

    Attributes
    ----------
    algorithm
        ``al`` (Alard–Lupton) or ``zogy``.
    al
        Alard–Lupton fit settings.
    decorrelate
        Apply the decorrelation afterburner (always on for ZOGY).
    cell
        Cell width (pixels) of the piecewise-constant kernel application.  512 wastes less
        FFT area on margins (4k x 4k pair: AL 4.2 s vs 6.0 s, ZOGY 2.0 s vs 3.0 s on one core,
        same residual noise) but is not the default: with it the PSF-flux pull width on the
        768x768 test pair rose from < 1.15 to 1.16 (not investigated).
    constant_decorrelation
        One decorrelation filter for the whole image (fast; the default) or one per cell.
        Applies to ``convolve_template`` and ZOGY, whose noise spectrum is bounded below by
        the science noise; with pre-convolution or a convolved science image the filter's
        high-frequency tail depends on each cell's kernel (a constant one mis-states the
        noise by ~20 %), so those modes always decorrelate per cell.
    """

    algorithm: str = "al"
    al: al_mod.AlConfig = field(default_factory=al_mod.AlConfig)
    decorrelate: bool = True
    cell: int = 256
    constant_decorrelation: bool = True


@dataclass
class DiffimResult:
    """A difference image and what made it.

    Attributes
    ----------
    difference
        The (decorrelated) difference: science flux units, its own PSF, white-noise variance.
    score
        Matched-filter S/N image (detection statistic), same shape.
    kernel
        The fitted kernel solution (None for ZOGY).
    mode
        Convolution direction used.
    """

    difference: Exposure
    score: np.ndarray
    kernel: al_mod.KernelSolution | None
    mode: str


def fill_rows(image: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """``image`` with its ``bad`` pixels interpolated linearly along rows from the nearest good ones.

    Pixels with good neighbours on one side only take that neighbour's value; rows with no good
    pixel become 0.  Vectorized over the runs of bad pixels (4k x 4k with two bad columns: 0.1 s).

    Why: the kernel convolution and the Fourier-space decorrelation are linear filters with
    long, oscillating tails; a bad pixel set to 0 inside a saturated core or a bleed trail is a
    step of tens of thousands of counts whose ringing (alternate columns at the Nyquist
    frequency, tens of sigma) reached 40 pixels beyond the grown mask and made false DIA
    sources at cell edges.  Interpolated from its edges, the hole continues the surrounding
    level (the bleed trail's and saturated core's rim are near saturation in both images).
    """
    out = image.astype(np.float32, copy=True)
    if not bad.any():
        return out
    h, w = bad.shape
    # runs of bad pixels along rows: a False column appended to each row keeps runs in their row
    padded = np.zeros((h, w + 1), np.int8)
    padded[:, :w] = bad
    step = np.diff(padded.ravel(), prepend=np.int8(0))
    starts = np.flatnonzero(step == 1)
    ends = np.flatnonzero(step == -1)  # exclusive, in the same row thanks to the padding
    row, c0 = np.divmod(starts, w + 1)
    c1 = ends - row * (w + 1)
    left = np.where(c0 > 0, out[row, np.maximum(c0 - 1, 0)], np.nan)
    right = np.where(c1 < w, out[row, np.minimum(c1, w - 1)], np.nan)
    left, right = np.where(np.isnan(left), right, left), np.where(np.isnan(right), left, right)
    length = c1 - c0
    run = np.repeat(np.arange(len(starts)), length)
    pos = np.arange(int(length.sum())) - np.repeat(np.cumsum(length) - length, length)
    frac = (pos + 1) / (length[run] + 1)
    values = left[run] + (right[run] - left[run]) * frac
    out[row[run], c0[run] + pos] = np.nan_to_num(values)
    return out


def clean_planes(
    exposure: Exposure, bad_planes: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image with bad/NaN pixels interpolated (:func:`fill_rows`), variance with them set to the
    median, and the bad map."""
    planes = [p for p in bad_planes if p in exposure.mask.planes]
    bad = exposure.mask.any(*planes) | ~np.isfinite(exposure.image) | ~np.isfinite(exposure.variance)
    bad |= exposure.variance <= 0
    if bad.all():
        raise NoWorkFound("no usable pixels (all masked, NaN or with zero variance)")
    img = fill_rows(np.where(bad, np.float32(0), exposure.image.astype(np.float32)), bad)
    step = max(1, int(math.sqrt(bad.size / 4e5)))  # the median of a subsample is enough
    sub = exposure.variance[::step, ::step][~bad[::step, ::step]]
    med = np.float32(np.median(sub) if sub.size else np.median(exposure.variance[~bad]))
    var = np.where(bad, med, exposure.variance.astype(np.float32))
    return img, var, bad


def residual_noise_ratio(
    difference: Exposure,
    *,
    exclude_planes: tuple[str, ...] = ("NO_DATA", "EDGE", "BAD", "SAT", "DETECTED", "DETECTED_NEGATIVE"),
) -> float:
    """Robust std of ``difference / sqrt(variance)`` over unmasked pixels (1 for a perfect subtraction)."""
    planes = [p for p in exclude_planes if p in difference.mask.planes]
    good = ~difference.mask.any(*planes) & np.isfinite(difference.image) & (difference.variance > 0)
    z = difference.image[good] / np.sqrt(difference.variance[good])
    q25, q75 = np.percentile(z, [25, 75])
    return float((q75 - q25) / 1.3489795)


def _psf_kernel(exposure: Exposure, name: str) -> np.ndarray:
    if exposure.psf is None:
        raise ConfigError(f"subtract_images: the {name} exposure has no PSF; characterize it first")
    b = exposure.bbox
    return exposure.psf.kernel_image(b.x0 + 0.5 * b.width, b.y0 + 0.5 * b.height)


def _sigma(kernel: np.ndarray) -> float:
    n = kernel.shape[0]
    yy, xx = np.mgrid[0:n, 0:n] - n // 2
    return math.sqrt(0.5 * float((kernel * (xx**2 + yy**2)).sum() / kernel.sum()))


def _grow(bad: np.ndarray, half: int) -> np.ndarray:
    from scipy.ndimage import maximum_filter

    if not bad.any():
        return np.zeros(bad.shape, bool)
    return maximum_filter(bad.astype(np.uint8), size=2 * half + 1, mode="constant") > 0


def _robust_poly_background(image: np.ndarray, good: np.ndarray, order: int) -> np.ndarray:
    """Polynomial of ``order`` fitted to ``image`` over ``good`` pixels with 3-sigma clipping."""
    h, w = image.shape
    step = max(1, int(math.sqrt(h * w / 2e5)))
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    v = image[::step, ::step]
    ok = good[::step, ::step] & np.isfinite(v)
    terms = al_mod.poly_terms((xs - 0.5 * w) / (0.5 * w), (ys - 0.5 * h) / (0.5 * h), order)
    coef = np.zeros(terms.shape[-1])
    for _ in range(4):
        coef = np.linalg.lstsq(terms[ok], v[ok], rcond=None)[0]
        r = v - terms @ coef
        sig = 1.4826 * np.median(np.abs(r[ok]))
        ok &= np.abs(r) < 3 * sig
    return al_mod.poly_grid(coef, order, (h, w), (0.5 * w, 0.5 * h), (0.5 * w, 0.5 * h))


def _consistent_flux(
    s_img: np.ndarray, t_img: np.ndarray, xs: np.ndarray, ys: np.ndarray, half: int
) -> tuple[np.ndarray, np.ndarray]:
    """Drop candidates whose science/template flux ratio is an outlier (variables, transients on stars)."""
    if len(xs) < 4:
        return xs, ys
    off = np.arange(-half, half + 1)
    idx = (ys[:, None, None] + off[None, :, None], xs[:, None, None] + off[None, None, :])
    ratio = s_img[idx].sum(axis=(1, 2)) / np.maximum(t_img[idx].sum(axis=(1, 2)), 1e-30)
    med = np.median(ratio)
    mad = 1.4826 * np.median(np.abs(ratio - med))
    keep = np.abs(ratio - med) <= 4.0 * max(mad, 0.02 * abs(med))
    return xs[keep], ys[keep]


def _fit(
    config: al_mod.AlConfig,
    mode: str,
    s_img: np.ndarray,
    s_var: np.ndarray,
    t_img: np.ndarray,
    t_var: np.ndarray,
    bad: np.ndarray,
    psf_s: np.ndarray,
    psf_t: np.ndarray,
    flux_scale: float,
    scale_known: bool = False,
) -> al_mod.KernelSolution:
    if mode == "preconvolve":
        from scipy.signal import fftconvolve

        target = fftconvolve(s_img, psf_s[::-1, ::-1], mode="same")
        target_var = s_var * float((psf_s**2).sum())
        psf_target = fftconvolve(psf_s, psf_s[::-1, ::-1], mode="full")
        ref, ref_var, psf_ref = t_img, t_var, psf_t
    elif mode == "convolve_template":
        target, target_var, psf_target, ref, ref_var, psf_ref = s_img, s_var, psf_s, t_img, t_var, psf_t
    else:
        target, target_var, psf_target, ref, ref_var, psf_ref = t_img, t_var, psf_t, s_img, s_var, psf_s
        flux_scale = 1.0 / flux_scale
    sig_t, sig_r = _sigma(psf_target), _sigma(psf_ref)
    hk = kernel_half_width(sig_t, sig_r)
    if config.basis == "delta":
        basis, reg = delta_basis(hk), None
        reg = laplacian_regularization(basis)
    else:
        basis = gaussian_basis(hk, matching_sigmas(sig_t, sig_r), config.degrees)
        reg = None
    hs = max(hk, math.ceil(3.0 * sig_t))
    xs, ys = al_mod.find_kernel_candidates(
        t_img,
        t_var,
        bad,
        _sigma(psf_t),
        hs + hk,
        snr_min=config.snr_min,
        max_stars=config.max_stars,
        isolation=hs,
    )
    xs, ys = _consistent_flux(s_img, t_img, xs, ys, max(2, math.ceil(2 * _sigma(psf_s))))
    try:
        fixed = flux_scale if (scale_known and config.scale_from_calibration) else None
        return al_mod.fit_kernel(
            target, ref, target_var, ref_var, xs, ys, basis, config,
            mode=mode, stamp_half=hs, regularizer=reg, kernel_sum=fixed,
        )
    except al_mod.KernelFitError as exc:
        if config.fallback == "raise":
            raise al_mod.KernelFitError(
                f"{exc}; lower AlConfig.snr_min/min_stars or use fallback='psf'"
            ) from exc
        _log.warning("kernel fit failed (%s): falling back to the PSF models", exc)
        return al_mod.fit_kernel_on_psfs(
            psf_target,
            psf_ref,
            basis,
            s_img.shape,
            mode=mode,
            flux_scale=flux_scale,
            regularizer=reg,
            regularization=config.regularization,
        )


def subtract_images(
    science: Exposure, template: Exposure, config: DiffimConfig | None = None
) -> DiffimResult:
    """Difference ``science - template`` (PSF-matched, decorrelated) with its detection score.

    Parameters
    ----------
    science
        Background-subtracted science exposure with PSF (and WCS for measurement).
    template
        Template warped onto the science pixel grid, with its PSF.
    config
        Settings; defaults work for well-sampled images.

    Raises
    ------
    ConfigError
        Grids differ, PSF missing, bad configuration.
    NoWorkFound
        The template covers none of the science pixels.
    KernelFitError
        Too few kernel stars with ``fallback="raise"``.
    """
    config = config or DiffimConfig()
    config.al.validate()
    if science.bbox != template.bbox:
        raise ConfigError(
            f"subtract_images: template covers {template.bbox}, science {science.bbox}; "
            "warp the template onto the science grid first"
        )
    if "NO_DATA" in template.mask.planes and template.mask.get("NO_DATA").all():
        raise NoWorkFound(f"no template coverage for the science exposure {science.bbox}")
    planes = config.al.bad_planes
    s_img, s_var, s_bad = clean_planes(science, planes)
    t_img, t_var, t_bad = clean_planes(template, planes)
    psf_s, psf_t = _psf_kernel(science, "science"), _psf_kernel(template, "template")
    cal_s, cal_t = science.photo_calib, template.photo_calib
    flux_scale = (cal_t.calibration_mean / cal_s.calibration_mean) if (cal_s and cal_t) else 1.0
    bad = s_bad | t_bad
    if config.algorithm == "zogy":
        from pachon.algorithms.diffim.zogy import zogy_filters

        mode, sol = "zogy", None
        hk = max(psf_s.shape[0], psf_t.shape[0]) // 2
    elif config.algorithm == "al":
        mode = al_mod.choose_mode(config.al.mode, _sigma(psf_s), _sigma(psf_t))
        sol = _fit(config.al, mode, s_img, s_var, t_img, t_var, bad, psf_s, psf_t, flux_scale,
                   scale_known=bool(cal_s and cal_t))
        hk = sol.half
    else:
        raise ConfigError(f"DiffimConfig.algorithm must be 'al' or 'zogy', got {config.algorithm!r}")
    grid = CellGrid.make(
        s_img.shape, margin=2 * hk + max(psf_s.shape[0], psf_t.shape[0]) // 2 + 8, cell=config.cell
    )
    gx, gy = grid.centres()
    s2 = grid.cell_medians(s_var, ~s_bad)
    t2 = grid.cell_medians(t_var, ~t_bad)
    h, w = s_img.shape
    if sol is None:
        a_hat, b_hat, b0 = zogy_filters(psf_s, psf_t, grid.size, flux_scale)
        bg = np.zeros((h, w), np.float32)
        b0_map = np.float32(b0)
    else:
        k_hat = kernels_to_fourier(sol.kernels(gx, gy), grid.size).astype(np.complex64)
        k0 = sol.kernel_sum(gx, gy)[..., None, None]
        if mode == "convolve_science":

            def a_hat(r: slice) -> np.ndarray:
                return k_hat[r] / k0[r]

            def b_hat(r: slice) -> np.ndarray:
                return np.ones_like(k_hat[r]) / k0[r]

            ksum = sol.kernel_sum_image((h, w))
            b0_map = 1.0 / ksum
            bg = -sol.background_image((h, w)) / ksum
        else:
            pa = np.conj(kernels_to_fourier(psf_s, grid.size)) if mode == "preconvolve" else np.ones(1)

            def a_hat(r: slice) -> np.ndarray:
                return pa

            def b_hat(r: slice) -> np.ndarray:
                return k_hat[r]

            b0_map = sol.kernel_sum_image((h, w))
            bg = sol.background_image((h, w))
    var_d = s_var + b0_map**2 * t_var
    prod = filtered_difference(
        s_img,
        t_img,
        var_d,
        grid,
        a_hat,
        b_hat,
        psf_s,
        s2,
        t2,
        decorrelate=config.decorrelate or sol is None,
        constant=config.constant_decorrelation and mode in ("convolve_template", "zogy"),
    )
    if sol is None and config.al.background_order >= 0:  # ZOGY: fit the background difference on D
        bg = _robust_poly_background(prod.difference, ~_grow(bad, hk), config.al.background_order)
    diff = prod.difference - bg
    # the background is smooth and the difference PSF sums to 1: its score is bg / sigma_score
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(
            prod.score != 0, prod.score - bg / np.sqrt(prod.variance * float((prod.psf_kernel**2).sum())), 0.0
        )
    edge = max(hk, prod.psf_kernel.shape[0] // 2)
    mask = science.mask.copy()
    tmask = template.mask
    grown_bad = _grow(t_bad, hk) | s_bad
    for name in ("BAD", "SAT", "CR", "SUSPECT", "NO_DATA"):
        if name in tmask.planes and name in mask.planes:
            plane = tmask.get(name)
            if plane.any():
                mask.set(name, _grow(plane, hk))
    mask.set("NO_DATA", ~np.isfinite(science.image) | _grow(~np.isfinite(template.image), hk))
    border = np.zeros((h, w), bool)
    border[:edge] = border[-edge:] = True
    border[:, :edge] = border[:, -edge:] = True
    mask.set("EDGE", border)
    diff = np.where(grown_bad, np.nan, diff)
    score = np.where(grown_bad | border, 0.0, score)
    out = Exposure(
        diff.astype(np.float32),
        mask,
        prod.variance.astype(np.float32),
        wcs=science.wcs,
        psf=ImagePsf(prod.psf_kernel),
        photo_calib=science.photo_calib,
        visit_info=science.visit_info,
        metadata=science.metadata.copy(),
        xy0=science.xy0,
    )
    if sol is not None and not sol.from_psf and len(sol.star_xy):
        # template-to-science flux scale: the calibrations' ratio, else the fitted kernel sum
        k_sum = float(np.ravel(sol.kernel_sum(np.array([0.5 * w]), np.array([0.5 * h])))[0])
        scale = flux_scale if (cal_s and cal_t) else (1.0 / k_sum if mode == "convolve_science" else k_sum)
        est = template_mismatch(out.image, out.variance, prod.psf_kernel, t_img, t_var, psf_t,
                                sol.star_xy[:, 0], sol.star_xy[:, 1], scale)
        out.metadata[MISMATCH_KEY] = float(est.fraction)
    return DiffimResult(out, score, sol, mode)

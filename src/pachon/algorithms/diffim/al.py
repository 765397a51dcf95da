"""Alard–Lupton PSF matching: a spatially varying kernel fitted on stamps around stars.

The model, on stamps around good isolated stars, is ``target = K(x, y) * reference + b(x, y)``
where ``K = sum_j a_j(x, y) basis_j`` (see :mod:`pachon.algorithms.diffim.basis`), the
coefficients ``a_j`` are polynomials of order ``spatial_order`` in the position of the star, and
``b`` is a polynomial background difference of order ``background_order`` fitted at the same
time.  The weighted linear least-squares problem is solved from its normal equations with a
small ridge (Gaussian basis) or Laplacian (delta basis) regularization; stars whose residual
``chi^2`` is an outlier (variables, blends, cosmic rays) are rejected and the fit is repeated.

Which image is the target (see :func:`choose_mode`):

* ``convolve_template``: target = science, reference = template (template PSF narrower);
* ``convolve_science``: target = template, reference = science;
* ``preconvolve``: target = science correlated with its own PSF, reference = template — the
  science image's PSF is then always wider, so this works whatever the template's seeing.

With too few stars the kernel is fitted on the two PSF models instead (``fallback="psf"``,
logged) or :class:`KernelFitError` is raised (``fallback="raise"``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from pachon.core.errors import AlgorithmError, ConfigError

__all__ = [
    "AlConfig",
    "KernelFitError",
    "KernelSolution",
    "choose_mode",
    "find_kernel_candidates",
    "fit_kernel",
    "fit_kernel_on_psfs",
    "poly_grid",
    "poly_terms",
]

_log = logging.getLogger(__name__)

MODES = ("auto", "convolve_template", "convolve_science", "preconvolve")


class KernelFitError(AlgorithmError):
    """The PSF-matching kernel cannot be fitted (too few usable stars, singular system)."""


@dataclass
class AlConfig:
    """Configuration of the Alard–Lupton fit.

    Attributes
    ----------
    mode
        ``auto``, ``convolve_template``, ``convolve_science`` or ``preconvolve``.
    basis
        ``gaussian`` (Gaussian times polynomials) or ``delta`` (one function per pixel).
    degrees
        Polynomial degree of each of the three Gaussian widths.
    spatial_order
        Polynomial order of the kernel's spatial variation; None chooses it by leave-one-out
        cross-validation among the orders the star count supports (at least 4 stars per
        spatial term, at most 2): see :func:`_choose_spatial_order`.
    background_order
        Polynomial order of the background difference (-1: none).
    snr_min, max_stars, min_stars
        Kernel candidates: minimum matched-filter S/N in the reference, how many to use, and
        the minimum below which ``fallback`` applies.
    regularization
        Ridge strength (relative to the mean diagonal) for the Gaussian basis; Laplacian
        penalty strength for the delta basis.
    clip_sigma, n_iter
        Star rejection threshold (robust sigmas of the per-star statistics) and iterations;
        see :func:`_fit_with_rejection` (leave-one-out cross-validation).
    model_error
        Fractional model error added to the variance when judging a star's ``chi^2``.
    fallback
        ``psf`` (fit the kernel on the PSF models when stars are too few) or ``raise``.
    scale_from_calibration
        When both exposures have a ``PhotoCalib``, fix the kernel sum (the photometric scale)
        to the ratio of their calibrations and fit the kernel's shape only.  Fitted freely, the
        sum is only constrained by stamps a few PSF widths across: with Kolmogorov PSFs of
        different seeing (their encircled energies differ beyond the stamp) it came out 1–6 %
        low on the simulated AP survey, leaving +2 % of every star's flux in the difference
        (false sources on bright stars, biased light curves of bright variables), while the
        calibration ratio agreed with large-aperture star flux ratios to 0.4 %.
    """

    mode: str = "auto"
    basis: str = "gaussian"
    degrees: tuple[int, int, int] = (4, 2, 2)
    spatial_order: int | None = None
    background_order: int = 1
    snr_min: float = 20.0
    max_stars: int = 150
    min_stars: int = 4
    regularization: float = 1e-7
    clip_sigma: float = 3.0
    n_iter: int = 3
    model_error: float = 0.03
    fallback: str = "psf"
    scale_from_calibration: bool = True
    bad_planes: tuple[str, ...] = ("BAD", "SAT", "NO_DATA", "CR", "EDGE", "SUSPECT")

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the bad field."""
        if self.mode not in MODES:
            raise ConfigError(f"AlConfig.mode must be one of {MODES}, got {self.mode!r}")
        if self.basis not in ("gaussian", "delta"):
            raise ConfigError(f"AlConfig.basis must be 'gaussian' or 'delta', got {self.basis!r}")
        if self.fallback not in ("psf", "raise"):
            raise ConfigError(f"AlConfig.fallback must be 'psf' or 'raise', got {self.fallback!r}")
        if self.min_stars < 1 or self.max_stars < self.min_stars:
            raise ConfigError("AlConfig needs 1 <= min_stars <= max_stars")


def poly_terms(u: np.ndarray, v: np.ndarray, order: int) -> np.ndarray:
    """Monomials ``u^a v^b`` with ``a + b <= order``, stacked on the last axis."""
    if order < 0:
        return np.zeros(np.shape(u) + (0,))
    return np.stack([u ** (t - i) * v**i for t in range(order + 1) for i in range(t + 1)], axis=-1)


@dataclass
class KernelSolution:
    """A fitted, spatially varying matching kernel and background difference.

    ``kernels(x, y)`` evaluates the kernel at array positions; ``background(x, y)`` the
    background difference (in target units).
    """

    mode: str
    basis: np.ndarray
    coefficients: np.ndarray  # (n_spatial_terms, n_basis)
    spatial_order: int
    background_coefficients: np.ndarray
    background_order: int
    centre: tuple[float, float]
    scale: tuple[float, float]
    n_stars: int = 0
    star_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    chi2: float = float("nan")
    from_psf: bool = False

    @property
    def half(self) -> int:
        """Half width of the kernel images."""
        return self.basis.shape[-1] // 2

    def _uv(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (np.asarray(x, float) - self.centre[0]) / self.scale[0], (
            np.asarray(y, float) - self.centre[1]
        ) / self.scale[1]

    def basis_coefficients(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Coefficients of every basis function at positions ``(x, y)``: shape ``(..., n_basis)``."""
        return poly_terms(*self._uv(x, y), self.spatial_order) @ self.coefficients

    def kernels(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Kernel images at positions ``(x, y)`` (array pixels): shape ``(..., k, k)``."""
        return np.tensordot(self.basis_coefficients(x, y), self.basis, axes=(-1, 0))

    def kernel_sum(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Photometric scale (kernel sum) at ``(x, y)``."""
        return self.basis_coefficients(x, y)[..., 0]

    def background(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Background difference at ``(x, y)``."""
        return poly_terms(*self._uv(x, y), self.background_order) @ self.background_coefficients

    def kernel_sum_image(self, shape: tuple[int, int]) -> np.ndarray:
        """Kernel sum at every pixel of an image of ``shape`` (float32, separable evaluation)."""
        return poly_grid(self.coefficients[:, 0], self.spatial_order, shape, self.centre, self.scale)

    def background_image(self, shape: tuple[int, int]) -> np.ndarray:
        """Background difference at every pixel of an image of ``shape`` (zeros when not fitted)."""
        if self.background_order < 0:
            return np.zeros(shape, np.float32)
        return poly_grid(self.background_coefficients, self.background_order, shape, self.centre, self.scale)


def poly_grid(
    coefficients: np.ndarray,
    order: int,
    shape: tuple[int, int],
    centre: tuple[float, float],
    scale: tuple[float, float],
) -> np.ndarray:
    """Evaluate ``sum_t c_t u^a v^b`` (the :func:`poly_terms` ordering) on a pixel grid.

    ``u = (x - centre_x) / scale_x`` and ``v = (y - centre_y) / scale_y``; the polynomial is
    separable by monomial, so the grid is one matrix product ``V C U^T`` (float32 result):
    no per-pixel monomial arrays.
    """
    h, w = shape
    u = (np.arange(w) - centre[0]) / scale[0]
    v = (np.arange(h) - centre[1]) / scale[1]
    cmat = np.zeros((order + 1, order + 1))  # cmat[b, a]: coefficient of u^a v^b
    t = 0
    for total in range(order + 1):
        for i in range(total + 1):
            cmat[i, total - i] = coefficients[t]
            t += 1
    vp = v[:, None] ** np.arange(order + 1)
    up = u[:, None] ** np.arange(order + 1)
    return ((vp @ cmat) @ up.T).astype(np.float32)


def choose_mode(mode: str, sigma_science: float, sigma_template: float) -> str:
    """Resolve ``auto``: convolve the template when its PSF is narrower, else pre-convolve."""
    if mode != "auto":
        return mode
    return "convolve_template" if sigma_template <= sigma_science else "preconvolve"


def _stamps(array: np.ndarray, xs: np.ndarray, ys: np.ndarray, half: int) -> np.ndarray:
    off = np.arange(-half, half + 1)
    return array[ys[:, None, None] + off[None, :, None], xs[:, None, None] + off[None, None, :]]


def _convolve_valid(stamps: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """Convolve every stamp ``(n, L, L)`` with every kernel ``(m, k, k)``: ``(n, m, L-k+1, L-k+1)``."""
    from pachon.algorithms.diffim.cells import kernels_to_fourier

    n, size = stamps.shape[0], stamps.shape[-1]
    hk = kernels.shape[-1] // 2
    from scipy import fft

    fs = fft.rfft2(stamps, workers=-1)
    fk = kernels_to_fourier(kernels, size)
    out = fft.irfft2(fs[:, None] * fk[None], s=(size, size), workers=-1)
    del n
    return out[..., hk : size - hk, hk : size - hk]


def find_kernel_candidates(
    reference: np.ndarray,
    reference_var: np.ndarray,
    bad: np.ndarray,
    sigma: float,
    half: int,
    *,
    snr_min: float,
    max_stars: int,
    isolation: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Isolated, unmasked, bright peaks of ``reference`` (array pixels ``(x, y)``), brightest first.

    A peak is kept when it is the maximum of its ``(2 isolation + 1)^2`` window of the
    PSF-smoothed image (``isolation`` defaults to ``half``), its matched-filter S/N exceeds
    ``snr_min``, no pixel of its ``(2 half + 1)^2`` stamp is ``bad``, and it lies at least
    ``half`` pixels from the border.
    """
    from scipy.ndimage import gaussian_filter

    img = np.where(bad, np.float32(0), np.nan_to_num(reference).astype(np.float32))
    smooth = gaussian_filter(img, sigma, mode="constant")
    step = max(1, int(math.sqrt(bad.size / 4e5)))  # the median of a subsample is enough
    sub_var, sub_bad = reference_var[::step, ::step], bad[::step, ::step]
    noise = math.sqrt(float(np.median(sub_var[~sub_bad]))) / (2.0 * math.sqrt(math.pi) * sigma)
    iso = half if isolation is None else isolation
    above = smooth > snr_min * noise
    above[:half] = above[-half:] = False
    above[:, :half] = above[:, -half:] = False
    ys, xs = np.nonzero(above)
    padded = np.pad(smooth, iso)
    bad_pad = np.pad(bad, half) if bad.any() else None
    keep = np.ones(len(xs), bool)
    off_iso, off_bad = np.arange(2 * iso + 1), np.arange(2 * half + 1)
    # 3x3 local maxima first (cheap), then the exact isolation and bad-pixel tests there only
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            keep &= smooth[ys, xs] >= padded[ys + iso + dy, xs + iso + dx]
    ys, xs = ys[keep], xs[keep]
    keep = np.ones(len(xs), bool)
    for c0 in range(0, len(xs), 2000):
        cy, cx = ys[c0 : c0 + 2000], xs[c0 : c0 + 2000]
        win = padded[cy[:, None, None] + off_iso[None, :, None], cx[:, None, None] + off_iso[None, None, :]]
        keep[c0 : c0 + 2000] = win.max(axis=(1, 2)) <= smooth[cy, cx]
        if bad_pad is not None:
            stamp = bad_pad[
                cy[:, None, None] + off_bad[None, :, None], cx[:, None, None] + off_bad[None, None, :]
            ]
            keep[c0 : c0 + 2000] &= ~stamp.any(axis=(1, 2))
    ys, xs = ys[keep], xs[keep]
    snr = smooth[ys, xs] / noise
    order = np.argsort(-snr, kind="stable")
    # the very brightest are often saturated or non-linear in one image: skip the top 2 %
    skip = int(0.02 * len(order))
    order = order[skip : skip + max_stars]
    return xs[order], ys[order]


def _auto_spatial_order(n_stars: int, requested: int | None) -> int:
    """The highest spatial order the star count supports (at least 4 stars per term, at most 2)."""
    if requested is not None:
        return requested
    for order in (2, 1):
        if n_stars >= 4 * (order + 1) * (order + 2) // 2:
            return order
    return 0


def _order_columns(nb: int, nt_max: int, n_bg: int, order: int) -> np.ndarray:
    """Design-matrix columns of spatial ``order`` (kernel columns are ``j * nt_max + t``, then background)."""
    nt = (order + 1) * (order + 2) // 2
    kern = (np.arange(nb)[:, None] * nt_max + np.arange(nt)[None, :]).ravel()
    return np.concatenate([kern, nb * nt_max + np.arange(n_bg)])


def _loo_chi2(
    per_star_m: np.ndarray, per_star_b: np.ndarray, xw: np.ndarray, yw: np.ndarray, reg: np.ndarray,
    keep: np.ndarray, strength: float,
) -> float:
    """Summed leave-one-out ``chi^2`` of the kept stars: each star predicted by the others' kernel."""
    idx = np.flatnonzero(keep)
    m_tot, b_tot = per_star_m[idx].sum(axis=0), per_star_b[idx].sum(axis=0)
    loo = _solve(m_tot[None] - per_star_m[idx], b_tot[None] - per_star_b[idx], reg, strength)
    return float(((yw[idx] - np.einsum("npa,na->np", xw[idx], loo)) ** 2).sum())


def _choose_spatial_order(
    per_star_m: np.ndarray, per_star_b: np.ndarray, xw: np.ndarray, yw: np.ndarray, reg: np.ndarray,
    nb: int, nt_max: int, max_order: int, config: AlConfig,
) -> int:
    """Spatial order (0 .. ``max_order``) that best predicts stars left out of the fit.

    The stars are first cleaned by a constant-kernel fit with rejection (variables, blends);
    on those, each order's summed leave-one-out ``chi^2`` is computed and the smallest wins.
    A higher order only wins when the kernel really varies: with a few dozen stars an order-2
    kernel (6 x the parameters) otherwise fits their noise and leaves residuals of several
    per cent on stars away from the kernel stars.
    """
    n_bg = per_star_m.shape[-1] - nb * nt_max
    c0 = _order_columns(nb, nt_max, n_bg, 0)
    sub = np.ix_(c0, c0)
    keep, _, _ = _fit_with_rejection(per_star_m[:, sub[0], sub[1]], per_star_b[:, c0], xw[..., c0], yw,
                                     reg[sub], config)
    scores = []
    for order in range(max_order + 1):
        c = _order_columns(nb, nt_max, n_bg, order)
        s = np.ix_(c, c)
        try:
            scores.append(_loo_chi2(per_star_m[:, s[0], s[1]], per_star_b[:, c], xw[..., c], yw, reg[s], keep,
                                    config.regularization))
        except np.linalg.LinAlgError:
            scores.append(np.inf)
    best = int(np.argmin(scores))
    _log.debug("AL spatial order by cross-validation: loo chi2 %s -> order %d", np.round(scores, 1), best)
    return best


def fit_kernel(
    target: np.ndarray,
    reference: np.ndarray,
    target_var: np.ndarray,
    reference_var: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    basis: np.ndarray,
    config: AlConfig,
    *,
    mode: str,
    stamp_half: int,
    regularizer: np.ndarray | None = None,
    kernel_sum: float | None = None,
) -> KernelSolution:
    """Fit ``target = K * reference + b`` on stamps centred on ``(xs, ys)`` (array pixels).

    ``kernel_sum`` fixes the photometric scale (the sum of ``K``, constant over the image) and
    fits the kernel's shape only; None fits the scale too.

    Raises
    ------
    KernelFitError
        Fewer than ``config.min_stars`` stars survive the rejection, or a singular system.

    Notes
    -----
    The per-star normal equations and the leave-one-out solves are batches of small
    matrices: they run with one BLAS thread (threaded BLAS on small matrices is many times
    slower, worst on busy cores).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_kernel(
            target,
            reference,
            target_var,
            reference_var,
            xs,
            ys,
            basis,
            config,
            mode=mode,
            stamp_half=stamp_half,
            regularizer=regularizer,
            kernel_sum=kernel_sum,
        )


def _fit_kernel(
    target: np.ndarray,
    reference: np.ndarray,
    target_var: np.ndarray,
    reference_var: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    basis: np.ndarray,
    config: AlConfig,
    *,
    mode: str,
    stamp_half: int,
    regularizer: np.ndarray | None,
    kernel_sum: float | None = None,
) -> KernelSolution:
    h, w = target.shape
    hk = basis.shape[-1] // 2
    hs = stamp_half
    ok = (xs >= hs + hk) & (xs < w - hs - hk) & (ys >= hs + hk) & (ys < h - hs - hk)
    xs, ys = xs[ok], ys[ok]
    if len(xs) < config.min_stars:
        raise KernelFitError(f"only {len(xs)} kernel stars inside the image (need {config.min_stars})")
    tg = _stamps(target, xs, ys, hs)
    tv = _stamps(target_var, xs, ys, hs)
    rf = _stamps(reference, xs, ys, hs + hk)
    rv = _stamps(reference_var, xs, ys, hs)
    conv = _convolve_valid(rf, basis)  # (n, nb, 2hs+1, 2hs+1)
    n, nb = conv.shape[:2]
    npix = (2 * hs + 1) ** 2
    centre = (0.5 * (w - 1), 0.5 * (h - 1))
    scale = (0.5 * w, 0.5 * h)
    order = _auto_spatial_order(n, config.spatial_order)
    su, sv = (xs - centre[0]) / scale[0], (ys - centre[1]) / scale[1]
    spatial = poly_terms(su, sv, order)  # (n, nt)
    nt = spatial.shape[1]
    off = np.arange(-hs, hs + 1)
    pu = (xs[:, None, None] + off[None, None, :] - centre[0]) / scale[0]
    pv = (ys[:, None, None] + off[None, :, None] - centre[1]) / scale[1]
    bg = poly_terms(pu, pv, config.background_order).reshape(n, npix, -1)
    # with a fixed kernel sum, the first basis function (the only one with a non-zero sum) has the
    # fixed coefficient and leaves the fit: the others (sum 0) shape the kernel
    first = 0 if kernel_sum is None else 1
    nf = nb - first
    free = conv[:, first:].reshape(n, nf, npix)
    X = np.concatenate([np.einsum("njp,nt->npjt", free, spatial).reshape(n, npix, nf * nt), bg], axis=2)
    # weights: science-side variance plus the (kernel-sum ~ 1) reference variance
    var = np.maximum((tv + rv).reshape(n, npix), 1e-30)
    wgt = 1.0 / var
    sw = np.sqrt(wgt)
    Xw = X * sw[..., None]
    y = tg.reshape(n, npix)
    if kernel_sum is not None:
        y = y - kernel_sum * conv[:, 0].reshape(n, npix)
    yw = y * sw
    per_star_m = np.matmul(Xw.transpose(0, 2, 1), Xw)
    per_star_b = np.einsum("npa,np->na", Xw, yw)
    npar = X.shape[2]
    reg = np.eye(npar)
    if regularizer is not None:
        reg = np.zeros((npar, npar))
        reg[: nf * nt, : nf * nt] = np.kron(regularizer[first:, first:], np.eye(nt))
    if config.spatial_order is None and order > 0:
        chosen = _choose_spatial_order(per_star_m, per_star_b, Xw, yw, reg, nf, nt, order, config)
        if chosen < order:
            cols = _order_columns(nf, nt, X.shape[2] - nf * nt, chosen)
            sub = np.ix_(cols, cols)
            per_star_m, per_star_b = per_star_m[:, sub[0], sub[1]], per_star_b[:, cols]
            Xw, reg = Xw[..., cols], reg[sub]
            order, nt = chosen, (chosen + 1) * (chosen + 2) // 2
    keep, coef, chi2 = _fit_with_rejection(per_star_m, per_star_b, Xw, yw, reg, config)
    _log.info(
        "AL kernel (%s): %d/%d stars, %d basis x %d spatial terms, mean chi2/pix %.2f",
        mode,
        int(keep.sum()),
        n,
        nb,
        nt,
        float(chi2[keep].mean()),
    )
    coefficients = np.zeros((nt, nb))
    coefficients[:, first:] = coef[: nf * nt].reshape(nf, nt).T
    if kernel_sum is not None:
        coefficients[0, 0] = kernel_sum
    return KernelSolution(
        mode=mode,
        basis=basis,
        coefficients=coefficients,
        spatial_order=order,
        background_coefficients=coef[nf * nt :].copy(),
        background_order=config.background_order,
        centre=centre,
        scale=scale,
        n_stars=int(keep.sum()),
        star_xy=np.stack([xs[keep], ys[keep]], axis=1),
        chi2=float(chi2[keep].mean()),
    )


def _solve(m: np.ndarray, b: np.ndarray, reg: np.ndarray, strength: float) -> np.ndarray:
    """Solve ``(m + lam reg) c = b`` (stacked on leading axes) with ``lam`` relative to ``tr(m)``."""
    lam = strength * np.trace(m, axis1=-2, axis2=-1) / m.shape[-1]
    return np.linalg.solve(m + lam[..., None, None] * reg, b[..., None])[..., 0]


def _fit_with_rejection(
    per_star_m: np.ndarray,
    per_star_b: np.ndarray,
    xw: np.ndarray,
    yw: np.ndarray,
    reg: np.ndarray,
    config: AlConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joint fit over the kept stars, rejecting outliers by leave-one-out cross-validation.

    For every kept star the kernel is refitted without it and its ``chi^2`` under that kernel
    (``chi2_loo``) is compared with its ``chi^2`` under the joint fit.  A star that dominates
    the fit but disagrees with the others (a bright variable, a moving star, a DCR dipole, a
    blend) has ``chi2_loo / chi2 >> 1`` even when its own ``chi2`` is small; a faint variable
    or cosmic ray shows as a large ``chi2``, computed with a fractional model error
    ``model_error`` added to the variance (bright stars carry some PSF-model mismatch that is
    not a reason to reject them).  Both are clipped at ``clip_sigma`` robust sigmas (with
    floors of 1 on the ratio, which a star of high leverage reaches without being wrong, and
    of a tenth of the median on ``chi2``) and the fit is repeated, never below ``min_stars``.
    """
    n = len(per_star_m)
    keep = np.ones(n, bool)
    coef = np.zeros(per_star_m.shape[-1])
    chi2 = np.zeros(n)
    for it in range(config.n_iter + 1):
        if keep.sum() < config.min_stars:
            raise KernelFitError(
                f"only {int(keep.sum())} kernel stars survive the rejection (need {config.min_stars})"
            )
        m_tot, b_tot = per_star_m[keep].sum(axis=0), per_star_b[keep].sum(axis=0)
        try:
            coef = _solve(m_tot, b_tot, reg, config.regularization)
            idx = np.flatnonzero(keep)
            loo = _solve(
                m_tot[None] - per_star_m[idx], b_tot[None] - per_star_b[idx], reg, config.regularization
            )
        except np.linalg.LinAlgError as exc:
            raise KernelFitError(f"singular kernel system with {int(keep.sum())} stars: {exc}") from exc
        model = xw @ coef
        chi2 = ((yw - model) ** 2).mean(axis=1)
        if it == config.n_iter:
            break
        chi2_loo = np.full(n, np.inf)
        chi2_loo[idx] = ((yw[idx] - np.einsum("npa,na->np", xw[idx], loo)) ** 2).mean(axis=1)
        ratio = chi2_loo / np.maximum(chi2, 1e-30)
        chi2_sys = ((yw - model) ** 2 / (1.0 + (config.model_error * model) ** 2)).mean(axis=1)
        bad = np.zeros(n, bool)
        for stat, floor in ((ratio, 1.0), (chi2_sys, None)):
            med = float(np.median(stat[keep]))
            mad = 1.4826 * float(np.median(np.abs(stat[keep] - med)))
            bad |= stat > med + config.clip_sigma * max(mad, floor if floor is not None else 0.1 * med)
        _log.debug(
            "AL iteration %d: chi2 %s, loo/chi2 %s", it, np.round(chi2[keep], 2), np.round(ratio[keep], 2)
        )
        new_keep = keep & ~bad
        if new_keep.sum() == keep.sum():
            break
        if new_keep.sum() < config.min_stars:  # keep the best min_stars, then stop rejecting
            best = np.argsort(np.where(keep, ratio, np.inf), kind="stable")[: config.min_stars]
            keep = np.zeros(n, bool)
            keep[best] = True
            continue
        keep = new_keep
    return keep, coef, chi2


def fit_kernel_on_psfs(
    target_psf: np.ndarray,
    reference_psf: np.ndarray,
    basis: np.ndarray,
    shape: tuple[int, int],
    *,
    mode: str,
    flux_scale: float = 1.0,
    regularizer: np.ndarray | None = None,
    regularization: float = 1e-7,
) -> KernelSolution:
    """Kernel ``K`` with ``K * reference_psf ~= flux_scale * target_psf`` (noise-free, constant in space).

    The fallback when the image has too few stars for :func:`fit_kernel`.
    """
    hk = basis.shape[-1] // 2
    hs = max(target_psf.shape[0], reference_psf.shape[0]) // 2 + 1
    size_r = 2 * (hs + hk) + 1
    ref = np.zeros((size_r, size_r))
    o = (size_r - reference_psf.shape[0]) // 2
    ref[o : o + reference_psf.shape[0], o : o + reference_psf.shape[0]] = reference_psf
    tgt = np.zeros((2 * hs + 1, 2 * hs + 1))
    o = (2 * hs + 1 - target_psf.shape[0]) // 2
    tgt[o : o + target_psf.shape[0], o : o + target_psf.shape[0]] = target_psf * flux_scale
    conv = _convolve_valid(ref[None], basis)[0].reshape(len(basis), -1)
    M = conv @ conv.T
    lam = regularization * float(np.trace(M)) / len(basis)
    M += lam * (regularizer if regularizer is not None else np.eye(len(basis)))
    coef = np.linalg.solve(M, conv @ tgt.ravel())
    h, w = shape
    _log.warning("AL kernel fitted on the PSF models (too few stars in the image)")
    return KernelSolution(
        mode=mode,
        basis=basis,
        coefficients=coef[None, :],
        spatial_order=0,
        background_coefficients=np.zeros(0),
        background_order=-1,
        centre=(0.5 * (w - 1), 0.5 * (h - 1)),
        scale=(0.5 * w, 0.5 * h),
        from_psf=True,
    )

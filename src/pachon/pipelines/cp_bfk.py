"""Brighter-fatter kernel tasks: from flat-pair covariances (the product) and from star sizes (a check).

``cpBfk`` (Rubin's method, Coulton et al. 2018, Astier et al. 2019) reads the ``ptc`` of the
detector, whose flat-pair covariances ``C_ij(mu)`` (electrons, all amplifiers) are fitted per lag
for the area coefficients ``a_ij`` (:func:`pachon.algorithms.cp.covariances.fit_area_coefficients`);
the kernel is the solution of ``L * K = a / 2`` on the ``(2 kernel_lag + 1)^2`` grid
(:func:`pachon.algorithms.cp.bf_kernel.kernel_from_area_coefficients`).  Flats without a
brighter-fatter signal (nearest-neighbour covariance below ``min_significance`` sigma) give no
kernel (the quantum ends with no work): a kernel of noise would only add noise to every image.
The output is the ``bfk`` calibration (Numpy kernel), read by ISR as ``IsrCalibs.bf_kernel``.

``cpBfkProc`` (an :class:`~pachon.pipelines.isr_task.IsrTask` of star-field exposures, in
electrons, no flat and no brighter-fatter correction) and ``cpBfkStars`` per detector:
isolated, unsaturated stars are found as local maxima, cut into centred stamps and handed with
their fluxes to :func:`pachon.algorithms.cp.fit_bf_strength`; the delta kernel it writes
(``bfkStars``) checks the strength of ``bfk`` from the growth of star size with flux.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pachon.algorithms.cp import fit_bf_strength
from pachon.algorithms.cp.bf_kernel import kernel_from_area_coefficients, kernel_sum_weights
from pachon.algorithms.cp.covariances import fit_area_coefficients
from pachon.algorithms.isr import IsrConfig
from pachon.core.errors import ConfigError, NoWorkFound
from pachon.pipe.task import Input, Output, Task
from pachon.pipelines.isr_task import DET, EXP_DET, IsrTask, IsrTaskConfig

__all__ = ["CpBfkProcConfig", "CpBfkProcTask", "CpBfkStarsConfig", "CpBfkStarsTask", "CpBfkConfig",
           "CpBfkTask", "star_stamps", "kernel_from_ptc"]

_log = logging.getLogger(__name__)

_OFF = {k: False for k in ("do_brighter_fatter", "do_flat", "do_defects", "do_interpolate")}


@dataclass
class CpBfkProcConfig(IsrTaskConfig):
    """Per-exposure ISR of the star fields: no flat (the kernel acts on collected charge), no BF."""

    isr: IsrConfig = field(default_factory=lambda: IsrConfig(**_OFF))
    required_calibrations: list[str] = field(default_factory=lambda: ["bias"])
    raw_where: str | None = "exposure.observation_type = 'bfk'"


class CpBfkProcTask(IsrTask):
    """ISR of one star-field exposure for the brighter-fatter measurement."""

    outputs = {"proc": Output("cpBfkProc", EXP_DET, "Exposure")}
    config_class = CpBfkProcConfig
    output_name = "proc"


@dataclass
class CpBfkStarsConfig:
    """Star selection of the brighter-fatter fit from star sizes.

    Attributes
    ----------
    half_size
        Stamps are ``2 * half_size + 1`` pixels square, centred on the peak pixel.
    min_peak, max_peak
        Peak value above the background (electrons): faint stars are noise, stars near the
        full well are non-linear or saturated.
    smoothing
        Gaussian sigma (pixels) of the smoothing applied before finding the peaks.
    isolation
        No other peak within this many pixels (and none of the stamp off the image).
    strengths
        Trial delta-kernel strengths (pixels² per electron) of the forward model.
    min_stars
        Fewer usable stars fail the quantum.
    """

    half_size: int = 10
    min_peak: float = 300.0
    max_peak: float = 60000.0
    isolation: float = 16.0
    smoothing: float = 1.5
    strengths: list[float] = field(default_factory=lambda: np.linspace(0.0, 2e-5, 11).tolist())
    min_stars: int = 20


def star_stamps(image: np.ndarray, bad: np.ndarray,
                config: CpBfkStarsConfig) -> tuple[np.ndarray, np.ndarray]:
    """Centred, background-subtracted stamps ``(n, h, w)`` of isolated stars and their fluxes."""
    from scipy.ndimage import gaussian_filter, maximum_filter

    img = np.asarray(image, float)
    img = img - np.median(img)
    h = config.half_size
    # peaks of the smoothed image: the centre of a faint star must not follow its noisiest pixel,
    # or sizes measured with the fixed weight shrink with flux
    smooth = gaussian_filter(img, config.smoothing)
    peaks = (smooth == maximum_filter(smooth, size=3)) & (img > config.min_peak)
    ys, xs = np.nonzero(peaks)
    ny, nx = img.shape
    inside = (xs >= h) & (xs < nx - h) & (ys >= h) & (ys < ny - h)
    ys, xs = ys[inside], xs[inside]
    if xs.size:
        d2 = (xs[:, None] - xs[None, :]) ** 2 + (ys[:, None] - ys[None, :]) ** 2
        np.fill_diagonal(d2, np.iinfo(d2.dtype).max)
        keep = d2.min(axis=1) > config.isolation**2
        ys, xs = ys[keep], xs[keep]
    off = np.arange(-h, h + 1)
    rows, cols = ys[:, None, None] + off[None, :, None], xs[:, None, None] + off[None, None, :]
    stamps = img[rows, cols]
    good = (img[ys, xs] < config.max_peak) & ~bad[rows, cols].any(axis=(1, 2))
    stamps = stamps[good]
    # local background: the mean of each stamp's border (a median would be biased for Poisson sky
    # and by the stars, and a background error changes the size of faint stars most)
    border = np.ones(stamps.shape[1:], bool)
    border[2:-2, 2:-2] = False
    stamps = stamps - stamps[:, border].mean(axis=1)[:, None, None]
    return stamps, stamps.sum(axis=(1, 2))


class CpBfkStarsTask(Task):
    """Brighter-fatter delta kernel of one detector from the star sizes of its star fields (a check)."""

    dimensions = DET
    inputs = {"procs": Input("cpBfkProc", EXP_DET, "Exposure", multiple=True)}
    outputs = {"kernel": Output("bfkStars", DET, "Numpy", is_calibration=True,
                                doc="brighter-fatter delta kernel from star sizes (check of bfk)")}
    config_class = CpBfkStarsConfig

    def run(self, procs: list[Any]) -> dict[str, Any]:
        """Collect the stars of every exposure and fit the kernel strength."""
        stamps, fluxes = [], []
        for exp in procs:
            bad = np.zeros(exp.image.shape, bool)
            for plane in ("SAT", "BAD", "SUSPECT"):
                if plane in exp.mask.planes:
                    bad |= exp.mask.get(plane)
            s, f = star_stamps(exp.image, bad, self.config)
            stamps.append(s)
            fluxes.append(f)
        st, fl = np.concatenate(stamps), np.concatenate(fluxes)
        ok = fl > 0
        st, fl = st[ok], fl[ok]
        if len(fl) < self.config.min_stars:
            raise ConfigError(f"bfk: {len(fl)} isolated unsaturated stars in {len(procs)} exposure(s), need "
                              f"{self.config.min_stars}; take star fields with many stars (cpBfkProc "
                              f"raw_where) or lower CpBfkConfig.min_peak")
        strength, kernel = fit_bf_strength(st, fl, self.config.strengths)
        _log.info("bfkStars: strength %.3g from %d stars (flux %.3g .. %.3g e-)", strength, len(fl), fl.min(),
                  fl.max())
        return {"kernel": kernel}


@dataclass
class CpBfkConfig:
    """Settings of the kernel from flat-pair covariances.

    Attributes
    ----------
    kernel_lag
        Half-width of the kernel (pixels); the ``a_ij`` of lags up to it are used.  Far lags
        carry little signal and much noise (the Poisson solution weighs them most in the
        kernel's sum): raise it with many flat pairs.
    force_zero_sum
        Replace ``a_00`` by minus the sum of the other lags (charge conservation); the
        variance is the least precise and most model-dependent term.
    cubic
        Fit a ``mu^3`` term per lag (the second-order terms of the full model): needs many
        pairs, and costs precision.
    max_mean
        Ignore flat pairs above this mean (electrons), e.g. near saturation.
    min_significance
        No kernel unless the nearest-neighbour covariance slope ``a_01 + a_10`` exceeds this
        many standard errors.
    """

    kernel_lag: int = 3
    force_zero_sum: bool = True
    cubic: bool = False
    max_mean: float | None = None
    min_significance: float = 5.0


def kernel_from_ptc(ptc: dict[str, Any], config: CpBfkConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """The kernel and the fit (``a``, ``a_err``, ``sum``, ``sum_err``, ``significance``) from a ptc Json."""
    if "covariances" not in ptc:
        raise ConfigError(f"ptc of detector {ptc.get('detector')} holds no flat-pair covariances; remake it "
                          f"with CpPtcConfig.covariance_max_lag > 0")
    n = int(ptc["cov_max_lag"])
    lag = config.kernel_lag
    if not 1 <= lag <= n:
        raise ConfigError(f"CpBfkConfig.kernel_lag must be in [1, {n}] (the ptc's covariance_max_lag), "
                          f"got {lag}")
    means = np.concatenate([np.asarray(m, float) for m in ptc["cov_means"]])
    covs = np.concatenate([np.asarray(c, float) for c in ptc["covariances"]])[:, : lag + 1, : lag + 1]
    npix = np.concatenate([np.asarray(c, float) for c in ptc["cov_n_pixels"]])
    keep = np.isfinite(means) & (means > 0)
    if config.max_mean is not None:
        keep &= means <= config.max_mean
    fit = fit_area_coefficients(means[keep], covs[keep], npix[keep], cubic=config.cubic)
    kernel = kernel_from_area_coefficients(fit.a, force_zero_sum=config.force_zero_sum)
    nn = fit.a[0, 1] + fit.a[1, 0]
    z = float(nn / np.hypot(fit.a_err[0, 1], fit.a_err[1, 0]))
    w = kernel_sum_weights(lag)
    if config.force_zero_sum:  # a_00 = -sum of the others (each lag counted with its multiplicity)
        w = w - w[0, 0] * _multiplicity(lag)
    sum_err = float(np.sqrt(np.sum((w * fit.a_err) ** 2)))
    info = {"a": fit.a, "a_err": fit.a_err, "chi2_dof": fit.chi2_dof, "sum": float(kernel.sum()),
            "sum_err": sum_err, "significance": z, "n_points": fit.n_points}
    return kernel, info


def _multiplicity(lag: int) -> np.ndarray:
    on = (np.arange(lag + 1) > 0).astype(float)
    return 2.0 ** (on[:, None] + on[None, :])


class CpBfkTask(Task):
    """Brighter-fatter kernel of one detector from the flat-pair covariances of its ptc."""

    dimensions = DET
    inputs = {"ptc": Input("ptc", DET, "Json", doc="photon transfer curve with flat-pair covariances")}
    outputs = {"bfk": Output("bfk", DET, "Numpy", is_calibration=True, doc="brighter-fatter kernel")}
    config_class = CpBfkConfig

    def run(self, ptc: dict[str, Any]) -> dict[str, Any]:
        """Fit the covariances of all amplifiers and solve for the kernel."""
        kernel, info = kernel_from_ptc(ptc, self.config)
        a, e = info["a"], info["a_err"]
        det = ptc.get("detector")
        if info["significance"] < self.config.min_significance:
            raise NoWorkFound(f"bfk detector {det}: no brighter-fatter signal in the flat covariances "
                              f"(a_01 + a_10 at {info['significance']:.1f} sigma < "
                              f"{self.config.min_significance}); "
                              f"no kernel written")
        _log.info("bfk detector %s: a_00 %.3g +- %.2g, a_01 %.3g +- %.2g, a_10 %.3g +- %.2g /e- (%d points, "
                  "chi2/dof %.2f); kernel %s, sum %.3g +- %.2g", det, a[0, 0], e[0, 0], a[0, 1], e[0, 1],
                  a[1, 0],
                  e[1, 0], info["n_points"], info["chi2_dof"], kernel.shape, info["sum"], info["sum_err"])
        return {"bfk": kernel}

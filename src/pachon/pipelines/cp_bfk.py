"""Brighter-fatter kernel task: the kernel of one detector from the flux dependence of star sizes.

Rubin's layout: ``cpBfkProc`` (an :class:`~pachon.pipelines.isr_task.IsrTask` of the star-field
exposures, in electrons, with the bias, dark, crosstalk and linearity but no flat and no
brighter-fatter correction) and ``cpBfk`` per detector: isolated, unsaturated stars are found as
local maxima, cut into centred stamps and handed with their fluxes to
:func:`pachon.algorithms.cp.fit_bf_strength`.  The output is the ``bfk`` calibration (Numpy
kernel), read by ISR as ``IsrCalibs.bf_kernel``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pachon.algorithms.cp import fit_bf_strength
from pachon.algorithms.isr import IsrConfig
from pachon.core.errors import ConfigError
from pachon.pipe.task import Input, Output, Task
from pachon.pipelines.isr_task import DET, EXP_DET, IsrTask, IsrTaskConfig

__all__ = ["CpBfkProcConfig", "CpBfkProcTask", "CpBfkConfig", "CpBfkTask", "star_stamps"]

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
class CpBfkConfig:
    """Star selection of the brighter-fatter fit.

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


def star_stamps(image: np.ndarray, bad: np.ndarray, config: CpBfkConfig) -> tuple[np.ndarray, np.ndarray]:
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


class CpBfkTask(Task):
    """Brighter-fatter delta kernel of one detector from the star sizes of its star fields."""

    dimensions = DET
    inputs = {"procs": Input("cpBfkProc", EXP_DET, "Exposure", multiple=True)}
    outputs = {"bfk": Output("bfk", DET, "Numpy", is_calibration=True, doc="brighter-fatter kernel")}
    config_class = CpBfkConfig

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
        _log.info("bfk: strength %.3g from %d stars (flux %.3g .. %.3g e-)", strength, len(fl), fl.min(),
                  fl.max())
        return {"bfk": kernel}

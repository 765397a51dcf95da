"""Dipole fit: a positive and a negative PSF on a difference-image stamp.

Model: ``f_pos P(x - x_pos) - f_neg P(x - x_neg)``.  The four positions are fitted by
non-linear least squares (``scipy.optimize.least_squares``) with the two fluxes solved
linearly at each step (variable projection), so the fit is fast and has no flux starting
guess.  A source is a dipole (``isDipole``) when both lobes are significant
(``flux / err >= min_lobe_snr``), their fluxes agree within ``max_flux_asymmetry``
(``|f_pos - f_neg| / (f_pos + f_neg)``), the lobes are closer than ``max_length`` pixels, and
the dipole chi^2 beats a single PSF's.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from pachon.algorithms.dia.stamps import shifted_psfs

__all__ = ["DipoleFit", "fit_dipole"]

_log = logging.getLogger(__name__)


@dataclass
class DipoleFit:
    """Result of :func:`fit_dipole` (positions in the stamp's parent coordinates)."""

    pos_xy: tuple[float, float]
    neg_xy: tuple[float, float]
    pos_flux: float
    neg_flux: float
    pos_flux_err: float
    neg_flux_err: float
    chi2: float
    n_data: int
    single_chi2: float

    @property
    def mean_flux(self) -> float:
        """``(f_pos + f_neg) / 2``."""
        return 0.5 * (self.pos_flux + self.neg_flux)

    @property
    def flux_diff(self) -> float:
        """``f_pos - f_neg``."""
        return self.pos_flux - self.neg_flux

    @property
    def length(self) -> float:
        """Lobe separation (pixels)."""
        return math.hypot(self.pos_xy[0] - self.neg_xy[0], self.pos_xy[1] - self.neg_xy[1])

    @property
    def angle(self) -> float:
        """Direction from the negative to the positive lobe (degrees from +x, counter-clockwise)."""
        return math.degrees(math.atan2(self.pos_xy[1] - self.neg_xy[1], self.pos_xy[0] - self.neg_xy[0]))

    def is_dipole(
        self, *, min_lobe_snr: float = 3.0, max_flux_asymmetry: float = 0.65, max_length: float = 10.0
    ) -> bool:
        """Whether the fit describes a dipole (see the module docstring)."""
        snr_ok = (
            self.pos_flux / self.pos_flux_err >= min_lobe_snr
            and self.neg_flux / self.neg_flux_err >= min_lobe_snr
        )
        tot = self.pos_flux + self.neg_flux
        sym = tot > 0 and abs(self.flux_diff) / tot <= max_flux_asymmetry
        return bool(snr_ok and sym and self.length <= max_length and self.chi2 < self.single_chi2)


def _lin(models: np.ndarray, d: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = models.reshape(len(models), -1) * np.sqrt(w.ravel())[None]
    m = a @ a.T
    try:
        cov = np.linalg.inv(m)
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(m)
    return cov @ (a @ (d.ravel() * np.sqrt(w.ravel()))), cov


def fit_dipole(
    stamp: np.ndarray,
    var: np.ndarray,
    psf: np.ndarray,
    origin: tuple[int, int],
    pos_guess: tuple[float, float],
    neg_guess: tuple[float, float],
) -> DipoleFit:
    """Fit a dipole on ``stamp`` (odd square, centre pixel at parent ``origin``).

    Parameters
    ----------
    stamp, var
        Difference pixels and variance (NaN: ignored).
    psf
        PSF kernel of the difference.
    origin
        Parent pixel ``(x, y)`` of the stamp's central pixel.
    pos_guess, neg_guess
        Starting positions of the lobes (parent pixels).
    """
    from scipy.optimize import least_squares

    half = stamp.shape[0] // 2
    good = np.isfinite(stamp) & np.isfinite(var) & (var > 0)
    d = np.where(good, stamp, 0.0)
    w = np.where(good, 1.0 / np.where(good, var, 1.0), 0.0)
    ox, oy = origin

    def models(p: np.ndarray) -> np.ndarray:
        dx = np.array([p[0] - ox, p[2] - ox])
        dy = np.array([p[1] - oy, p[3] - oy])
        m = shifted_psfs(psf, dx, dy, half)
        m[1] *= -1.0
        return m

    def resid(p: np.ndarray) -> np.ndarray:
        m = models(p)
        f, _ = _lin(m, d, w)
        return ((d - np.tensordot(f, m, axes=1)) * np.sqrt(w)).ravel()

    p0 = np.array([*pos_guess, *neg_guess], float)
    lim = half - 1.0
    lo = np.array([ox - lim, oy - lim] * 2)
    hi = np.array([ox + lim, oy + lim] * 2)
    sol = least_squares(resid, np.clip(p0, lo + 1e-3, hi - 1e-3), bounds=(lo, hi), x_scale=0.5, max_nfev=200)
    m = models(sol.x)
    f, cov = _lin(m, d, w)
    single = shifted_psfs(
        psf, np.array([0.5 * (sol.x[0] + sol.x[2]) - ox]), np.array([0.5 * (sol.x[1] + sol.x[3]) - oy]), half
    )
    fs, _ = _lin(single, d, w)
    single_chi2 = float((((d - fs[0] * single[0]) ** 2) * w).sum())
    if f[0] + f[1] < 0:  # -F at A and -F at B is the same model as +F at B and -F at A: swap
        sol.x = np.array([sol.x[2], sol.x[3], sol.x[0], sol.x[1]])
        f = np.array([-f[1], -f[0]])
        cov = cov[::-1, ::-1]
    return DipoleFit(
        (float(sol.x[0]), float(sol.x[1])),
        (float(sol.x[2]), float(sol.x[3])),
        float(f[0]),
        float(f[1]),
        float(math.sqrt(cov[0, 0])),
        float(math.sqrt(cov[1, 1])),
        float(2 * sol.cost),
        int(good.sum()),
        single_chi2,
    )

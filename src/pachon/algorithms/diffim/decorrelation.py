"""Noise decorrelation of difference images (Reiss & Lupton), and the shared difference engine.

Every difference here has the form ``D = A * S - B * T`` (``*``: convolution) for a science
image ``S`` and template ``T`` with white noise of variances ``s2`` and ``t2``:

* Alard–Lupton, template convolved: ``A = delta``, ``B = K`` (the matching kernel);
* Alard–Lupton, science convolved: ``A = K / sum K``, ``B = delta / sum K``;
* pre-convolution: ``A`` = the science PSF (correlation), ``B = K``;
* ZOGY: ``A`` = the template PSF, ``B`` = the science PSF (times the flux ratio).

Its noise power spectrum is ``N(k) = s2 |A(k)|^2 + t2 |B(k)|^2``; the afterburner convolves
``D`` with ``phi(k) = sqrt(N(0) / N(k))`` so that the noise is white with per-pixel variance
``N(0)`` and fluxes are unchanged (``phi(0) = 1``).  The PSF of the result is
``phi A P_S`` (Fourier space).  For ZOGY this *is* the proper difference image of Zackay,
Ofek & Gal-Yam (2016), normalized to science flux units.

Everything is applied per cell (:mod:`pachon.algorithms.diffim.cells`) with the cell's own
kernel; the decorrelation filter is by default one for the whole image (the central cell's,
with the median variances: it varies only weakly), else per cell.  The same pass also yields
the matched-filter score ``(D * P_D) / sqrt(var * P_D^2)`` used for detection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pachon.algorithms.diffim.cells import CellGrid, apply_cell_filters, kernels_to_fourier

__all__ = ["FLOOR", "DifferenceProducts", "decorrelation_filter", "filtered_difference", "variance_factor"]

_log = logging.getLogger(__name__)


def decorrelation_filter(
    a_hat: np.ndarray, b_hat: np.ndarray, s2: np.ndarray | float, t2: np.ndarray | float
) -> np.ndarray:
    """``phi = sqrt(N(0) / N(k))`` for ``N = s2 |A|^2 + t2 |B|^2`` (last two axes: frequencies).

    ``s2`` and ``t2`` broadcast against the leading axes (one value per cell).
    """
    s2 = np.asarray(s2, float)[..., None, None]
    t2 = np.asarray(t2, float)[..., None, None]
    power = s2 * np.abs(a_hat) ** 2 + t2 * np.abs(b_hat) ** 2
    n0 = power[..., :1, :1]
    return np.sqrt(n0 / np.maximum(power, FLOOR * n0))


#: Noise power below ``FLOOR * N(0)`` is not amplified (those frequencies carry no signal).
FLOOR = 1e-10


def variance_factor(power_ratio: np.ndarray, size: int) -> np.ndarray:
    """Per-pixel noise variance of ``phi D`` in units of ``N(0)``: ``mean_k min(1, N / (FLOOR N0))``.

    ``power_ratio`` is ``N(k) / N(0)`` on the rfft half-plane of a ``size x size`` transform.
    """
    ratio = np.minimum(1.0, power_ratio / FLOOR)
    weights = np.full(power_ratio.shape[-1], 2.0)
    weights[0] = 1.0
    if size % 2 == 0:
        weights[-1] = 1.0
    return (ratio * weights).sum(axis=(-2, -1)) / (size * size)


@dataclass
class DifferenceProducts:
    """Arrays made by :func:`filtered_difference` (all of the science image's shape)."""

    difference: np.ndarray
    score: np.ndarray
    psf_kernel: np.ndarray
    variance: np.ndarray


HatFn = Callable[[slice], np.ndarray]


def filtered_difference(
    science: np.ndarray,
    template: np.ndarray,
    variance: np.ndarray,
    grid: CellGrid,
    a_hat: HatFn,
    b_hat: HatFn,
    science_psf: np.ndarray,
    s2: np.ndarray,
    t2: np.ndarray,
    *,
    decorrelate: bool = True,
    psf_half: int | None = None,
    constant: bool = True,
) -> DifferenceProducts:
    """``D = phi (A S - B T)`` and its score, cell by cell.

    Parameters
    ----------
    science, template
        NaN-free images on the same grid (masked pixels set to 0).
    variance
        Per-pixel variance of the difference (``var_S + (sum B)^2 var_T``), for the score.
    grid
        Cell grid of the images.
    a_hat, b_hat
        Called with a slice of cell rows: Fourier filters ``(rows, nx, size, size//2+1)``
        (or broadcastable).
    science_psf
        Science PSF kernel (odd square, sums to 1).
    s2, t2
        Per-cell median variances of science and template, shape ``grid.n_cells``.
    decorrelate
        Apply ``phi`` (otherwise ``phi = 1``).
    psf_half
        Half width of the returned difference PSF kernel (default: from its second moments).
    constant
        Use one decorrelation filter for the whole image (the central cell's, with the median
        variances): the filter depends on the kernel and noise levels only weakly, and a
        constant one also makes the difference PSF (for ``A`` = const) the same everywhere.
        Each cell then costs one forward FFT per input and one inverse per output.
        ``False`` recomputes the filter, PSF and score normalization per cell.
    """
    from scipy import fft

    size = grid.size
    ps_hat = kernels_to_fourier(science_psf, size)
    ny, nx = grid.n_cells
    cy, cx = ny // 2, nx // 2
    centre_psf: list[np.ndarray] = []
    factors = np.ones((ny, nx))

    def cells(rows: slice) -> tuple[np.ndarray, np.ndarray]:
        a, b = np.broadcast_arrays(a_hat(rows), b_hat(rows))
        a = np.broadcast_to(a, (rows.stop - rows.start, nx) + a.shape[-2:])
        return a, np.broadcast_to(b, a.shape)

    if constant:  # one decorrelation filter (the central cell's, median variances) everywhere
        a0, b0 = (c[0, cx] for c in cells(slice(cy, cy + 1)))
        s2m, t2m = float(np.median(s2)), float(np.median(t2))
        phi0 = decorrelation_filter(a0, b0, s2m, t2m) if decorrelate else np.ones(a0.shape)
        if decorrelate:
            p = s2m * np.abs(a0) ** 2 + t2m * np.abs(b0) ** 2
            factors[:] = variance_factor(p / p[:1, :1], size)
        pd_hat0 = phi0 * a0 * ps_hat
        pd0 = fft.irfft2(pd_hat0, s=(size, size))
        centre_psf.append(pd0)
        sq_hat0 = fft.rfft2(pd0**2).astype(np.complex64)
        phi0 = phi0.astype(np.float32)

        def const_filters(rows: slice) -> list[tuple[int, int, np.ndarray]]:
            a, b = (np.asarray(c, np.complex64) for c in (a_hat(rows), b_hat(rows)))
            return [(0, 0, phi0 * a), (0, 1, -phi0 * b), (2, 2, sq_hat0)]

        diff, num, svar = apply_cell_filters(
            [science, template, variance],
            grid,
            3,
            const_filters,
            derived=[(1, 0, np.conj(pd_hat0))],
        )
    else:

        def filters(rows: slice) -> list[tuple[int, int, np.ndarray]]:
            a, b = cells(rows)
            if decorrelate:
                phi = decorrelation_filter(a, b, s2[rows], t2[rows])
                p = s2[rows][..., None, None] * np.abs(a) ** 2 + t2[rows][..., None, None] * np.abs(b) ** 2
                factors[rows] = variance_factor(p / p[..., :1, :1], size)
            else:
                phi = np.ones(a.shape)
            fa, fb = phi * a, phi * b
            pd_hat = fa * ps_hat
            pd = fft.irfft2(pd_hat, s=(size, size), axes=(-2, -1), workers=-1)
            if rows.start <= cy < rows.stop:
                centre_psf.append(pd[cy - rows.start, cx])
            sq_hat = fft.rfft2(pd**2, axes=(-2, -1), workers=-1)
            conj = np.conj(pd_hat)
            return [(0, 0, fa), (0, 1, -fb), (1, 0, conj * fa), (1, 1, -conj * fb), (2, 2, sq_hat)]

        diff, num, svar = apply_cell_filters([science, template, variance], grid, 3, filters)
    if decorrelate:  # frequencies below the floor are not restored: their noise is missing
        fmap = np.repeat(np.repeat(factors, grid.cell, axis=0), grid.cell, axis=1)[
            : grid.shape[0], : grid.shape[1]
        ]
        variance = variance * fmap.astype(np.float32)
    pd = np.fft.fftshift(centre_psf[0])
    c = size // 2
    if psf_half is None:
        yy, xx = np.mgrid[0:size, 0:size]
        r2 = ((xx - c) ** 2 + (yy - c) ** 2) * np.clip(pd, 0, None)
        sig = float(np.sqrt(0.5 * r2.sum() / max(np.clip(pd, 0, None).sum(), 1e-30)))
        psf_half = int(min(max(np.ceil(5 * sig), 5), grid.margin, c - 1))
    kernel = pd[c - psf_half : c + psf_half + 1, c - psf_half : c + psf_half + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(svar > 0, num / np.sqrt(np.maximum(svar, np.float32(1e-30))), np.float32(0))
    return DifferenceProducts(diff, score, kernel / kernel.sum(), variance)

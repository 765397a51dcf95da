"""Alard–Lupton kernel bases: Gaussians times polynomials, and delta functions.

A Gaussian basis of widths ``sigmas`` and polynomial degrees ``degrees`` holds, for each
width, ``exp(-r^2 / 2 sigma^2) x^i y^j`` with ``i + j <= degree``.  The first function is
normalized to sum 1 and every other one is made to sum 0 (by subtracting a multiple of the
first) and scaled to unit L2 norm: the photometric scale of a kernel is then its first
coefficient alone.  A delta-function basis has one function per pixel (with the same
normalization) and needs a smoothness regularization (see
:func:`laplacian_regularization`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "delta_basis",
    "gaussian_basis",
    "kernel_half_width",
    "laplacian_regularization",
    "matching_sigmas",
    "normalize_basis",
]

_log = logging.getLogger(__name__)


def kernel_half_width(
    sigma_target: float, sigma_reference: float, *, scale: float = 4.0, minimum: int = 5, maximum: int = 25
) -> int:
    """Half width of the matching kernel: ``scale`` times the widest of the two PSFs, clipped."""
    return int(np.clip(math.ceil(scale * max(sigma_target, sigma_reference)), minimum, maximum))


def matching_sigmas(
    sigma_target: float, sigma_reference: float, *, beta: float = 2.0, floor: float = 0.7
) -> list[float]:
    """Basis widths ``[s / beta, s, s * beta]`` around the matching width ``s = sqrt(|dsigma^2|)``."""
    s = math.sqrt(abs(sigma_target**2 - sigma_reference**2))
    s = max(s, floor)
    return [max(s / beta, 0.5 * floor), s, s * beta]


def normalize_basis(basis: np.ndarray) -> np.ndarray:
    """First function → sum 1; others → sum 0 and unit L2 norm (input ``(n, k, k)``)."""
    out = basis.astype(np.float64).copy()
    out[0] /= out[0].sum()
    for j in range(1, len(out)):
        out[j] -= out[j].sum() * out[0]
        norm = math.sqrt(float((out[j] ** 2).sum()))
        out[j] /= norm if norm > 0 else 1.0
    return out


def gaussian_basis(half: int, sigmas: Sequence[float], degrees: Sequence[int]) -> np.ndarray:
    """Normalized Gaussian-times-polynomial basis, shape ``(n, 2 half + 1, 2 half + 1)``."""
    r = np.arange(-half, half + 1, dtype=np.float64)
    yy, xx = np.meshgrid(r, r, indexing="ij")
    funcs = []
    for sigma, degree in zip(sigmas, degrees, strict=True):
        g = np.exp(-0.5 * (xx**2 + yy**2) / sigma**2)
        u, v = xx / sigma, yy / sigma
        for total in range(degree + 1):
            for i in range(total + 1):
                funcs.append(g * u ** (total - i) * v**i)
    return normalize_basis(np.array(funcs))


def delta_basis(half: int) -> np.ndarray:
    """Delta-function basis (central pixel first), normalized as the Gaussian one."""
    k = 2 * half + 1
    eye = np.eye(k * k).reshape(k * k, k, k)
    centre = (k * k) // 2
    order = [centre] + [i for i in range(k * k) if i != centre]
    return normalize_basis(eye[order])


def laplacian_regularization(basis: np.ndarray) -> np.ndarray:
    """``H = L^T L`` with ``L`` the discrete Laplacian of the kernel in basis coefficients.

    The penalty ``c^T H c`` is the squared Laplacian of the kernel ``sum_j c_j basis_j``
    (valid for any basis; it is what makes a delta-function basis well behaved).
    """
    from scipy.ndimage import laplace

    lap = np.array([laplace(b, mode="constant").ravel() for b in basis])  # (n, k*k)
    return lap @ lap.T

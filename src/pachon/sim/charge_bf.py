"""Brighter-fatter on the collected charge of every exposure (opt-in: ``detector.bf_on_charge``).

Charge already collected pushes the pixel boundaries of its neighbours outward, so later charge
drifts away from full pixels.  To first order in the charge this is one operator on the final
electron image ``Q``: ``Q_obs = Q + T(Q)`` with the potential ``phi = K * Q`` (``K`` the truth
kernel, pixels² per electron) and, across each of the four boundaries of a pixel ``x``, the
charge ``(Q_x + Q_{x+e}) / 2 * (phi_{x+e} - phi_x)`` moving from ``x + e`` into ``x``.  Charge
is conserved exactly.  Applied to the noisy charge (shot noise included), it gives flats their
pixel covariances ``C_ij / mu = delta_ij + a_ij mu`` with the area coefficients
``a = 2 L * K`` (``L``: five-point Laplacian), see :func:`area_coefficients`, and makes bright
stars broader.  When off (the default) only drawn stars get the older per-stamp model of
:func:`pachon.sim.render.brighter_fatter`, and the outcome of existing configurations is unchanged.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["charge_bf_kernel", "area_coefficients", "apply_charge_bf"]

#: Potential (pixels) above which the first-order model is cut off, as in saturated cores.
MAX_POTENTIAL = 0.2


def charge_bf_kernel(strength: float, sigma: float) -> np.ndarray:
    """The truth kernel: a Gaussian of ``sigma`` pixels summing to ``strength`` (a delta at 0).

    Its half-width is ``ceil(3 sigma)`` pixels (at least 0), so the array is odd and square.
    """
    if sigma < 0 or strength < 0:
        raise ValueError(f"charge_bf_kernel needs strength >= 0 and sigma >= 0, got {strength!r}, {sigma!r}")
    half = int(math.ceil(3.0 * sigma))
    if half == 0:
        return np.full((1, 1), float(strength))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    k = np.exp(-0.5 * (xx * xx + yy * yy) / sigma**2)
    return k * (strength / k.sum())


def area_coefficients(kernel: np.ndarray) -> np.ndarray:
    """``a = 2 L * K``: the slopes of the flat-pair covariances ``C_ij / mu`` against ``mu`` (per e-).

    Returned on the kernel's grid grown by one pixel on each side (where ``L * K`` ends).
    """
    k = np.pad(np.asarray(kernel, float), 2)
    lap = -4.0 * k
    lap[1:, :] += k[:-1, :]
    lap[:-1, :] += k[1:, :]
    lap[:, 1:] += k[:, :-1]
    lap[:, :-1] += k[:, 1:]
    return 2.0 * lap[1:-1, 1:-1]


def apply_charge_bf(charge: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``Q + T(Q)`` for an electron image (float64 result; input left unchanged).

    Where the potential exceeds :data:`MAX_POTENTIAL` (saturated cores) the boundary fluxes of
    the pixel are left out.
    """
    from scipy.ndimage import convolve

    q = np.asarray(charge, dtype=np.float64)
    k = np.asarray(kernel, dtype=np.float64)
    phi = convolve(q, k, mode="nearest") if k.size > 1 else q * float(k.ravel()[0])
    cap = np.abs(phi) <= MAX_POTENTIAL
    out = q.copy()
    for axis in (0, 1):
        a = [slice(None)] * 2
        b = [slice(None)] * 2
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        ta, tb = tuple(a), tuple(b)
        flow = 0.5 * (q[ta] + q[tb]) * (phi[tb] - phi[ta]) * (cap[ta] & cap[tb])
        out[ta] += flow
        out[tb] -= flow
    return out

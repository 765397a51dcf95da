"""Centroids and adaptive second moments on stamp cubes, vectorized over sources.

* :func:`windowed_centroid` iterates a Gaussian-windowed first moment (SExtractor's
  ``XWIN``): ``x <- x + 2 sum(w I dx) / sum(w I)``, which converges to the centre of a
  Gaussian-like profile with an error close to a PSF fit's.
* :func:`adaptive_moments` iterates an elliptical Gaussian weight matched to the object's own
  second moments (Bernstein & Jarvis 2002; GalSim's HSM ``FindAdaptiveMom``), all sources at
  once.  The benchmark compares it with ``galsim.hsm`` (same answers, vectorized speed).
"""

from __future__ import annotations

import logging

import numpy as np

from pachon.algorithms.measurement.stamps import stamp_offsets

__all__ = ["adaptive_moments", "windowed_centroid"]

_log = logging.getLogger(__name__)


def windowed_centroid(
    cube: np.ndarray,
    sigma: float,
    *,
    n_iter: int = 15,
    valid: np.ndarray | None = None,
    tol: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian-windowed centroids of stamp cubes.

    Parameters
    ----------
    cube
        ``(n, s, s)`` background-subtracted stamps centred on the sources' peak pixels.
    sigma
        Window width (pixels): the PSF's Gaussian sigma.
    n_iter
        Most iterations (the shift converges geometrically).
    valid
        Pixels that may enter the sums (e.g. on the image and not masked).
    tol
        A source stops iterating once its step is below this (pixels).

    Returns
    -------
    dx, dy
        Offsets of the centroid from each stamp's central pixel.
    ok
        False where the windowed flux is not positive or the centroid left the stamp.
    """
    n, s, _ = cube.shape
    half = s // 2
    ox, oy = stamp_offsets(half)
    data = cube if valid is None else np.where(valid, cube, 0.0)
    dx = np.zeros(n)
    dy = np.zeros(n)
    good = np.ones(n, bool)
    inv2s2 = 0.5 / sigma**2
    act = np.arange(n)  # sources still moving: converged ones leave the sums
    for _ in range(n_iter):
        rx = ox[None] - dx[act, None, None]
        ry = oy[None] - dy[act, None, None]
        w = np.exp(-(rx * rx + ry * ry) * inv2s2) * data[act]
        norm = w.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            sx = 2.0 * (w * rx).sum(axis=(1, 2)) / norm
            sy = 2.0 * (w * ry).sum(axis=(1, 2)) / norm
        g = np.isfinite(sx) & np.isfinite(sy) & (norm > 0)
        good[act] = g
        sx, sy = np.where(g, np.clip(sx, -1, 1), 0.0), np.where(g, np.clip(sy, -1, 1), 0.0)
        dx[act] += sx
        dy[act] += sy
        act = act[g & ((np.abs(sx) > tol) | (np.abs(sy) > tol))]
        if len(act) == 0:
            break
    ok = good & (np.abs(dx) < half - 1) & (np.abs(dy) < half - 1)
    return dx, dy, ok


def adaptive_moments(
    cube: np.ndarray,
    dx: np.ndarray,
    dy: np.ndarray,
    guess_sigma: float,
    *,
    n_iter: int = 30,
    valid: np.ndarray | None = None,
    tol: float = 1e-7,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Adaptive second moments ``(ixx, iyy, ixy)`` (pixels²) of stamp cubes.

    Parameters
    ----------
    cube
        ``(n, s, s)`` stamps.
    dx, dy
        Centroids relative to the stamps' central pixels.
    guess_sigma
        Starting weight width (pixels), e.g. the PSF sigma.
    n_iter
        Most iterations of the weight update.
    valid
        Pixels that may enter the sums.
    tol
        A source stops iterating once its moments change by less than this fraction of its size.

    Returns
    -------
    ixx, iyy, ixy
        The moments of the best-matched elliptical Gaussian.
    ok
        False where the iteration diverged (non-positive flux or determinant, too large).
    """
    n, s, _ = cube.shape
    half = s // 2
    ox, oy = stamp_offsets(half)
    data = cube if valid is None else np.where(valid, cube, 0.0)
    rx = ox[None] - np.asarray(dx, float)[:, None, None]
    ry = oy[None] - np.asarray(dy, float)[:, None, None]
    rxx, ryy, rxy = rx * rx, ry * ry, rx * ry
    mxx = np.full(n, guess_sigma**2)
    myy = mxx.copy()
    mxy = np.zeros(n)
    ok = np.ones(n, bool)
    limit = (half / 1.5) ** 2
    act = np.arange(n)  # sources still changing: converged ones leave the sums
    for _ in range(n_iter):
        det = mxx[act] * myy[act] - mxy[act] ** 2
        ok[act[~(det > 0)]] = False  # a degenerate weight: stop this source
        act = act[det > 0]
        if len(act) == 0:
            break
        axx, ayy, axy = mxx[act], myy[act], mxy[act]
        det = axx * ayy - axy**2
        a, b, c = ayy / det, -axy / det, axx / det
        qa, qb, qc = rxx[act], rxy[act], ryy[act]
        with np.errstate(over="ignore", under="ignore"):
            w = np.exp(-0.5 * (a[:, None, None] * qa + 2 * b[:, None, None] * qb + c[:, None, None] * qc))
        wi = w * data[act]
        norm = wi.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            qxx = (wi * qa).sum(axis=(1, 2)) / norm
            qyy = (wi * qc).sum(axis=(1, 2)) / norm
            qxy = (wi * qb).sum(axis=(1, 2)) / norm
        # for a Gaussian of covariance M weighted by a Gaussian of covariance W:
        # Q = (M^-1 + W^-1)^-1, so M = (Q^-1 - W^-1)^-1; iterate W <- M
        qdet = qxx * qyy - qxy**2
        with np.errstate(invalid="ignore", divide="ignore"):
            ia, ib, ic = qyy / qdet - a, -qxy / qdet - b, qxx / qdet - c
            mdet = ia * ic - ib * ib
            nxx, nyy, nxy = ic / mdet, ia / mdet, -ib / mdet
        step_ok = (norm > 0) & (qdet > 0) & (mdet > 0) & (nxx > 0) & (nyy > 0)
        ok[act] &= step_ok
        g = ok[act]
        nxx, nyy = np.where(g, np.minimum(nxx, limit), axx), np.where(g, np.minimum(nyy, limit), ayy)
        nxy = np.where(g, nxy, axy)
        change = np.abs(nxx - axx) + np.abs(nyy - ayy) + np.abs(nxy - axy)
        mxx[act], myy[act], mxy[act] = nxx, nyy, nxy
        act = act[g & (change > tol * (axx + ayy))]
        if len(act) == 0:
            break
    ok &= (mxx < limit) & (myy < limit)
    return mxx, myy, mxy, ok

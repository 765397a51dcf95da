"""Robust pattern matching of two point sets by triangle similarity hashing.

Triangles among the brightest points of each set are described by two similarity invariants
(the ratios of the two shorter sides to the longest) and matched in that space with a k-d
tree.  Each triangle pair proposes a similarity transform (scale, rotation, shift, optional
mirror); the transform proposed by most pairs is refined on all points within a tolerance.
Needs only a rough initial WCS (any rotation, scale within ``scale_range``, offsets up to the
field size).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np

from pachon.core.errors import AlgorithmError

__all__ = ["AstrometryError", "SimilarityMatch", "match_triangles"]

_log = logging.getLogger(__name__)


class AstrometryError(AlgorithmError):
    """No astrometric solution: too few sources or references, or no consistent match."""


@dataclass
class SimilarityMatch:
    """A similarity transform ``ref = s R(src) + t`` and the pairs it matches."""

    matrix: np.ndarray  # 2x2 (scale * rotation, possibly mirrored)
    shift: np.ndarray
    src_index: np.ndarray
    ref_index: np.ndarray
    rms: float

    def apply(self, xy: np.ndarray) -> np.ndarray:
        """Map source coordinates ``(n, 2)`` into the reference frame."""
        return xy @ self.matrix.T + self.shift


def _triangles(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Invariants ``(n_tri, 2)`` and vertex indices ``(n_tri, 3)`` ordered by opposite side length."""
    idx = np.array(list(itertools.combinations(range(len(xy)), 3)))
    p = xy[idx]  # (n, 3, 2)
    # side opposite vertex k
    sides = np.stack(
        [
            np.hypot(*(p[:, 1] - p[:, 2]).T),
            np.hypot(*(p[:, 0] - p[:, 2]).T),
            np.hypot(*(p[:, 0] - p[:, 1]).T),
        ],
        axis=1,
    )
    order = np.argsort(-sides, axis=1)  # vertex opposite the longest side first
    sides = np.take_along_axis(sides, order, axis=1)
    idx = np.take_along_axis(idx, order, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = np.stack([sides[:, 1] / sides[:, 0], sides[:, 2] / sides[:, 0]], axis=1)
    ok = np.isfinite(inv).all(axis=1) & (sides[:, 2] > 1e-9) & (inv[:, 1] < 0.95)
    return inv[ok], idx[ok]


def _fit_similarity(a: np.ndarray, b: np.ndarray, mirror: bool) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity ``b = M a + t`` (``M`` = scale x rotation, times a flip of x if mirrored)."""
    f = np.array([-1.0, 1.0]) if mirror else np.array([1.0, 1.0])
    a2 = a * f
    ca, cb = a2.mean(axis=0), b.mean(axis=0)
    za = (a2[:, 0] - ca[0]) + 1j * (a2[:, 1] - ca[1])
    zb = (b[:, 0] - cb[0]) + 1j * (b[:, 1] - cb[1])
    k = (np.conj(za) @ zb) / max(float(np.real(np.conj(za) @ za)), 1e-30)
    m2 = np.array([[k.real, -k.imag], [k.imag, k.real]])
    return m2 @ np.diag(f), cb - m2 @ ca


def _nearest(a: np.ndarray, b: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from scipy.spatial import cKDTree

    d, j = cKDTree(b).query(a, distance_upper_bound=tol)
    i = np.flatnonzero(np.isfinite(d))
    # one-to-one: keep the closest source for each reference
    order = np.argsort(d[i])
    _, first = np.unique(j[i][order], return_index=True)
    keep = i[order][first]
    return keep, j[keep], d[keep]


def match_triangles(
    src_xy: np.ndarray,
    ref_xy: np.ndarray,
    *,
    n_bright: int = 25,
    tolerance: float = 3.0,
    scale_range: tuple[float, float] = (0.8, 1.25),
    allow_mirror: bool = True,
    min_matches: int = 5,
    max_candidates: int = 200,
) -> SimilarityMatch:
    """Match two point lists (each sorted brightest first) up to a similarity transform.

    Parameters
    ----------
    src_xy, ref_xy
        ``(n, 2)`` positions, brightest first: sources in pixels, references projected into
        the same pixel frame with the rough WCS.
    n_bright
        Points of each list used to build triangles.
    tolerance
        Match radius (pixels) when counting and refining matches.
    scale_range
        Allowed scale of the transform (the rough WCS's plate-scale uncertainty).
    allow_mirror
        Also try mirrored (parity-flipped) transforms.
    min_matches
        Fewest matched pairs accepted.
    max_candidates
        Triangle pairs (closest in invariant space) tried.
    """
    from scipy.spatial import cKDTree

    src_xy, ref_xy = np.asarray(src_xy, float), np.asarray(ref_xy, float)
    if len(src_xy) < 3 or len(ref_xy) < 3:
        raise AstrometryError(
            f"pattern matching needs at least 3 sources and 3 reference stars, got {len(src_xy)} and "
            f"{len(ref_xy)}; check the detection threshold and the reference-catalogue region"
        )
    s, r = src_xy[:n_bright], ref_xy[: int(n_bright * 1.6)]
    inv_s, tri_s = _triangles(s)
    inv_r, tri_r = _triangles(r)
    if not len(inv_s) or not len(inv_r):
        raise AstrometryError("pattern matching: the points are degenerate (collinear)")
    d, k = cKDTree(inv_r).query(inv_s, k=3, distance_upper_bound=0.02)
    pairs = [(i, k[i, c], d[i, c]) for i in range(len(inv_s)) for c in range(3) if np.isfinite(d[i, c])]
    pairs.sort(key=lambda p: p[2])
    best: SimilarityMatch | None = None
    for i, j, _ in pairs[:max_candidates]:
        a, b = s[tri_s[i]], r[tri_r[j]]
        for mirror in (False, True) if allow_mirror else (False,):
            m, t = _fit_similarity(a, b, mirror)
            scale = float(np.sqrt(abs(np.linalg.det(m))))
            if not scale_range[0] <= scale <= scale_range[1]:
                continue
            if np.max(np.hypot(*(a @ m.T + t - b).T)) > tolerance:
                continue
            si, ri, _ = _nearest(src_xy @ m.T + t, ref_xy, tolerance)
            if best is not None and len(si) <= len(best.src_index):
                continue
            for _ in range(3):  # refine on all matches
                if len(si) < 3:
                    break
                m, t = _fit_similarity(src_xy[si], ref_xy[ri], mirror)
                si, ri, dist = _nearest(src_xy @ m.T + t, ref_xy, tolerance)
            if len(si) >= 3:
                rms = float(np.sqrt(np.mean(np.sum((src_xy[si] @ m.T + t - ref_xy[ri]) ** 2, axis=1))))
                best = SimilarityMatch(m, t, si, ri, rms)
    if best is None or len(best.src_index) < min_matches:
        found = 0 if best is None else len(best.src_index)
        raise AstrometryError(
            f"pattern matching found no consistent transform ({found} matched pairs, need "
            f"{min_matches}); the initial WCS may be wrong beyond the allowed scale range "
            f"{scale_range} or the reference catalogue does not cover the image"
        )
    _log.info("pattern match: %d pairs, rms %.2f px", len(best.src_index), best.rms)
    return best

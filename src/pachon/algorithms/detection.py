"""Source detection: matched-filter thresholding, footprints, peaks and simple deblending.

The image is smoothed with a Gaussian of the PSF's width (the matched filter for a point
source on a sky-dominated background) and divided by the noise of the smoothed image,
``sqrt(variance ⊗ kernel²)``, so the threshold is in units of point-source significance.
Connected pixels above threshold (8-connectivity) make *footprints*; local maxima of the
smoothed image inside a footprint are its *peaks*.  A footprint with several peaks is a blend:
each pixel goes to the peak whose PSF-shaped template predicts the most light there (a
PSF-template deblender, the simplest of Rubin's "deblendedAsPsf" family), and the children
keep a ``parent`` link.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from pachon.core.errors import ConfigError

__all__ = ["Detections", "detect_sources", "significance_image"]

_log = logging.getLogger(__name__)


@dataclass
class Detections:
    """Footprints and peaks of one detection pass.

    Attributes
    ----------
    footprints
        int32 label image: 0 for no detection, ``k`` for pixels of footprint ``k`` (1-based).
    x, y
        Peak positions (array pixel coordinates), one row per detected source.
    peak_significance
        Matched-filter significance of each peak.
    footprint_id
        Footprint (label) of each peak.
    parent
        Row index of the blend's parent, or -1; a blend of ``n`` peaks gets one parent row
        (the brightest peak's position, ``n_child = n``) followed by its children.
    n_child
        Number of children of a parent row (0 otherwise).
    footprint_area
        Number of pixels of the source's footprint (the child's share for children).
    children_map
        int32 image: row index of the source each footprint pixel belongs to (-1 elsewhere).
    """

    footprints: np.ndarray
    x: np.ndarray
    y: np.ndarray
    peak_significance: np.ndarray
    footprint_id: np.ndarray
    parent: np.ndarray
    n_child: np.ndarray
    footprint_area: np.ndarray
    children_map: np.ndarray

    def __len__(self) -> int:
        return len(self.x)

    @property
    def is_primary(self) -> np.ndarray:
        """True for sources that are not blend parents (isolated sources and children)."""
        return self.n_child == 0


def significance_image(image: np.ndarray, variance: np.ndarray, psf_sigma: float) -> np.ndarray:
    """Matched-filter significance: ``(image ⊗ g) / sqrt(variance ⊗ g²)`` for a Gaussian ``g``."""
    from scipy import ndimage

    if not psf_sigma > 0:
        raise ConfigError(f"significance_image: psf_sigma must be positive pixels, got {psf_sigma!r}")
    # float32 throughout: the significance needs no more, and the filters run twice as fast
    smooth = ndimage.gaussian_filter(
        np.asarray(image, np.float32), psf_sigma, mode="constant", truncate=4.0, output=np.float32
    )
    # g² is a Gaussian of width sigma/sqrt(2), normalized to sum(g²) = 1/(4 pi sigma²)
    var_s = ndimage.gaussian_filter(
        np.asarray(variance, np.float32), psf_sigma / math.sqrt(2.0), mode="nearest", output=np.float32
    )
    var_s *= np.float32(1.0 / (4.0 * math.pi * psf_sigma**2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var_s > 0, smooth / np.sqrt(var_s), np.float32(0.0))


def detect_sources(
    image: np.ndarray,
    variance: np.ndarray,
    psf_sigma: float,
    *,
    threshold: float = 5.0,
    min_pixels: int = 5,
    bad: np.ndarray | None = None,
    grow: int = 0,
    deblend: bool = True,
    max_peaks: int = 20,
    min_peak_contrast: float = 0.05,
) -> Detections:
    """Detect sources above ``threshold`` sigma in the matched-filtered image.

    Parameters
    ----------
    image, variance
        Background-subtracted pixels and their variance.
    psf_sigma
        Gaussian-equivalent PSF width (pixels) of the matched filter.
    threshold
        Detection threshold, in sigma of the smoothed image.
    min_pixels
        Smallest footprint kept (pixels above threshold).
    bad
        Pixels that cannot host a detection (no data, bad columns).
    grow
        Grow footprints by this many pixels (the DETECTED mask covers the wings).
    deblend
        Split footprints with several peaks into children.
    max_peaks
        A footprint with more peaks is not deblended (flagged by ``n_child == 0`` and kept whole).
    min_peak_contrast
        Secondary peaks fainter than this fraction of the brightest in the footprint are dropped.
    """
    from scipy import ndimage

    if min_pixels < 1:
        raise ConfigError(f"detect_sources: min_pixels must be a positive integer, got {min_pixels!r}")
    sig = significance_image(image, variance, psf_sigma)
    above = sig > threshold
    if bad is not None:
        above &= ~bad
    labels, n = ndimage.label(above, structure=np.ones((3, 3), bool))
    if n:
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        small = sizes < min_pixels
        small[0] = False
        labels[small[labels]] = 0
        labels, n = ndimage.label(labels > 0, structure=np.ones((3, 3), bool))
    if grow > 0 and n:
        grown = ndimage.grey_dilation(labels, size=(2 * grow + 1, 2 * grow + 1))
        labels = np.where(labels > 0, labels, grown).astype(np.int32)
    labels = labels.astype(np.int32)
    maxf = ndimage.maximum_filter(sig, size=3, mode="constant", cval=-np.inf)
    is_peak = (sig == maxf) & (labels > 0) & (sig > threshold)
    py, px = np.nonzero(is_peak)
    val = sig[py, px]
    lab = labels[py, px]
    # drop faint secondary peaks: keep those above min_peak_contrast of their footprint's best
    best = np.zeros(n + 1)
    np.maximum.at(best, lab, val)
    keep = val >= min_peak_contrast * best[lab]
    px, py, val, lab = px[keep], py[keep], val[keep], lab[keep]
    order = np.lexsort((-val, lab))
    px, py, val, lab = px[order], py[order], val[order], lab[order]
    counts = np.bincount(lab, minlength=n + 1)
    fp_area = np.bincount(labels.ravel(), minlength=n + 1)
    blended = (counts[lab] > 1) & (counts[lab] <= max_peaks) & deblend
    if not deblend or not blended.any():
        first = np.r_[True, lab[1:] != lab[:-1]]
        sel = first if not deblend else first | ~blended
        px, py, val, lab = px[sel], py[sel], val[sel], lab[sel]
        row_of_label = np.full(n + 1, -1)
        row_of_label[lab] = np.arange(len(lab))
        cmap = row_of_label[labels]
        return Detections(
            labels, px.astype(float), py.astype(float), val, lab,
            np.full(len(px), -1), np.zeros(len(px), np.int32), fp_area[lab], cmap.astype(np.int32),
        )  # fmt: skip
    return _deblend(labels, n, image, psf_sigma, px, py, val, lab, blended, fp_area)


def _deblend(
    labels: np.ndarray,
    n: int,
    image: np.ndarray,
    psf_sigma: float,
    px: np.ndarray,
    py: np.ndarray,
    val: np.ndarray,
    lab: np.ndarray,
    blended: np.ndarray,
    fp_area: np.ndarray,
) -> Detections:
    """Rows: a parent then its children for each blend; pixels go to the brightest template."""
    first = np.r_[True, lab[1:] != lab[:-1]]
    # isolated footprints: one row; blends: a parent row (copy of the brightest peak) + children
    n_rows_per_peak = np.where(blended & first, 2, 1)
    rows = np.cumsum(n_rows_per_peak) - 1  # row of each peak (the child row for blends)
    total = int(rows[-1]) + 1 if len(rows) else 0
    x = np.empty(total)
    y = np.empty(total)
    sig = np.empty(total)
    fid = np.empty(total, dtype=np.int64)
    parent = np.full(total, -1)
    n_child = np.zeros(total, np.int32)
    x[rows], y[rows], sig[rows], fid[rows] = px, py, val, lab
    parent_rows = rows[blended & first] - 1
    x[parent_rows], y[parent_rows] = px[blended & first], py[blended & first]
    sig[parent_rows], fid[parent_rows] = val[blended & first], lab[blended & first]
    parent_of_label = np.full(n + 1, -1)
    parent_of_label[lab[blended & first]] = parent_rows
    parent[rows[blended]] = parent_of_label[lab[blended]]
    n_child[parent_rows] = np.bincount(lab[blended], minlength=n + 1)[lab[blended & first]]
    # pixel assignment: isolated footprints map to their one row
    row_of_label = np.full(n + 1, -1)
    row_of_label[lab[~blended]] = rows[~blended]
    cmap = row_of_label[labels]
    # blended pixels: argmax over the blend's peaks of amplitude * Gaussian(distance)
    bl_pix_y, bl_pix_x = np.nonzero(np.isin(labels, lab[blended]))
    area = fp_area[fid].copy()
    if len(bl_pix_y):
        pix_lab = labels[bl_pix_y, bl_pix_x]
        amp = np.maximum(image[py[blended], px[blended]], 1e-30)
        b_lab, b_row = lab[blended], rows[blended]
        bx, by = px[blended], py[blended]
        # process per blend label with a dense (pixels x peaks-in-blend) score: peaks are few
        order = np.argsort(pix_lab, kind="stable")
        starts = np.searchsorted(pix_lab[order], np.unique(b_lab))
        ends = np.r_[starts[1:], len(order)]
        for lbl, s, e in zip(np.unique(b_lab), starts, ends, strict=True):
            sel = order[s:e]
            k = b_lab == lbl
            d2 = (bl_pix_x[sel, None] - bx[k][None]) ** 2 + (bl_pix_y[sel, None] - by[k][None]) ** 2
            score = np.log(amp[k])[None] - 0.5 * d2 / (1.5 * psf_sigma) ** 2
            cmap[bl_pix_y[sel], bl_pix_x[sel]] = b_row[k][np.argmax(score, axis=1)]
        counts = np.bincount(cmap[cmap >= 0], minlength=total)
        area[rows[blended]] = counts[rows[blended]]
    return Detections(
        labels, x.astype(float), y.astype(float), sig, fid, parent, n_child, area, cmap.astype(np.int32)
    )

"""Quality measures of ISR output: how flat the background is."""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["background_flatness"]

log = logging.getLogger(__name__)


def background_flatness(
    image: np.ndarray, *, bin_size: int = 64, mask: np.ndarray | None = None, source_sigma: float | None = 3.0
) -> float:
    """Relative RMS of the background over the frame.

    The image is cut into ``bin_size`` squares; the median of each square gives a binned
    background whose standard deviation, divided by its median, is returned (0 for a perfectly
    flat background).  Masked pixels are ignored, and so are sources: pixels more than
    ``source_sigma`` robust sigma above the median, grown by three pixels (None: keep them).
    """
    img = np.asarray(image, dtype=np.float64)
    bad = np.zeros(img.shape, bool) if mask is None else np.asarray(mask, bool)
    if source_sigma is not None:
        from scipy.ndimage import binary_dilation

        med = np.median(img[~bad])
        sigma = 1.4826 * np.median(np.abs(img[~bad] - med))
        bad = bad | binary_dilation(img > med + source_sigma * sigma, iterations=3)
    img = np.where(bad, np.nan, img)
    ny, nx = (img.shape[0] // bin_size) * bin_size, (img.shape[1] // bin_size) * bin_size
    blocks = img[:ny, :nx].reshape(ny // bin_size, bin_size, nx // bin_size, bin_size).transpose(0, 2, 1, 3)
    med = np.nanmedian(blocks.reshape(blocks.shape[0], blocks.shape[1], -1), axis=2)
    return float(np.nanstd(med) / np.nanmedian(med))

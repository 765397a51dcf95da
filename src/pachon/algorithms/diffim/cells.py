"""Cell-wise FFT filtering: the engine behind spatially varying convolution and decorrelation.

The image is cut into square cells (``cell`` pixels, with a ``margin`` on each side so that
kernels up to ``margin`` pixels wide see real neighbours).  Each cell gets its own set of
Fourier filters (e.g. the matching kernel and decorrelation kernel evaluated at the cell's
centre), applied by one batched real FFT; outputs are cropped to the cell and reassembled.
Kernels that vary slowly across the image are thus applied piecewise-constantly per cell,
at the cost of about one full-image FFT convolution whatever the number of kernels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["CellGrid", "apply_cell_filters", "kernels_to_fourier"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CellGrid:
    """How an image of ``shape`` is cut into cells.

    Attributes
    ----------
    shape
        Image shape (rows, columns).
    cell
        Cell width (pixels).
    margin
        Extra pixels read on each side of a cell.
    """

    shape: tuple[int, int]
    cell: int
    margin: int

    @classmethod
    def make(cls, shape: tuple[int, int], margin: int, cell: int = 256) -> CellGrid:
        """A grid whose FFT size (``cell + 2 margin``) is a fast length."""
        from scipy.fft import next_fast_len

        cell = int(min(cell, max(shape)))
        cell += cell % 2
        size = next_fast_len(cell + 2 * margin, real=True)
        while size % 2:
            size = next_fast_len(size + 1, real=True)
        return cls((int(shape[0]), int(shape[1])), cell, (size - cell) // 2)

    @property
    def size(self) -> int:
        """FFT size of a cell with its margins."""
        return self.cell + 2 * self.margin

    @property
    def n_cells(self) -> tuple[int, int]:
        """Number of cells along rows and columns."""
        return (-(-self.shape[0] // self.cell), -(-self.shape[1] // self.cell))

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Array-pixel centres ``(x, y)`` of the cells, shape ``n_cells``."""
        ny, nx = self.n_cells
        yc = np.minimum(np.arange(ny) * self.cell + 0.5 * self.cell, self.shape[0] - 0.5) - 0.5
        xc = np.minimum(np.arange(nx) * self.cell + 0.5 * self.cell, self.shape[1] - 0.5) - 0.5
        return np.meshgrid(xc, yc)

    def cell_medians(self, array: np.ndarray, good: np.ndarray) -> np.ndarray:
        """Median of ``array`` over the good pixels of each cell (global median where none).

        Cells wider than 64 pixels are subsampled (every ``cell // 64``-th pixel each way).
        """
        ny, nx = self.n_cells
        step = max(1, self.cell // 64)
        while self.cell % step:
            step -= 1
        full = np.full((ny * self.cell, nx * self.cell), np.nan, np.float32)
        full[: self.shape[0], : self.shape[1]] = np.where(good, array, np.nan)
        full = full[::step, ::step]
        c = self.cell // step
        blocks = full.reshape(ny, c, nx, c).transpose(0, 2, 1, 3).reshape(ny, nx, -1)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                med = np.nanmedian(blocks, axis=2)
        fallback = float(np.nanmedian(full)) if np.isfinite(full).any() else 1.0
        return np.where(np.isfinite(med), med, fallback)


def kernels_to_fourier(kernels: np.ndarray, size: int) -> np.ndarray:
    """Real-FFT of centred odd kernels ``(..., k, k)`` zero-padded to ``size`` (centre at origin)."""
    from scipy import fft

    k = kernels.shape[-1]
    pad = np.zeros(kernels.shape[:-2] + (size, size))
    idx = (np.arange(k) - k // 2) % size  # kernel centre at the origin, wrapped
    pad[..., idx[:, None], idx[None, :]] = kernels
    return fft.rfft2(pad, axes=(-2, -1), workers=-1)


FilterFn = Callable[[slice], Sequence[tuple[int, int, np.ndarray]]]


def apply_cell_filters(
    images: Sequence[np.ndarray],
    grid: CellGrid,
    n_out: int,
    filters: FilterFn,
    *,
    rows_per_chunk: int = 4,
    derived: Sequence[tuple[int, int, np.ndarray]] = (),
) -> list[np.ndarray]:
    """``out[o] = sum_i filter[o, i] * image[i]`` (products in Fourier space), cell by cell.

    Parameters
    ----------
    images
        Input images of ``grid.shape`` (NaN-free).
    grid
        The cell grid.
    n_out
        Number of outputs.
    filters
        Called with a slice of cell rows; returns ``(out_index, in_index, filter)`` triples where
        ``filter`` has shape ``(n_rows_in_slice, n_cells_x, size, size // 2 + 1)`` or
        broadcasts to it.
    rows_per_chunk
        Cell rows transformed at once (bounds the memory).
    derived
        ``(out_index, from_out_index, filter)``: outputs that are another output's spectrum
        times a filter the same for every cell (``(size, size // 2 + 1)``), computed after
        the sums (one product instead of one per input).

    Returns
    -------
    list of numpy.ndarray
        The ``n_out`` filtered images (float32), each of ``grid.shape``.
    """
    from numpy.lib.stride_tricks import sliding_window_view
    from scipy import fft

    ny, nx = grid.n_cells
    c, m, s = grid.cell, grid.margin, grid.size
    h, w = grid.shape
    padded = []
    for im in images:  # single precision: twice the FFT speed, ample for noisy images
        p = np.zeros((ny * c + 2 * m, nx * c + 2 * m), np.float32)
        p[m : m + h, m : m + w] = im
        padded.append(p)
    outs = [np.zeros((ny * c, nx * c), np.float32) for _ in range(n_out)]
    for r0 in range(0, ny, rows_per_chunk):
        rows = slice(r0, min(ny, r0 + rows_per_chunk))
        nr = rows.stop - rows.start
        spectra = []
        for p in padded:
            view = sliding_window_view(p[r0 * c : r0 * c + (nr - 1) * c + s], (s, s))[::c, ::c]
            spectra.append(fft.rfft2(np.ascontiguousarray(view[:nr, :nx]), axes=(-2, -1), workers=-1))
        acc: dict[int, np.ndarray] = {}
        for o, i, f in filters(rows):
            term = spectra[i] * np.asarray(f, np.complex64)
            if o in acc:
                acc[o] += term
            else:
                acc[o] = term
        for o, src, f in derived:
            acc[o] = acc[src] * np.asarray(f, np.complex64)
        for o, spec in acc.items():
            cells = fft.irfft2(spec, s=(s, s), axes=(-2, -1), workers=-1)[:, :, m : m + c, m : m + c]
            outs[o][r0 * c : r0 * c + nr * c] = cells.transpose(0, 2, 1, 3).reshape(nr * c, nx * c)
    return [o[:h, :w] for o in outs]

"""Detector signatures: flat response, dark current, defects, cosmic rays, saturation and bleed,
non-linearity, crosstalk, bias and read noise; assembly into the raw amplifier layout.

Units: electrons until :func:`read_out`, which applies the non-linearity
(``e' = e + nonlinearity * e**2``), the gain, crosstalk between the amplifiers of a detector
(in readout order: victim ADU += coefficient x source ADU at the same readout pixel), the bias
(level + fixed column gradient in the imaging area + per-row offsets shared by the overscan)
and Gaussian read noise, then digitises.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pachon.sim.config import DetectorConfig

__all__ = [
    "DetectorSignatures",
    "make_signatures",
    "add_cosmic_rays",
    "saturate_and_bleed",
    "read_out",
    "raw_to_assembled",
    "crosstalk_matrix",
]

log = logging.getLogger(__name__)


def crosstalk_matrix(n_amp: int, coefficient: float) -> np.ndarray:
    """``C[victim, source]``: ``coefficient`` for neighbours in readout order, halving per step."""
    idx = np.arange(n_amp)
    dist = np.abs(idx[:, None] - idx[None, :])
    out = coefficient * 0.5 ** np.maximum(dist - 1, 0).astype(float)
    out[dist == 0] = 0.0
    return out


@dataclass
class DetectorSignatures:
    """Fixed (exposure-independent) signatures of one detector.

    ``flat`` is the response map (PRNU x large scale x defects; mean about 1), ``illumination``
    the vignetting map, ``dark`` the dark current map (e-/s), ``bias_levels`` the mean bias of
    each amplifier (ADU), ``bias_columns`` the fixed bias structure of each amplifier's raw array.
    """

    detector_id: int
    flat: np.ndarray
    large_scale: np.ndarray
    illumination: np.ndarray
    dark: np.ndarray
    bias_levels: np.ndarray
    crosstalk: np.ndarray
    gains: np.ndarray
    read_noise_adu: np.ndarray
    full_well: np.ndarray
    defects: list[dict[str, Any]] = field(default_factory=list)


def _focal_radius2(detector: Any, field_radius_mm: float) -> tuple[np.ndarray, np.ndarray]:
    b = detector.bbox
    x = np.arange(b.x0, b.x0 + b.width, dtype=np.float64)
    y = np.arange(b.y0, b.y0 + b.height, dtype=np.float64)
    fx, fy = detector.pixel_to_focal_plane(x[None, :], y[:, None])
    return fx / field_radius_mm, fy / field_radius_mm


def make_signatures(
    detector: Any, cfg: DetectorConfig, *, vignetting: float, field_radius_mm: float, rng: np.random.Generator
) -> DetectorSignatures:
    """Draw the fixed signatures of ``detector`` (deterministic for a given ``rng``)."""
    b = detector.bbox
    rx, ry = _focal_radius2(detector, field_radius_mm)
    rho2 = rx * rx + ry * ry
    illumination = (1.0 - vignetting * rho2).astype(np.float32)
    large = (1.0 + cfg.flat_large_scale * (0.6 * rho2 - 0.4 * ry + 0.3 * rx * ry - 0.2)).astype(np.float32)
    flat = large * (1.0 + cfg.prnu * rng.standard_normal(b.shape, dtype=np.float32))
    defects: list[dict[str, Any]] = []
    for _ in range(cfg.n_bad_columns):
        col = int(rng.integers(b.width // 8, b.width - b.width // 8))
        row0 = int(rng.integers(0, b.height // 2))
        flat[row0:, col] *= 0.05
        defects.append(
            {"kind": "bad_column", "x0": col, "y0": row0, "x1": col + 1, "y1": b.height, "value": 0.05}
        )
    dark = np.full(b.shape, cfg.dark_current, dtype=np.float32)
    n_hot = int(rng.binomial(b.width * b.height, cfg.hot_pixel_fraction))
    hx, hy = rng.integers(0, b.width, n_hot), rng.integers(0, b.height, n_hot)
    dark[hy, hx] = cfg.hot_pixel_current
    defects += [
        {
            "kind": "hot_pixel",
            "x0": int(x),
            "y0": int(y),
            "x1": int(x) + 1,
            "y1": int(y) + 1,
            "value": cfg.hot_pixel_current,
        }
        for x, y in zip(hx, hy, strict=True)
    ]
    amps = detector.amplifiers
    gains = np.array([a.gain for a in amps])
    bias = np.array([a.bias_level for a in amps]) + rng.normal(0.0, cfg.bias_offset_rms, len(amps))
    well = np.array([cfg.full_well if cfg.full_well is not None else a.saturation * a.gain for a in amps])
    return DetectorSignatures(
        detector_id=detector.id,
        flat=flat,
        large_scale=large,
        illumination=illumination,
        dark=dark,
        bias_levels=bias,
        crosstalk=crosstalk_matrix(len(amps), cfg.crosstalk),
        gains=gains,
        read_noise_adu=np.array([a.read_noise / a.gain for a in amps]),
        full_well=well,
        defects=defects,
    )


def add_cosmic_rays(
    image: np.ndarray,
    rate_per_cm2_s: float,
    exposure_s: float,
    pixel_size_mm: float,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """Add straight cosmic-ray tracks (about 80 e- per µm of path, a few to tens of pixels long)."""
    ny, nx = image.shape
    area_cm2 = nx * ny * (pixel_size_mm / 10.0) ** 2
    n = int(rng.poisson(rate_per_cm2_s * area_cm2 * exposure_s))
    if n == 0:
        return []
    x0, y0 = rng.uniform(0, nx, n), rng.uniform(0, ny, n)
    length = rng.exponential(6.0, n) + 1.0
    angle = rng.uniform(0, 2 * np.pi, n)
    charge = rng.uniform(1500.0, 4000.0, n) * length
    steps = np.ceil(length * 2).astype(int)
    track = np.repeat(np.arange(n), steps)
    t = (np.arange(track.size) - np.repeat(np.cumsum(steps) - steps, steps) + 0.5) / steps[track]
    xs = np.clip((x0[track] + t * length[track] * np.cos(angle[track])).astype(int), 0, nx - 1)
    ys = np.clip((y0[track] + t * length[track] * np.sin(angle[track])).astype(int), 0, ny - 1)
    np.add.at(image, (ys, xs), (charge / steps)[track].astype(image.dtype))
    x1, y1 = x0 + length * np.cos(angle), y0 + length * np.sin(angle)
    return [
        {
            "kind": "cosmic_ray",
            "x0": float(a),
            "y0": float(b),
            "x1": float(c),
            "y1": float(d),
            "value": float(q),
        }
        for a, b, c, d, q in zip(x0, y0, x1, y1, charge, strict=True)
    ]


def saturate_and_bleed(
    image: np.ndarray, full_well: np.ndarray, amp_columns: np.ndarray
) -> list[dict[str, Any]]:
    """Clip charge at the full well and spill the excess up and down the column (bleed trails).

    ``full_well`` holds one value per amplifier and ``amp_columns`` the amplifier index of each
    pixel (same shape as ``image``).  Loops over saturated columns only.
    """
    well = full_well[amp_columns]
    over = image > well
    trails: list[dict[str, Any]] = []
    if not over.any():
        return trails
    ny = image.shape[0]
    for col in np.flatnonzero(over.any(axis=0)):
        rows = np.flatnonzero(over[:, col])
        w = float(well[rows[0], col])
        excess = float(np.sum(image[rows, col] - w))
        lo, hi = int(rows.min()), int(rows.max())
        image[lo : hi + 1, col] = np.maximum(image[lo : hi + 1, col], w)
        spill = excess / w / 2.0
        n_spill = int(math.ceil(spill))
        lo2, hi2 = max(0, lo - n_spill), min(ny, hi + 1 + n_spill)
        image[lo2:lo, col] = w
        image[hi + 1 : hi2, col] = w
        np.minimum(image[:, col], w, out=image[:, col])
        trails.append(
            {"kind": "bleed", "x0": int(col), "y0": lo2, "x1": int(col) + 1, "y1": hi2, "value": excess}
        )
    return trails


def amp_index_map(detector: Any) -> np.ndarray:
    """Amplifier index of every assembled pixel."""
    out = np.zeros(detector.bbox.shape, dtype=np.int16)
    for i, amp in enumerate(detector.amplifiers):
        out[amp.bbox.slices()] = i
    return out


def read_out(
    electrons: np.ndarray,
    detector: Any,
    sig: DetectorSignatures,
    cfg: DetectorConfig,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Convert an assembled electron image into raw amplifier arrays (int32, one per amplifier).

    Non-linearity, gain, crosstalk, bias (level, fixed column gradient, row offsets shared with
    the overscan), read noise and digitisation, as the module docstring describes.
    """
    e = electrons + cfg.nonlinearity * electrons * electrons if cfg.nonlinearity else electrons
    amps = detector.amplifiers
    data = []
    for i, amp in enumerate(amps):
        seg = e[amp.bbox.slices()] * np.float32(1.0 / sig.gains[i])
        if amp.flip_x:
            seg = seg[:, ::-1]
        if amp.flip_y:
            seg = seg[::-1, :]
        data.append(seg)
    if np.any(sig.crosstalk):
        shapes = {d.shape for d in data}
        if len(shapes) == 1:
            stack = np.stack(data)
            flat = stack.reshape(len(data), -1)
            mixed = flat + sig.crosstalk.astype(np.float32) @ flat
            data = list(mixed.reshape(stack.shape))
    raws = []
    for i, amp in enumerate(amps):
        h, w = amp.raw_bbox.shape
        raw = np.empty((h, w), dtype=np.float32)
        raw[...] = sig.bias_levels[i]
        raw += rng.normal(0.0, cfg.bias_row_rms, (h, 1)).astype(np.float32) if cfg.bias_row_rms else 0.0
        ds = amp.raw_data_bbox.slices(origin=(amp.raw_bbox.x0, amp.raw_bbox.y0))
        gradient = cfg.bias_gradient * np.linspace(0.0, 1.0, amp.raw_data_bbox.width, dtype=np.float32)
        raw[ds] += data[i] + gradient[None, :]
        raw += sig.read_noise_adu[i] * rng.standard_normal((h, w), dtype=np.float32)
        raws.append(np.clip(np.rint(raw), 0, cfg.adc_max).astype(np.int32))
    return raws


def raw_to_assembled(raws: list[np.ndarray], detector: Any, *, subtract_overscan: bool = True) -> np.ndarray:
    """Assemble raw amplifier arrays into a detector image in ADU (overscan-median subtracted).

    A minimal instrument-signature removal used by tests and quick looks (not the ISR pipeline).
    """
    out = np.zeros(detector.bbox.shape, dtype=np.float64)
    for amp, raw in zip(detector.amplifiers, raws, strict=True):
        origin = (amp.raw_bbox.x0, amp.raw_bbox.y0)
        seg = raw[amp.raw_data_bbox.slices(origin=origin)].astype(np.float64)
        if subtract_overscan and amp.raw_serial_overscan_bbox is not None:
            seg = seg - np.median(raw[amp.raw_serial_overscan_bbox.slices(origin=origin)])
        if amp.flip_x:
            seg = seg[:, ::-1]
        if amp.flip_y:
            seg = seg[::-1, :]
        out[amp.bbox.slices()] = seg
    return out

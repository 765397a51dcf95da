"""The pixel work of :func:`~pachon.algorithms.isr.isr.run_isr`, done in place and per amplifier.

Speed comes from touching each pixel as few times as possible, in float32, with no image-sized
temporaries: the raw data segments are written once, overscan-subtracted, into a preallocated
float32 detector image (in their assembled place and orientation); mask bits are written per
amplifier slice; gain, bias, dark, variance and flat are applied amplifier by amplifier with
``out=`` arithmetic on slices that stay in the cache; masked pixels are found and filled in
work proportional to their number.  Steps that are switched off cost nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from pachon.algorithms.isr import assemble as asm
from pachon.algorithms.isr.config import IsrCalibs, IsrConfig
from pachon.algorithms.isr.crosstalk import correct_crosstalk_in_place
from pachon.algorithms.isr.defects import defect_pixels
from pachon.algorithms.isr.interpolate import fill_masked
from pachon.algorithms.isr.overscan import overscan_levels
from pachon.core.errors import FormatError

__all__ = ["amplifier_stage", "apply_flat", "flagged_pixels", "mask_stage"]

log = logging.getLogger(__name__)

#: overscan pixels (a regular subsample) behind the per-amplifier overscan noise statistic
NOISE_SAMPLE = 20000


def _check_finite(arr: np.ndarray, amp: Any, where: str) -> None:
    if np.issubdtype(arr.dtype, np.integer):
        return
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.sum(arr, dtype=np.float64)  # one pass: NaN or inf anywhere makes it non-finite
    if np.isfinite(total):
        return
    n_bad = int(np.count_nonzero(~np.isfinite(arr)))
    if n_bad:
        raise FormatError(
            f"{where}: amplifier {amp.name} holds {n_bad} NaN pixels; the raw is corrupt, re-transfer it"
        )


def _flag(mask_view: np.ndarray, bit: int, where: np.ndarray) -> None:
    np.bitwise_or(mask_view, np.uint32(bit), out=mask_view, where=where)


def amplifier_stage(
    raw: Any,
    detector: Any,
    config: IsrConfig,
    crosstalk: np.ndarray | None,
    image: np.ndarray,
    mask: Any,
    where: str,
    data_id: Any,
) -> dict[str, float]:
    """Overscan-subtracted data segments (ADU) into ``image``, SAT/SUSPECT bits, crosstalk.

    Returns the overscan noise (ADU) per amplifier name.
    """
    arrays = asm.amplifier_arrays(raw, detector, data_id=data_id, dtype=None)
    sat_bit, sus_bit = mask.bitmask("SAT"), mask.bitmask("SUSPECT")
    noise: dict[str, float] = {}
    for amp, arr in zip(detector.amplifiers, arrays, strict=True):  # loop over amplifiers only
        _check_finite(arr, amp, where)
        seg = asm.data_segment(arr, amp)
        out = asm.to_readout(image, amp)
        if config.do_overscan:
            rows, cols, stats = overscan_levels(arr, amp, config.overscan, noise_sample=NOISE_SAMPLE)
            noise[amp.name] = stats["overscan_noise"]
            rs, cs = amp.raw_data_bbox.slices(origin=(amp.raw_bbox.x0, amp.raw_bbox.y0))
            if rows is not None:
                np.subtract(seg, rows[rs, None], out=out)
            else:
                out[...] = seg
            if cols is not None:
                np.subtract(out, cols[None, cs], out=out)
        else:
            out[...] = seg
        msk = asm.to_readout(mask.array, amp)
        if config.do_saturation:
            _flag(msk, sat_bit, out >= config.saturation_fraction * amp.saturation)
        if config.suspect_fraction:
            _flag(msk, sus_bit, out >= config.suspect_fraction * amp.saturation)
    if crosstalk is not None:
        correct_crosstalk_in_place([asm.to_readout(image, a) for a in detector.amplifiers], crosstalk)
    return noise


def apply_flat(
    image: np.ndarray,
    variance: np.ndarray | None,
    mask_view: np.ndarray,
    flat: np.ndarray,
    bad_bit: int,
    *,
    scratch: np.ndarray | None = None,
) -> None:
    """Divide an image slice (and its variance by flat²) by the flat, in place.

    Pixels whose flat is not finite or not above 0.05 are left alone and flagged with
    ``bad_bit``.  The flat is read once, into its float32 reciprocal (in ``scratch``, of the
    slice's shape, when given); the rest are multiplications in the cache.
    """
    inv = np.empty(image.shape, np.float32) if scratch is None else scratch
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        np.divide(np.float32(1.0), flat, out=inv)
    good = inv < np.float32(20.0)  # flat > 0.05 (False for NaN)
    good &= inv > 0  # flat finite and positive
    if not good.all():
        bad = ~good
        inv[bad] = 1.0
        np.bitwise_or(mask_view, np.uint32(bad_bit), out=mask_view, where=bad)
    image *= inv
    if variance is not None:
        variance *= inv
        variance *= inv


def flagged_pixels(mask_array: np.ndarray, bits: int, *, block_rows: int = 256) -> np.ndarray:
    """Sorted flat indices of the pixels with any of ``bits`` set (in cache-sized row blocks)."""
    nx = mask_array.shape[1]
    b = np.uint32(bits)
    parts = [
        np.flatnonzero(mask_array[r : r + block_rows] & b) + r * nx
        for r in range(0, mask_array.shape[0], block_rows)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def mask_stage(
    image: np.ndarray,
    mask: Any,
    detector: Any,
    calibs: IsrCalibs,
    config: IsrConfig,
    where: str,
    keep: Callable[[str, np.ndarray], None],
    *,
    defects: Any = None,
) -> None:
    """Defects, vignetting, ghosts and trails into the mask; interpolation over masked pixels."""
    flat_mask = mask.array.reshape(-1)
    if defects is not None:
        flat_mask[defect_pixels(defects, image.shape)] |= np.uint32(mask.bitmask("BAD"))
    if config.do_vignetting:
        from pachon.algorithms.isr.vignetting import vignetted_mask

        vig = vignetted_mask(detector, float(config.vignetting_radius_mm))
        mask.set("VIGNETTED", vig)
        mask.set("NO_DATA", vig)
        image[vig] = 0.0
    if config.do_ghosts and calibs.ghost_model is not None:
        from pachon.algorithms.isr.ghosts import bright_stars_mm, ghost_mask

        stars = calibs.bright_stars
        if stars is None:
            stars = bright_stars_mm(detector, mask.get("SAT"), min_pixels=config.ghost_min_saturated)
            log.info("%s: %d saturated star(s) for the ghost mask", where, len(stars))
        mask.set("GHOST", ghost_mask(detector, calibs.ghost_model, stars))
    if config.do_linear_features:
        from pachon.algorithms.isr.linear_features import find_linear_features, line_mask

        lines = find_linear_features(image, config.linear_features, bad=mask.any("BAD", "SAT"))
        if lines:
            log.info("%s: %d linear feature(s) masked", where, len(lines))
        mask.set("STREAK", line_mask(image.shape, lines))
    if config.do_interpolate:
        idx = flagged_pixels(mask.array, mask.bitmask(*config.interpolate_planes))
        if idx.size:
            fill_masked(image, idx)
            flat_mask[idx] |= np.uint32(mask.bitmask("INTRP"))
            log.debug("%s: %d masked pixels interpolated", where, idx.size)
        keep("interpolate", image)

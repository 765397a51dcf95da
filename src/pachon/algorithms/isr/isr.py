"""`run_isr`: from a detector's raw amplifiers to a calibrated Exposure with mask and variance.

Order of the steps (each switchable in :class:`IsrConfig`):

1. per amplifier, in ADU and readout orientation: NaN check, saturation/suspect flags,
   overscan subtraction; crosstalk between amplifiers;
2. assembly into the detector image, gain (ADU → electrons, per amplifier);
3. inter-detector crosstalk, bias, linearity, dark (scaled by the dark time);
4. variance from signal and read noise; brighter-fatter correction; flat;
5. defects (BAD), vignetting, ghosts, satellite trails (STREAK), interpolation.

The output image and variance are in electrons (flat-fielded); the mask uses the core planes.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pachon.algorithms.isr import assemble as asm
from pachon.algorithms.isr.brighter_fatter import correct_brighter_fatter
from pachon.algorithms.isr.config import IsrCalibs, IsrConfig
from pachon.algorithms.isr.crosstalk import correct_crosstalk, correct_inter_detector_crosstalk
from pachon.algorithms.isr.defects import defects_to_mask
from pachon.algorithms.isr.interpolate import interpolate_masked
from pachon.algorithms.isr.linearity import linearize
from pachon.algorithms.isr.overscan import subtract_overscan
from pachon.core.errors import ConfigError, FormatError

__all__ = ["run_isr", "calib_array"]

log = logging.getLogger(__name__)


def calib_array(
    calib: Any, name: str, detector: Any, *, data_id: Any = None, expected: int | None = None
) -> np.ndarray:
    """The pixels of a calibration (array or Exposure), checked against the detector.

    Raises
    ------
    ConfigError
        The calibration was made for another detector, has the wrong shape or holds NaNs.
    """
    where = f"raw {data_id}" if data_id is not None else f"detector {detector.name}"
    meta = getattr(calib, "metadata", None)
    det = meta.get("DETECTOR") if meta is not None and hasattr(meta, "get") else None
    if det is None:
        det = expected
    if det is not None and int(det) != int(detector.id):
        raise ConfigError(
            f"{where}: the {name} calibration is for detector {det}, not {detector.id} "
            f"({detector.name}); certify the right {name} or fix the collection"
        )
    arr = np.asarray(getattr(calib, "image", calib), dtype=np.float64)
    if arr.shape != detector.bbox.shape:
        raise ConfigError(
            f"{where}: the {name} calibration has shape {arr.shape}, detector "
            f"{detector.name} is {detector.bbox.shape}; use the {name} of this detector"
        )
    if name != "flat" and not np.all(np.isfinite(arr)):
        raise ConfigError(
            f"{where}: the {name} calibration holds {int(np.sum(~np.isfinite(arr)))} "
            f"NaN/inf pixels; remake it"
        )
    return arr


def _need(calib: Any, name: str, flag: str, config: IsrConfig, where: str) -> bool:
    if calib is not None:
        return True
    if config.skip_missing_calibs:
        log.info("%s: no %s calibration, %s skipped", where, name, flag)
        return False
    raise ConfigError(
        f"{where}: isr.{flag} is on but no {name} calibration was given; supply it or set isr.{flag}=False"
    )


def _amp_stage(
    raw: Any, detector: Any, config: IsrConfig, calibs: IsrCalibs, where: str, data_id: Any
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], dict[str, float]]:
    arrays = asm.amplifier_arrays(raw, detector, data_id=data_id)
    segs, sat, sus = [], [], []
    noise: dict[str, float] = {}
    for amp, arr in zip(detector.amplifiers, arrays, strict=True):
        if not np.all(np.isfinite(arr)):
            raise FormatError(
                f"{where}: amplifier {amp.name} holds {int(np.sum(~np.isfinite(arr)))} NaN "
                f"pixels; the raw is corrupt, re-transfer it"
            )
        if config.do_overscan:
            arr, st = subtract_overscan(arr, amp, config.overscan)
            noise[amp.name] = st["overscan_noise"]
        seg = asm.data_segment(arr, amp)
        limit = config.saturation_fraction * amp.saturation
        sat.append(seg >= limit if config.do_saturation else np.zeros(seg.shape, bool))
        sus.append(
            seg >= config.suspect_fraction * amp.saturation
            if config.suspect_fraction
            else np.zeros(seg.shape, bool)
        )
        segs.append(seg)
    if config.do_crosstalk and _need(calibs.crosstalk, "crosstalk", "do_crosstalk", config, where):
        segs = correct_crosstalk(segs, calibs.crosstalk)
    return segs, sat, sus, noise


def run_isr(
    raw: Any,
    detector: Any,
    calibs: IsrCalibs | None = None,
    config: IsrConfig | None = None,
    *,
    exposure_time: float = 0.0,
    dark_time: float | None = None,
    data_id: Any = None,
    steps: dict[str, np.ndarray] | None = None,
) -> Any:
    """Instrument signature removal of one detector.

    Parameters
    ----------
    raw
        The raw (``HDUList``, frame array or per-amplifier arrays; see
        :func:`~pachon.algorithms.isr.assemble.amplifier_arrays`).
    detector
        Its :class:`~pachon.instruments.Detector`.
    calibs
        The calibrations (:class:`IsrCalibs`); steps whose calibration is needed must have it.
    config
        Steps and options (:class:`IsrConfig`).
    exposure_time, dark_time
        Seconds; the dark is scaled by ``dark_time`` (``exposure_time`` when None).
    data_id
        Named in error messages and log lines.
    steps
        When a dict is given, a copy of the assembled image after each step is stored in it
        (for diagnostics and the per-step residual tests).

    Returns
    -------
    pachon.core.exposure.Exposure
        Image and variance in electrons, mask with SAT, SUSPECT, BAD, INTRP, STREAK, GHOST,
        VIGNETTED planes.

    Raises
    ------
    FormatError
        A missing amplifier, a wrong-shaped amplifier array or NaN pixels in the raw.
    ConfigError
        A calibration for another detector or of the wrong shape, or a needed one missing.
    """
    from pachon.core.exposure import Exposure
    from pachon.core.mask import Mask

    config = config or IsrConfig()
    calibs = calibs or IsrCalibs()
    where = f"raw {data_id}" if data_id is not None else f"detector {detector.name}"
    if calibs.detector is not None and int(calibs.detector) != int(detector.id):
        raise ConfigError(f"{where}: calibrations are for detector {calibs.detector}, not {detector.id}")
    segs, sat, sus, noise = _amp_stage(raw, detector, config, calibs, where, data_id)
    record = steps if steps is not None else {}

    def keep(name: str, img: np.ndarray) -> None:
        if steps is not None:
            record[name] = img.copy()

    image = asm.assemble(segs, detector)
    mask = Mask(shape=image.shape)
    mask.set("SAT", asm.assemble(sat, detector, dtype=bool))
    mask.set("SUSPECT", asm.assemble(sus, detector, dtype=bool))
    keep("overscan", image)
    n_amp = len(detector.amplifiers)
    gains = np.asarray(
        calibs.gains if calibs.gains is not None else [a.gain for a in detector.amplifiers], float
    )
    noise_e = np.asarray(
        calibs.read_noise if calibs.read_noise is not None else [a.read_noise for a in detector.amplifiers],
        float,
    )
    if gains.shape != (n_amp,) or noise_e.shape != (n_amp,):
        raise ConfigError(f"{where}: {gains.size} gains / {noise_e.size} read noises for {n_amp} amplifiers")
    amp_gain = (
        np.ones(image.shape)
        if not config.do_gain
        else asm.assemble([np.full(s.shape, g) for s, g in zip(segs, gains, strict=True)], detector)
    )
    image *= amp_gain
    keep("gain", image)
    if config.do_inter_detector_crosstalk and _need(
        calibs.inter_detector, "inter-detector crosstalk", "do_inter_detector_crosstalk", config, where
    ):
        image = correct_inter_detector_crosstalk(image, *calibs.inter_detector)
    if config.do_bias and _need(calibs.bias, "bias", "do_bias", config, where):
        image -= calib_array(calibs.bias, "bias", detector, data_id=data_id)
        keep("bias", image)
    if config.do_linearity and _need(calibs.linearity, "linearity", "do_linearity", config, where):
        coeffs = np.asarray(calibs.linearity, float).reshape(n_amp, -1)
        for amp, c in zip(detector.amplifiers, coeffs, strict=True):  # loop over amplifiers only
            image[amp.bbox.slices()] = linearize(image[amp.bbox.slices()], c)
        keep("linearity", image)
    if config.do_dark and _need(calibs.dark, "dark", "do_dark", config, where):
        t = exposure_time if dark_time is None else dark_time
        image -= calib_array(calibs.dark, "dark", detector, data_id=data_id) * float(t)
        keep("dark", image)
    read_var = asm.assemble([np.full(s.shape, n * n) for s, n in zip(segs, noise_e, strict=True)], detector)
    variance = (
        np.maximum(image, 0.0) + read_var
        if config.do_gain
        else (np.maximum(image, 0.0) / amp_gain + read_var / amp_gain**2)
    )
    if config.do_brighter_fatter and _need(
        calibs.bf_kernel, "brighter-fatter kernel", "do_brighter_fatter", config, where
    ):
        image, n_it, skipped = correct_brighter_fatter(image, calibs.bf_kernel, n_iter=config.bf_iterations)
        mask.set("SUSPECT", skipped)
        log.debug("%s: brighter-fatter converged in %d iterations", where, n_it)
        keep("brighter_fatter", image)
    _flat_and_masks(image, variance, mask, detector, calibs, config, where, data_id, keep)
    exp = Exposure(image.astype(np.float32), mask, variance.astype(np.float32))
    exp.metadata["DETECTOR"] = detector.id
    exp.metadata["ISR_UNIT"] = ("electron" if config.do_gain else "adu", "unit of the image")
    for name, value in noise.items():
        exp.metadata[f"HIERARCH OSNOISE_{name}"] = (value, "overscan noise after subtraction, ADU")
    return exp


def _flat_and_masks(
    image: np.ndarray,
    variance: np.ndarray,
    mask: Any,
    detector: Any,
    calibs: IsrCalibs,
    config: IsrConfig,
    where: str,
    data_id: Any,
    keep: Any,
) -> None:
    if config.do_flat and _need(calibs.flat, "flat", "do_flat", config, where):
        flat = calib_array(calibs.flat, "flat", detector, data_id=data_id)
        good = np.isfinite(flat) & (flat > 0.05)
        safe = np.where(good, flat, 1.0)
        image /= safe
        variance /= safe * safe
        mask.set("BAD", ~good)
        keep("flat", image)
    if config.do_defects and _need(calibs.defects, "defects", "do_defects", config, where):
        mask.set("BAD", defects_to_mask(calibs.defects, image.shape))
    if config.do_vignetting:
        from pachon.algorithms.isr.vignetting import vignetted_mask

        vig = vignetted_mask(detector, float(config.vignetting_radius_mm))
        mask.set("VIGNETTED", vig)
        mask.set("NO_DATA", vig)
        image[vig] = 0.0
    if config.do_ghosts and calibs.ghost_model is not None and calibs.bright_stars is not None:
        from pachon.algorithms.isr.ghosts import ghost_mask

        mask.set("GHOST", ghost_mask(detector, calibs.ghost_model, calibs.bright_stars))
    if config.do_linear_features:
        from pachon.algorithms.isr.linear_features import find_linear_features, line_mask

        lines = find_linear_features(image, config.linear_features, bad=mask.any("BAD", "SAT"))
        if lines:
            log.info("%s: %d linear feature(s) masked", where, len(lines))
        mask.set("STREAK", line_mask(image.shape, lines))
    if config.do_interpolate:
        bad = mask.any(*config.interpolate_planes)
        if bad.any():
            image[...] = interpolate_masked(image, bad)
            mask.set("INTRP", bad)
        keep("interpolate", image)

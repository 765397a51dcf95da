"""`run_isr`: from a detector's raw amplifiers to a calibrated Exposure with mask and variance.

Order of the steps (each switchable in :class:`IsrConfig`):

1. per amplifier, in ADU and readout orientation: NaN check, saturation/suspect flags,
   overscan subtraction; crosstalk between amplifiers;
2. assembly into the detector image, gain (ADU → electrons, per amplifier);
3. inter-detector crosstalk, bias, linearity, dark (scaled by the dark time);
4. variance from signal and read noise; brighter-fatter correction; flat;
5. defects (BAD), vignetting, ghosts, satellite trails (STREAK), interpolation.

The output image and variance are in electrons (flat-fielded); the mask uses the core planes.
The pixel work is done in place on one float32 image, amplifier by amplifier (see
:mod:`.stages`); only brighter-fatter (a convolution) works on the whole image at once.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pachon.algorithms.isr.brighter_fatter import correct_brighter_fatter
from pachon.algorithms.isr.config import IsrCalibs, IsrConfig
from pachon.algorithms.isr.linearity import linearize
from pachon.algorithms.isr.stages import amplifier_stage, apply_flat, mask_stage
from pachon.core.errors import ConfigError

__all__ = ["run_isr", "calib_array"]

log = logging.getLogger(__name__)


def _calib_pixels(calib: Any, name: str, detector: Any, *, data_id: Any = None,
                  expected: int | None = None) -> np.ndarray:
    """The pixels of a calibration, checked, in their own dtype (no copy)."""
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
    arr = np.asarray(getattr(calib, "image", calib))
    if not np.issubdtype(arr.dtype, np.number):
        arr = arr.astype(np.float64)
    if arr.shape != detector.bbox.shape:
        raise ConfigError(
            f"{where}: the {name} calibration has shape {arr.shape}, detector "
            f"{detector.name} is {detector.bbox.shape}; use the {name} of this detector"
        )
    if name != "flat":
        with np.errstate(over="ignore", invalid="ignore"):
            finite = np.isfinite(np.sum(arr, dtype=np.float64))  # one pass; exact count only if not
        n_bad = 0 if finite else int(np.count_nonzero(~np.isfinite(arr)))
        if n_bad:
            raise ConfigError(f"{where}: the {name} calibration holds {n_bad} NaN/inf pixels; remake it")
    return arr


def calib_array(
    calib: Any, name: str, detector: Any, *, data_id: Any = None, expected: int | None = None
) -> np.ndarray:
    """The pixels of a calibration (array or Exposure), checked against the detector, as float64.

    Raises
    ------
    ConfigError
        The calibration was made for another detector, has the wrong shape or holds NaNs.
    """
    return np.asarray(_calib_pixels(calib, name, detector, data_id=data_id, expected=expected), np.float64)


def _need(calib: Any, name: str, flag: str, config: IsrConfig, where: str) -> bool:
    if calib is not None:
        return True
    if config.skip_missing_calibs:
        log.info("%s: no %s calibration, %s skipped", where, name, flag)
        return False
    raise ConfigError(
        f"{where}: isr.{flag} is on but no {name} calibration was given; supply it or set isr.{flag}=False"
    )


def _use(on: bool, calib: Any, name: str, flag: str, config: IsrConfig, where: str) -> bool:
    return bool(on) and _need(calib, name, flag, config, where)


def _amp_values(calibs: IsrCalibs, detector: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    amps = detector.amplifiers
    gains = np.asarray(calibs.gains if calibs.gains is not None else [a.gain for a in amps], float)
    noise = np.asarray(
        calibs.read_noise if calibs.read_noise is not None else [a.read_noise for a in amps], float
    )
    if gains.shape != (len(amps),) or noise.shape != (len(amps),):
        raise ConfigError(
            f"{where}: {gains.size} gains / {noise.size} read noises for {len(amps)} amplifiers; "
            "give one per amplifier"
        )
    return gains, noise


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
        When a dict is given, a float32 copy of the assembled image after each step is stored
        in it (for diagnostics and the per-step residual tests).

    Returns
    -------
    pachon.core.exposure.Exposure
        Image and variance in electrons (ADU when ``do_gain`` is off), mask with SAT, SUSPECT,
        BAD, INTRP, STREAK, GHOST, VIGNETTED planes.  The variance is zero when
        ``do_variance`` is off.

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
    gains, noise_e = _amp_values(calibs, detector, where)
    n_amp = len(detector.amplifiers)

    def pixels(on: bool, calib: Any, name: str, flag: str) -> np.ndarray | None:
        if not _use(on, calib, name, flag, config, where):
            return None
        return _calib_pixels(calib, name, detector, data_id=data_id)

    # every calibration is checked before any pixel work
    bias = pixels(config.do_bias, calibs.bias, "bias", "do_bias")
    dark = pixels(config.do_dark, calibs.dark, "dark", "do_dark")
    flat = pixels(config.do_flat, calibs.flat, "flat", "do_flat")
    crosstalk = calibs.crosstalk if _use(
        config.do_crosstalk, calibs.crosstalk, "crosstalk", "do_crosstalk", config, where) else None
    inter = calibs.inter_detector if _use(
        config.do_inter_detector_crosstalk, calibs.inter_detector, "inter-detector crosstalk",
        "do_inter_detector_crosstalk", config, where) else None
    if inter is not None:
        _check_inter(inter, detector, where)
    lin = np.asarray(calibs.linearity, float).reshape(n_amp, -1) if _use(
        config.do_linearity, calibs.linearity, "linearity", "do_linearity", config, where) else None
    do_bf = _use(config.do_brighter_fatter, calibs.bf_kernel, "brighter-fatter kernel",
                 "do_brighter_fatter", config, where)
    defects = calibs.defects if _use(config.do_defects, calibs.defects, "defects", "do_defects",
                                     config, where) else None

    shape = detector.bbox.shape
    image = np.empty(shape, dtype=np.float32)
    mask = Mask(shape=shape)
    noise = amplifier_stage(raw, detector, config, crosstalk, image, mask, where, data_id)
    record: dict[str, np.ndarray] = steps if steps is not None else {}

    def keep(name: str, img: np.ndarray, sl: Any = None) -> None:
        if steps is None:
            return
        if sl is None:
            record[name] = img.copy()
        else:
            record.setdefault(name, np.zeros(shape, dtype=np.float32))[sl] = img

    keep("overscan", image)
    variance = np.zeros(shape, dtype=np.float32)
    t_dark = float(exposure_time if dark_time is None else dark_time)
    bad_bit = mask.bitmask("BAD")
    flat_now = flat is not None and not do_bf
    scratch = np.empty(max(a.bbox.width * a.bbox.height for a in detector.amplifiers), np.float32)
    for i, amp in enumerate(detector.amplifiers):  # loop over amplifiers: each slice stays in cache
        sl = amp.bbox.slices()
        img = image[sl]
        tmp = scratch[: img.size].reshape(img.shape)
        if config.do_gain:
            img *= np.float32(gains[i])
        keep("gain", img, sl)
        if inter is not None:
            for src, c in zip(*inter, strict=True):
                np.multiply(np.asarray(src)[sl], float(c), out=tmp)
                img -= tmp
        if bias is not None:
            img -= bias[sl]
            keep("bias", img, sl)
        if lin is not None:
            img[...] = linearize(img, lin[i])
            keep("linearity", img, sl)
        if dark is not None:
            np.multiply(dark[sl], t_dark, out=tmp)
            img -= tmp
            keep("dark", img, sl)
        var = variance[sl] if config.do_variance else None
        if var is not None:
            g = 1.0 if config.do_gain else float(gains[i])
            np.maximum(img, 0.0, out=var)
            if g != 1.0:
                var /= np.float32(g)
            var += np.float32((noise_e[i] / g) ** 2)
        if flat_now:
            apply_flat(img, var, mask.array[sl], flat[sl], bad_bit, scratch=tmp)
            keep("flat", img, sl)
    if do_bf:
        corrected, n_it, skipped = correct_brighter_fatter(
            image, calibs.bf_kernel, n_iter=config.bf_iterations
        )
        image[...] = corrected
        del corrected
        mask.set("SUSPECT", skipped)
        log.debug("%s: brighter-fatter converged in %d iterations", where, n_it)
        keep("brighter_fatter", image)
        if flat is not None:
            for amp in detector.amplifiers:
                sl = amp.bbox.slices()
                apply_flat(image[sl], variance[sl] if config.do_variance else None, mask.array[sl],
                           flat[sl], bad_bit)
            keep("flat", image)
    mask_stage(image, mask, detector, calibs, config, where, keep, defects=defects)
    exp = Exposure(image, mask, variance)
    exp.metadata["DETECTOR"] = detector.id
    exp.metadata["ISR_UNIT"] = ("electron" if config.do_gain else "adu", "unit of the image")
    for name, value in noise.items():
        exp.metadata[f"HIERARCH OSNOISE_{name}"] = (value, "overscan noise after subtraction, ADU")
    return exp


def _check_inter(inter: Any, detector: Any, where: str) -> None:
    sources, coefficients = inter
    if len(sources) != len(coefficients):
        raise ConfigError(
            f"{where}: {len(sources)} inter-detector crosstalk sources but {len(coefficients)} "
            "coefficients; give one coefficient per source detector"
        )
    for src in sources:
        if np.shape(src) != detector.bbox.shape:
            raise ConfigError(
                f"{where}: inter-detector crosstalk source of shape {np.shape(src)} does not match "
                f"the image {detector.bbox.shape}"
            )

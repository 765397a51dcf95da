"""Calibration-product tasks: combined bias, dark and flats, photon transfer curve, defects.

Rubin's layout: a per-exposure ISR task (``cpBiasProc``, ``cpDarkProc``, ``cpFlatProc``: an
:class:`~pachon.pipelines.isr_task.IsrTask` with only the steps the product needs) and a
combining task per detector (per detector and physical filter for flats).  Products are
written directly as the calibration dataset types ``bias``, ``dark``, ``flat``, ``ptc``,
``linearity``, ``defects`` (registered ``is_calibration``), so
:func:`pachon.pipelines.cp_certify.certify_calibrations` certifies them in place.

Each per-exposure task picks its frames with a per-input filter on the raws (``raw_where``:
``exposure.observation_type = 'bias'`` ...), so one run of the whole ``cp.yaml`` makes every
product; the bias made in the run is used by the dark and flat ISR, the dark by the flat ISR and
the defects task (prerequisites made in the same pipeline).  A subset run (``cp.yaml#dark``)
finds them as certified calibrations instead.  The combining tasks also check the observation
type recorded by the per-exposure task and refuse frames of another type.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pachon.algorithms.cp import CombineConfig, DefectConfig, combine_frames, find_defects
from pachon.algorithms.isr import IsrConfig
from pachon.core.errors import ConfigError
from pachon.pipe.task import Input, Output, PrerequisiteInput, Task
from pachon.pipelines.isr_task import CALIBRATION_TYPES, DET, EXP_DET, IsrTask, IsrTaskConfig

__all__ = ["CpBiasProcTask", "CpDarkProcTask", "CpFlatProcTask", "CpBiasTask", "CpDarkTask", "CpFlatTask",
           "CpDefectsTask", "CpCombineConfig", "CpDefectsConfig", "CP_PRODUCTS", "combined_exposure"]

_log = logging.getLogger(__name__)
_FLAT_DIMS = (*DET, "physical_filter")

#: Calibration dataset types written by the cp pipeline (certified as written).
CP_PRODUCTS = ("bias", "dark", "flat", "ptc", "linearity", "defects", "crosstalk", "bfk", "ghost")


def calibration_output(name: str, doc: str = "") -> Output:
    """The `Output` of calibration ``name`` (a key of `CALIBRATION_TYPES`), flagged ``is_calibration``."""
    dtype, dims, storage = CALIBRATION_TYPES[name]
    return Output(dtype, dims, storage, doc=doc or f"{name} calibration", is_calibration=True)

_OFF = {k: False for k in ("do_crosstalk", "do_linearity", "do_brighter_fatter", "do_defects",
                           "do_interpolate", "do_flat")}


@dataclass
class CpBiasProcConfig(IsrTaskConfig):
    """Per-exposure ISR of bias frames: overscan, assembly, gain (electrons)."""

    isr: IsrConfig = field(default_factory=lambda: IsrConfig(do_bias=False, do_dark=False, **_OFF))
    required_calibrations: list[str] = field(default_factory=list)
    raw_where: str | None = "exposure.observation_type = 'bias'"


@dataclass
class CpDarkProcConfig(IsrTaskConfig):
    """Per-exposure ISR of dark frames: as bias, then the bias subtracted (required)."""

    isr: IsrConfig = field(default_factory=lambda: IsrConfig(do_dark=False, **_OFF))
    required_calibrations: list[str] = field(default_factory=lambda: ["bias"])
    raw_where: str | None = "exposure.observation_type = 'dark'"


@dataclass
class CpFlatProcConfig(IsrTaskConfig):
    """Per-exposure ISR of flats: bias (required) and dark (when there is one) subtracted."""

    isr: IsrConfig = field(default_factory=lambda: IsrConfig(**_OFF))
    required_calibrations: list[str] = field(default_factory=lambda: ["bias"])
    raw_where: str | None = "exposure.observation_type = 'flat'"


class CpBiasProcTask(IsrTask):
    """ISR of one bias exposure (overscan, gain)."""

    outputs = {"proc": Output("cpBiasProc", EXP_DET, "Exposure")}
    config_class = CpBiasProcConfig
    output_name = "proc"


class CpDarkProcTask(IsrTask):
    """ISR of one dark exposure (overscan, gain, bias)."""

    outputs = {"proc": Output("cpDarkProc", EXP_DET, "Exposure")}
    config_class = CpDarkProcConfig
    output_name = "proc"


class CpFlatProcTask(IsrTask):
    """ISR of one flat exposure (overscan, gain, bias, dark)."""

    outputs = {"proc": Output("cpFlatProc", EXP_DET, "Exposure")}
    config_class = CpFlatProcConfig
    output_name = "proc"


@dataclass
class CpCombineConfig:
    """Combination of the per-exposure frames (sigma-clipped mean by default)."""

    combine: CombineConfig = field(default_factory=CombineConfig)
    #: Refuse frames whose recorded observation type differs (None: accept any).
    check_observation_type: bool = True


def _check_types(frames: list[Any], expected: str, label: str, config: CpCombineConfig) -> None:
    if not config.check_observation_type:
        return
    types = [str(f.metadata.get("OBSTYPE", expected)) for f in frames]
    wrong = sorted({t for t in types if t != expected})
    if wrong:
        raise ConfigError(f"{label}: {types.count(wrong[0])} input frame(s) are {wrong[0]!r}, not "
                          f"{expected!r}; select the exposures with where=\"exposure.observation_type = "
                          f"'{expected}'\"")


def combined_exposure(frames: list[Any], config: CombineConfig, *, obstype: str,
                      per_second: bool = False, normalize: bool = False) -> Any:
    """Combine per-exposure Exposures into one calibration Exposure (image, variance, BAD mask).

    ``per_second`` divides each frame by its ``DARKTIME``; ``normalize`` scales each frame by
    its median and the result to mean 1 (flats).
    """
    from pachon.core.exposure import Exposure
    from pachon.core.mask import Mask

    # as stored (float32): combine_frames converts one block of rows at a time
    images = [np.asarray(f.image) for f in frames]
    variances = [np.asarray(f.variance) for f in frames]
    scales = None
    if per_second:
        scales = [float(f.metadata.get("DARKTIME", 0.0)) for f in frames]
        if min(scales) <= 0:
            raise ConfigError(f"cp {obstype}: a frame has dark time {min(scales)} s; darks need DARKTIME > 0")
    elif normalize:
        scales = [float(np.median(im)) for im in images]
        if min(scales) <= 0:
            raise ConfigError(f"cp {obstype}: a flat has median level {min(scales):.3g}; check the flats")
    image, variance, n_used = combine_frames(images, config, variances=variances, scales=scales)
    if normalize:
        norm = float(np.nanmean(image))
        image, variance = image / norm, variance / norm**2
    mask = Mask(shape=image.shape)
    mask.set("BAD", (n_used == 0) | ~np.isfinite(image))
    exp = Exposure(np.nan_to_num(image).astype(np.float32), mask, variance.astype(np.float32))
    first = frames[0].metadata
    exp.metadata["DETECTOR"] = int(first.get("DETECTOR", -1))
    exp.metadata["OBSTYPE"] = (obstype, "calibration product")
    exp.metadata["NCOMBINE"] = (len(frames), "frames combined")
    if normalize:
        exp.metadata["FILTER"] = str(first.get("FILTER", ""))
    _copy_gains(frames, exp.metadata, obstype)
    return exp


def _copy_gains(frames: list[Any], metadata: Any, obstype: str) -> None:
    """The gains the frames were converted with (``ISR_GAIN_<amp>``), when they all agree: ISR
    rescales the product to the gains it applies (`isr_task.match_calibration_gains`)."""
    cards = [{k: v for k, v in f.metadata.items() if k.startswith("ISR_GAIN_")} for f in frames]
    if not cards[0]:
        return
    if any(c != cards[0] for c in cards[1:]):
        _log.warning("cp %s: the frames were converted with different gains; none recorded", obstype)
        return
    for key, value in cards[0].items():
        metadata[f"HIERARCH {key}"] = (value, "gain applied, e-/ADU")


class _CombineTask(Task):
    dimensions = DET
    config_class = CpCombineConfig
    obstype = ""
    per_second = False
    normalize = False

    def run(self, procs: list[Any]) -> dict[str, Any]:
        """Combine the frames of one detector (and filter)."""
        _check_types(procs, self.obstype, type(self).__name__, self.config)
        exp = combined_exposure(procs, self.config.combine, obstype=self.obstype,
                                per_second=self.per_second, normalize=self.normalize)
        _log.info("%s: combined %d frames", self.obstype, len(procs))
        return {"product": exp}


class CpBiasTask(_CombineTask):
    """Combined bias (electrons) of one detector."""

    inputs = {"procs": Input("cpBiasProc", EXP_DET, "Exposure", multiple=True)}
    outputs = {"product": calibration_output("bias")}
    obstype = "bias"


class CpDarkTask(_CombineTask):
    """Combined dark current (electrons per second of dark time) of one detector."""

    inputs = {"procs": Input("cpDarkProc", EXP_DET, "Exposure", multiple=True)}
    outputs = {"product": calibration_output("dark")}
    obstype = "dark"
    per_second = True


class CpFlatTask(_CombineTask):
    """Combined flat (mean 1) of one detector and physical filter."""

    dimensions = _FLAT_DIMS
    inputs = {"procs": Input("cpFlatProc", EXP_DET, "Exposure", multiple=True)}
    outputs = {"product": calibration_output("flat")}
    obstype = "flat"
    normalize = True


@dataclass
class CpDefectsConfig:
    """Thresholds of the defect finder (see `pachon.algorithms.cp.DefectConfig`)."""

    defects: DefectConfig = field(default_factory=DefectConfig)


class CpDefectsTask(Task):
    """Defect boxes ``(n, 4)`` from the combined dark and flats of one detector.

    The dark and flats come from the same run when it makes them, else from the certified
    calibrations (``time="any"``: the one certification of each; ambiguous ones fail).  A
    detector with no dark or no flat has nothing to work from: its quantum is dropped
    (``missing="drop"``), since the task has no other input to say which detectors have data.
    """

    dimensions = DET
    prerequisites = {"dark": PrerequisiteInput("dark", DET, "Exposure", lookup="calibration", time="any",
                                               missing="drop"),
                     "flats": PrerequisiteInput("flat", _FLAT_DIMS, "Exposure", multiple=True,
                                                lookup="calibration", time="any", missing="drop")}
    outputs = {"defects": calibration_output("defects")}
    config_class = CpDefectsConfig

    def run(self, dark: Any, flats: list[Any]) -> dict[str, Any]:
        """Hot pixels from the dark, dead pixels and columns from each flat; boxes of the union."""
        from pachon.algorithms.isr.defects import mask_to_defects

        bad = find_defects(None, np.asarray(dark.image, float), self.config.defects)[1]
        for flat in flats:
            bad |= find_defects(np.asarray(flat.image, float), None, self.config.defects)[1]
        boxes = np.asarray(mask_to_defects(bad), dtype=np.int64).reshape(-1, 4)
        _log.info("defects: %d pixels in %d boxes", int(bad.sum()), len(boxes))
        return {"defects": boxes}

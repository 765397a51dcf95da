"""Crosstalk task: the amplifier-to-amplifier crosstalk matrix of one detector from bright sources.

:class:`CpCrosstalkTask` reads the raws of one detector selected by its ``where`` (default:
dedicated ``crosstalk`` exposures, e.g. projector spots; set it to
``exposure.observation_type = 'science'`` to use bright-star science exposures).  Each
amplifier is overscan-subtracted, cut to its data segment in readout orientation (ADU, where
the electronics mix the signals), its median (sky) subtracted, and
:func:`pachon.algorithms.cp.measure_crosstalk` fits ``C[victim, source]`` over every exposure
together.  The output is the ``crosstalk`` calibration (Numpy ``(n_amp, n_amp)``), read by
:class:`~pachon.pipelines.isr_task.IsrTask` as ``IsrCalibs.crosstalk``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pachon.algorithms.cp import measure_crosstalk
from pachon.algorithms.isr.assemble import amplifier_arrays, data_segment
from pachon.algorithms.isr.overscan import OverscanConfig, subtract_overscan
from pachon.core.errors import ConfigError
from pachon.pipe.task import Input, Output, Task
from pachon.pipelines.isr_task import DET, EXP_DET, raw_context

__all__ = ["CpCrosstalkConfig", "CpCrosstalkTask"]

_log = logging.getLogger(__name__)


@dataclass
class CpCrosstalkConfig:
    """Settings of the crosstalk measurement.

    Attributes
    ----------
    overscan
        Overscan subtraction of each amplifier.
    victim_max
        A victim pixel is used only below this (ADU above its amplifier's median).
    min_source
        A source amplifier needs pixels above this (ADU) to constrain its coefficient.
    max_relative_error
        Fail when a coefficient's 1-sigma error exceeds this fraction of the largest coefficient
        (not enough bright pixels); None accepts any.
    where
        Per-input filter selecting the raws.
    """

    overscan: OverscanConfig = field(default_factory=OverscanConfig)
    victim_max: float = 200.0
    min_source: float = 5000.0
    max_relative_error: float | None = 0.5
    where: str = "exposure.observation_type = 'crosstalk'"

    def __post_init__(self) -> None:
        if isinstance(self.overscan, dict):
            self.overscan = OverscanConfig(**self.overscan)


class CpCrosstalkTask(Task):
    """Crosstalk matrix ``C[victim, source]`` (ADU/ADU) of one detector from bright-source raws."""

    dimensions = DET
    inputs = {"raws": Input("raw", EXP_DET, "RawFits", multiple=True, doc="exposures with bright sources",
                            where=CpCrosstalkConfig.where)}
    outputs = {"crosstalk": Output("crosstalk", DET, "Numpy", is_calibration=True,
                                   doc="crosstalk matrix C[victim, source], readout order")}
    config_class = CpCrosstalkConfig

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.inputs = {"raws": Input("raw", EXP_DET, "RawFits", multiple=True,
                                     doc="exposures with bright sources", where=self.config.where)}

    def _segments(self, raw: Any, data_id: dict[str, Any]) -> list[np.ndarray]:
        _, det, info = raw_context(raw, data_id)
        did = {**data_id, "exposure": info.exposure_id}
        out = []
        for amp, arr in zip(det.amplifiers, amplifier_arrays(raw, det, data_id=did), strict=True):
            if not np.all(np.isfinite(arr)):
                raise ConfigError(f"raw {did}: amplifier {amp.name} holds NaN pixels; remove this exposure")
            seg = data_segment(subtract_overscan(arr, amp, self.config.overscan)[0], amp)
            out.append(seg - np.median(seg))
        return out

    def run_quantum(self, inputs: dict[str, Any], data_id: dict[str, Any]) -> dict[str, Any]:
        """Measure every exposure's amplifiers, fit the matrix, check that it is constrained."""
        exposures = [self._segments(raw, data_id) for raw in inputs["raws"]]
        if len({s.shape for e in exposures for s in e}) != 1:
            raise ConfigError(f"crosstalk {data_id}: the amplifiers' data segments differ in shape; "
                              f"this measurement needs equal amplifiers")
        coeff, err = measure_crosstalk(exposures, victim_max=self.config.victim_max,
                                       min_source=self.config.min_source)
        off = ~np.eye(len(coeff), dtype=bool)
        scale = float(np.max(np.abs(coeff[off]))) if off.any() else 0.0
        worst = float(np.max(err[off])) if off.any() else 0.0
        limit = self.config.max_relative_error
        if limit is not None and (not np.isfinite(worst) or worst > limit * max(scale, 1e-12)):
            raise ConfigError(f"crosstalk {data_id}: a coefficient has error {worst:.3g} against largest "
                              f"{scale:.3g} from {len(exposures)} exposure(s); add exposures with bright "
                              f"sources in every amplifier (config 'where': {self.config.where!r})")
        _log.info("crosstalk %s: %d exposures, largest coefficient %.3g, worst error %.2g", data_id,
                  len(exposures), scale, worst)
        return {"crosstalk": coeff}

    def run(self, **inputs: Any) -> dict[str, Any]:
        """Not used: the task needs the data ID (see `run_quantum`)."""
        raise NotImplementedError("CpCrosstalkTask runs through run_quantum(inputs, data_id)")

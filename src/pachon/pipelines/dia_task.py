"""Detection and measurement of DIA sources on a stored difference image.

:class:`DiaTask` runs per ``(instrument, exposure, detector)`` on ``difference_exp``, the
``calexp`` (forced ``scienceFlux``) and ``template_detector`` (forced ``templateFlux``).  The
matched-filter score is recomputed from the difference
(:func:`pachon.algorithms.diffim.detect.score_image`), sources of both signs above
``threshold`` are measured into the Rubin APDB ``DiaSource`` columns
(:func:`pachon.algorithms.dia.measure.measure_dia_sources`, which also fills ``reliability``)
and written as the ``dia_source`` ArrowTable.  ``diaSourceId`` is
``(exposure * 10_000 + detector) * 100_000 + row``, unique per repository for up to 10^4
detectors and 10^5 sources per detector.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pachon.algorithms.dia.measure import DiaMeasureConfig, measure_dia_sources
from pachon.algorithms.diffim.detect import detect_dia_sources, score_image
from pachon.core.exposure import Exposure
from pachon.pipe.task import Input, Output, Task

__all__ = ["DiaTaskConfig", "DiaTask", "dia_source_id_offset"]

_log = logging.getLogger(__name__)

_DETECTOR = ("instrument", "exposure", "detector")


@dataclass
class DiaTaskConfig:
    """Settings of :class:`DiaTask`."""

    #: Detection threshold on the score (sigma, both signs).
    threshold: float = 5.0
    #: Minimum footprint area (pixels above threshold).
    min_pixels: int = 3
    #: Measurement settings.
    measure: DiaMeasureConfig = field(default_factory=DiaMeasureConfig)


def dia_source_id_offset(exposure: int, detector: int) -> int:
    """First ``diaSourceId`` of a detector's sources (see the module docstring)."""
    return (int(exposure) * 10_000 + int(detector)) * 100_000


class DiaTask(Task):
    """Detect and measure DIA sources (see the module docstring)."""

    dimensions = _DETECTOR
    inputs = {
        "difference": Input("difference_exp", _DETECTOR, "Exposure", doc="decorrelated difference image"),
        "calexp": Input("calexp", _DETECTOR, "Exposure", doc="science exposure (forced scienceFlux)"),
        "template": Input("template_detector", _DETECTOR, "Exposure", doc="warped template (templateFlux)"),
    }
    outputs = {"dia_source": Output("dia_source", _DETECTOR, "ArrowTable", doc="Rubin APDB DiaSource rows")}
    config_class = DiaTaskConfig

    def run(self, difference: Exposure, calexp: Exposure, template: Exposure, exposure: int = 0,
            detector: int = 0) -> dict[str, Any]:
        """Detect on the recomputed score and measure every source."""
        score = score_image(difference)
        det = detect_dia_sources(difference, score, threshold=self.config.threshold,
                                 min_pixels=self.config.min_pixels)
        vi = calexp.visit_info
        band = vi.band if vi is not None else None
        table = measure_dia_sources(difference, score, det, science=calexp, template=template,
                                    config=self.config.measure, visit=int(exposure), detector=int(detector),
                                    band=band, id_offset=dia_source_id_offset(exposure, detector))
        _log.info("exposure %s detector %s: %d DIA sources", exposure, detector, table.num_rows)
        return {"dia_source": table}

    def run_quantum(self, inputs: dict[str, Any], data_id: dict[str, Any]) -> dict[str, Any]:
        """Pass the exposure and detector ids to `run` (for ``visit``, ``detector``, ids)."""
        return self.run(**inputs, exposure=int(data_id["exposure"]), detector=int(data_id["detector"]))

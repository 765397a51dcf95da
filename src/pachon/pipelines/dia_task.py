"""Detection and measurement of DIA sources on a stored difference image.

:class:`DiaTask` runs per ``(instrument, exposure, detector)`` on ``difference_exp``, the
``calexp`` (forced ``scienceFlux``) and ``template_detector`` (forced ``templateFlux``).  The
matched-filter score is recomputed from the difference
(:func:`pachon.algorithms.diffim.detect.score_image`), sources of both signs above
``threshold`` are measured into the Rubin APDB ``DiaSource`` columns
(:func:`pachon.algorithms.dia.measure.measure_dia_sources`, which also fills ``reliability``)
and written as the ``dia_source`` ArrowTable.

Sources whose measurement stamp holds a pixel of one of the ``reject_flags`` (default
``pixelFlags_saturated``: the wings, bleed trails and PSF-mismatch residuals of saturated stars,
which no kernel can subtract) are dropped; their number is logged.

Ids: ``diaSourceId = source_id_offset(exposure, detector) + row``, where
:func:`source_id_offset` is ``(compact_visit(exposure) * 10_000 + detector) * 100_000``.
:func:`compact_visit` maps Rubin-style exposure ids (``YYYYMMDD`` × 10^5 + seq, e.g.
2024040100100, which would overflow int64 in that formula) to days since 1970 × 10^5 + seq
(< 2.2 × 10^9 until the year 2570) and leaves ids below 10^9 unchanged, so ids stay below 2^63
and are unique per repository for up to 10^4 detectors and 10^5 sources per detector-visit.
The association task numbers ``diaForcedSourceId`` the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pachon.algorithms.dia.measure import DiaMeasureConfig, measure_dia_sources
from pachon.algorithms.diffim.detect import detect_dia_sources, score_image
from pachon.core.errors import ConfigError
from pachon.core.exposure import Exposure
from pachon.pipe.task import Input, Output, Task

__all__ = ["DiaTaskConfig", "DiaTask", "compact_visit", "source_id_offset", "dia_source_id_offset"]

_log = logging.getLogger(__name__)

_DETECTOR = ("instrument", "exposure", "detector")


@dataclass
class DiaTaskConfig:
    """Settings of :class:`DiaTask`."""

    #: Detection threshold on the score (sigma, both signs).
    threshold: float = 5.0
    #: Minimum footprint area (pixels above threshold).
    min_pixels: int = 3
    #: Boolean DiaSource columns: a source with any of them set is dropped (empty: keep all).
    reject_flags: tuple[str, ...] = ("pixelFlags_saturated",)
    #: Measurement settings.
    measure: DiaMeasureConfig = field(default_factory=DiaMeasureConfig)


def compact_visit(visit: int) -> int:
    """A short number unique per visit: ``YYYYMMDD·10^5 + seq`` → days since 1970 · 10^5 + seq.

    Parameters
    ----------
    visit
        Exposure (visit) id; ids below 10^9 (not of the Rubin form) are returned unchanged.

    Returns
    -------
    int
        The compact id (below 2.2 × 10^9 for dates before 2570).
    """
    v = int(visit)
    if v < 10**9:
        return v
    day_obs, seq = divmod(v, 100_000)
    y, md = divmod(day_obs, 10_000)
    m, d = divmod(md, 100)
    try:
        date = np.datetime64(f"{y:04d}-{m:02d}-{d:02d}")
    except ValueError:
        raise ConfigError(f"exposure id {v}: not of the form YYYYMMDD * 100000 + seq (day_obs {day_obs} "
                          f"is no date); use Rubin-style ids or ids below 10^9") from None
    days = int((date - np.datetime64("1970-01-01")).astype(int))
    return days * 100_000 + seq


def source_id_offset(visit: int, detector: int) -> int:
    """First ``diaSourceId`` (or ``diaForcedSourceId``) of a detector-visit; rows add 0 .. 99 999."""
    return (compact_visit(visit) * 10_000 + int(detector)) * 100_000


#: Former name of :func:`source_id_offset` (same values).
dia_source_id_offset = source_id_offset


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
        """Detect on the recomputed score, measure every source, drop those with a reject flag."""
        import pyarrow as pa

        score = score_image(difference)
        det = detect_dia_sources(difference, score, threshold=self.config.threshold,
                                 min_pixels=self.config.min_pixels)
        vi = calexp.visit_info
        band = vi.band if vi is not None else None
        table = measure_dia_sources(difference, score, det, science=calexp, template=template,
                                    config=self.config.measure, visit=int(exposure), detector=int(detector),
                                    band=band, id_offset=source_id_offset(exposure, detector))
        reject = np.zeros(table.num_rows, bool)
        for name in self.config.reject_flags:
            if name not in table.column_names:
                raise ConfigError(f"dia.reject_flags: {name!r} is no DiaSource column; use pixelFlags_* "
                                  f"or another boolean column of the APDB DiaSource table")
            reject |= table.column(name).fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
        if reject.any():
            table = table.filter(pa.array(~reject))
            # ids stay dense: row k has id offset + k
            ids = source_id_offset(exposure, detector) + np.arange(table.num_rows, dtype=np.int64)
            table = table.set_column(table.schema.get_field_index("diaSourceId"), "diaSourceId",
                                     pa.array(ids, table.schema.field("diaSourceId").type))
        _log.info("exposure %s detector %s: %d DIA sources (%d dropped for %s)", exposure, detector,
                  table.num_rows, int(reject.sum()), ", ".join(self.config.reject_flags) or "no flag")
        return {"dia_source": table}

    def run_quantum(self, inputs: dict[str, Any], data_id: dict[str, Any]) -> dict[str, Any]:
        """Pass the exposure and detector ids to `run` (for ``visit``, ``detector``, ids)."""
        return self.run(**inputs, exposure=int(data_id["exposure"]), detector=int(data_id["detector"]))

"""Adaptation of the DIA task for the prompt (AP) pipeline.

- DIA ids: :class:`pachon.pipelines.dia_task.DiaTask` makes ``diaSourceId`` from
  ``(exposure * 10_000 + detector) * 100_000 + row``, which overflows int64 for Rubin-style
  exposure ids (``YYYYMMDD`` × 10^5 + seq, e.g. 2024040100100).  :class:`ApDiaTask` uses
  :func:`compact_visit` instead: days since 1970 of ``day_obs`` × 10^5 + seq (< 2.2 × 10^9 until
  the year 2570), so ``(compact * 10_000 + detector) * 100_000 + row`` stays below 2^63.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pachon.pipelines.dia_task import DiaTask

__all__ = ["ApDiaTask", "compact_visit", "source_id_offset"]

_log = logging.getLogger(__name__)


def compact_visit(visit: int) -> int:
    """A short number unique per visit: Rubin ids ``YYYYMMDD·10^5 + seq`` → days since 1970 · 10^5 + seq.

    Ids below 10^9 (not of that form) are returned unchanged.
    """
    v = int(visit)
    if v < 10**9:
        return v
    day_obs, seq = divmod(v, 100_000)
    y, md = divmod(day_obs, 10_000)
    m, d = divmod(md, 100)
    days = int((np.datetime64(f"{y:04d}-{m:02d}-{d:02d}") - np.datetime64("1970-01-01")).astype(int))
    return days * 100_000 + seq


def source_id_offset(visit: int, detector: int) -> int:
    """First ``diaSourceId`` (or ``diaForcedSourceId``) of a detector-visit; rows add 0 .. 99 999."""
    return (compact_visit(visit) * 10_000 + int(detector)) * 100_000


class ApDiaTask(DiaTask):
    """:class:`DiaTask` with int64-safe ``diaSourceId`` values (see the module docstring)."""

    def run(self, difference: Any, calexp: Any, template: Any, exposure: int = 0,
            detector: int = 0) -> dict[str, Any]:
        """Detect on the recomputed score and measure every source."""
        from pachon.algorithms.dia.measure import measure_dia_sources
        from pachon.algorithms.diffim.detect import detect_dia_sources, score_image

        score = score_image(difference)
        det = detect_dia_sources(difference, score, threshold=self.config.threshold,
                                 min_pixels=self.config.min_pixels)
        vi = calexp.visit_info
        table = measure_dia_sources(difference, score, det, science=calexp, template=template,
                                    config=self.config.measure, visit=int(exposure), detector=int(detector),
                                    band=vi.band if vi is not None else None,
                                    id_offset=source_id_offset(exposure, detector))
        _log.info("exposure %s detector %s: %d DIA sources", exposure, detector, table.num_rows)
        return {"dia_source": table}

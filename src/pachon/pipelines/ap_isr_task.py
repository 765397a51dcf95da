"""ISR for the prompt (AP) pipeline: :class:`IsrTask` plus the raw header's initial WCS.

:class:`pachon.pipelines.isr_task.IsrTask` writes ``post_isr`` without a WCS, but calibration
(``CalibrateTask``) needs an initial WCS to match the reference catalog.  Camera raws (and the
simulator's) carry an approximate TAN WCS in the primary header; :class:`ApIsrTask` attaches it
to ``post_isr`` (when ISR left none) so that the whole chain raw → alerts runs in one pipeline.
"""

from __future__ import annotations

import logging
from typing import Any

from pachon.pipelines.isr_task import IsrTask

__all__ = ["ApIsrTask", "header_wcs"]

_log = logging.getLogger(__name__)


def header_wcs(header: Any) -> Any:
    """The celestial WCS of a FITS header (astropy), or None when it has none."""
    if header is None or "CRVAL1" not in header or "CTYPE1" not in header:
        return None
    from pachon.core.wcs import wcs_from_header

    return wcs_from_header(header, name="raw primary header")


class ApIsrTask(IsrTask):
    """Instrument signature removal, with the raw header's WCS as the initial WCS."""

    def run_quantum(self, inputs: dict[str, Any], data_id: dict[str, Any]) -> dict[str, Any]:
        """Run ISR, then attach the raw's header WCS when ISR gave none."""
        out = super().run_quantum(inputs, data_id)
        exp = out[self.output_name]
        if exp.wcs is None:
            exp.wcs = header_wcs(inputs["raw"][0].header)
            if exp.wcs is None:
                _log.warning("isr %s: the raw has no header WCS; calibration will need a blind solve", data_id)
        return out

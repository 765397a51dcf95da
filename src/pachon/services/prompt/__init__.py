"""Prompt processing: the AP pipeline on each detector as soon as its raw is ingested.

``pachon prompt --repo DIR`` runs :class:`PromptService`; the latency of every step and of the
whole chain (raw ingest → alert packets written) goes to ``DIR/prompt/latency.parquet``.
``pachon prompt --listen`` (or ``pachon serve``) also serves the ``/prompt`` endpoints
(:mod:`pachon.services.prompt.routes`): "next visit" notifications make a `VisitManager` read
each detector's inputs ahead and process the detector as soon as its raw lands.
"""

from __future__ import annotations

from typing import Any

from pachon.services.prompt.export import alert_summary, export_alerts
from pachon.services.prompt.latency import LATENCY_FILE, STEPS, append_latency, latency_path, read_latency
from pachon.services.prompt.next_visit import NextVisit, NextVisitError
from pachon.services.prompt.service import PromptConfig, PromptService, default_inputs
from pachon.services.prompt.visits import VisitManager
from pachon.services.prompt.worker import DetectorJob, detector_run, process_detector

__all__ = ["PromptConfig", "PromptService", "default_inputs", "DetectorJob", "process_detector",
           "detector_run", "LATENCY_FILE", "STEPS", "latency_path", "read_latency", "append_latency",
           "export_alerts", "alert_summary", "NextVisit", "NextVisitError", "VisitManager", "router"]


def router(context: Any) -> Any:
    """The ``/prompt`` routes (`pachon.services.prompt.routes.router`; FastAPI imported only here)."""
    from pachon.services.prompt.routes import router as make_router

    return make_router(context)

"""HTTP endpoints of prompt processing: "next visit" notifications and per-visit status.

``POST /prompt/next-visit`` (JSON `NextVisit`) announces a visit before its raws arrive: 202 with
the visit's status when it is new, 200 with the same status when it was already announced with
the same values (idempotent: nothing runs twice), 409 when the group was announced with other
values, 422 (JSON ``{"detail": [{"loc": [...], "msg": ...}]}``, the field named) for a message
that is malformed or does not fit the instrument.  ``GET /prompt/visits`` lists the announced
visits; ``GET /prompt/visits/{instrument}/{group}`` gives each detector's state and latency.

Every endpoint needs the scope `PROMPT_SCOPE` (``exec:admin``) unless the settings grant it to
anonymous requests of the service ``prompt``; the observatory's notifier holds such a token.
The state lives in a `VisitManager` (``context.extras["prompt"]``), which the application closes
on shutdown; `configure` sets its APDB, stream and threads (``pachon prompt --listen``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from pachon.core.errors import ConflictError
from pachon.services.auth.deps import require_scope
from pachon.services.prompt.next_visit import NextVisit, NextVisitError
from pachon.services.prompt.service import PromptConfig
from pachon.services.prompt.visits import VisitManager

__all__ = ["router", "configure", "PROMPT_SCOPE"]

_log = logging.getLogger(__name__)

#: Scope a token needs to announce visits and read their status.
PROMPT_SCOPE = "exec:admin"


def _unprocessable(errors: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"detail": errors}, status_code=422)


def _manager(context: Any) -> VisitManager:
    if "prompt" not in context.extras:
        config = PromptConfig(context.repo.root, apdb_url=context.settings.apdb_url or None)
        context.extras["prompt"] = VisitManager(config)
    return context.extras["prompt"]


def configure(app: Any, config: PromptConfig, *, raw_timeout_s: float | None = None) -> VisitManager:
    """Set the prompt settings of an application made by `create_app` (before any announcement)."""
    manager = _manager(app.state.context)
    manager.configure(config)
    if raw_timeout_s is not None:
        manager.raw_timeout_s = raw_timeout_s
    return manager


def router(context: Any) -> APIRouter:
    """The ``/prompt`` routes of the application."""
    manager = _manager(context)
    allowed = require_scope(PROMPT_SCOPE)
    api = APIRouter(prefix="/prompt", tags=["prompt"])

    @api.post("/next-visit", openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": NextVisit.model_json_schema()}}}})
    async def next_visit(request: Request, _user: Any = Depends(allowed)) -> JSONResponse:  # noqa: B008
        """Announce a visit: preload its detectors' inputs, process each as its raw lands."""
        try:
            payload = json.loads(await request.body() or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _unprocessable([{"loc": ["body"], "msg": f"not JSON: {exc}", "type": "json_invalid"}])
        try:
            visit = NextVisit.model_validate(payload)
        except ValidationError as exc:
            return _unprocessable([{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                                   for e in exc.errors(include_url=False)])
        try:
            status, created = manager.announce(visit)
        except NextVisitError as exc:
            return _unprocessable([{"loc": ["body", *exc.loc], "msg": exc.msg, "type": "value_error"}])
        except ConflictError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=409)
        url = str(request.url_for("visit_status", instrument=visit.instrument, group=visit.group))
        return JSONResponse({**status, "status_url": url}, status_code=202 if created else 200,
                            headers={"Location": url})

    @api.get("/visits")
    def visits(_user: Any = Depends(allowed)) -> JSONResponse:  # noqa: B008
        """The announced visits and how many of their detectors are in each state."""
        return JSONResponse({"visits": manager.visits()})

    @api.get("/visits/{instrument}/{group}", name="visit_status")
    def visit_status(instrument: str, group: str, _user: Any = Depends(allowed)) -> JSONResponse:  # noqa: B008
        """Per-detector state of an announced visit (404 when it was not announced)."""
        status = manager.status(instrument, group)
        if status is None:
            return JSONResponse({"detail": f"no visit {instrument}/{group} was announced to this service"},
                                status_code=404)
        return JSONResponse(status)

    return api

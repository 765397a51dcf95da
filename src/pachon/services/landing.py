"""The landing page at ``/``: what this server offers and where."""

from __future__ import annotations

import html
import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from pachon import __version__
from pachon.services.context import ServiceContext

__all__ = ["router"]

_log = logging.getLogger(__name__)

_SERVICES = (
    ("tap", "TAP 1.1 (ADQL queries, sync and async)", "/tap"),
    ("sia", "SIAv2 image search", "/sia/query"),
    ("soda", "SODA image cutouts", "/soda/sync"),
    ("datalink", "DataLink", "/datalink/links"),
)


def router(context: ServiceContext) -> APIRouter:
    """The landing page router."""
    api = APIRouter()

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    def landing(request: Request) -> HTMLResponse:
        base = context.base_url(request)
        served = set(getattr(request.app.state, "services", ()))
        items = "".join(
            f'<li><a href="{html.escape(base + path)}">{html.escape(label)}</a> '
            f"<code>{html.escape(base + path)}</code></li>"
            for name, label, path in _SERVICES
            if name in served
        )
        body = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Pachón data access</title></head>"
            f"<body><h1>Pachón data access</h1><p>Repository <code>{html.escape(str(context.repo.root))}"
            f"</code>, Pachón {html.escape(__version__)}.</p><ul>{items}</ul>"
            "<p>Authenticate with <code>Authorization: Bearer &lt;token&gt;</code> "
            "(tokens from <code>pachon token create</code>).</p></body></html>"
        )
        return HTMLResponse(body)

    return api

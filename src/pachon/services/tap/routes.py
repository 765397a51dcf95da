"""HTTP handlers of the TAP service: sync queries and the VOSI/DALI endpoints."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from pachon.core.errors import QueryError
from pachon.services.auth import User, require_scope
from pachon.services.context import ServiceContext
from pachon.services.tap.query import MAX_UPLOAD_BYTES, QueryTimeoutError, parse_params, render, run_query
from pachon.services.tap.vosi import availability_xml, capabilities_xml, examples_html, tables_xml

__all__ = ["tap_router", "request_params"]

_log = logging.getLogger(__name__)
_XML = "text/xml"


async def request_params(request: Request) -> tuple[dict[str, str], dict[str, bytes]]:
    """Query-string and form parameters (first value of each) and uploaded file parts."""
    params: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, value)
    if request.method == "POST":
        async with request.form(max_part_size=MAX_UPLOAD_BYTES) as form:
            for key, value in form.multi_items():
                if hasattr(value, "read"):
                    files[key] = await value.read()
                else:
                    params.setdefault(key, str(value))
    return params, files


def tap_router(context: ServiceContext) -> APIRouter:
    """The ``/tap`` router (async endpoints are added by `pachon.services.tap.uws`)."""
    api = APIRouter(prefix="/tap")
    settings = context.settings
    read_tap = require_scope("read:tap")

    def tap_base(request: Request) -> str:
        return context.base_url(request) + "/tap"

    @api.get("", include_in_schema=False)
    def root(request: Request) -> Response:
        return RedirectResponse(tap_base(request) + "/capabilities", status_code=303)

    @api.api_route("/sync", methods=["GET", "POST"])
    async def sync(request: Request, user: User = Depends(read_tap)) -> Response:  # noqa: B008
        raw, files = await request_params(request)
        try:
            params = parse_params(raw, files, settings.max_rows, settings.default_maxrec)
            result = await run_in_threadpool(
                run_query, context, user, params, timeout_s=settings.query_timeout_s
            )
            body, media = await run_in_threadpool(render, result, params.format, context.base_url(request))
        except QueryTimeoutError as exc:
            raise HTTPException(400, str(exc)) from None
        except QueryError as exc:
            raise HTTPException(400, str(exc)) from None
        _log.info(
            "sync query by %s: %d rows%s",
            user.name,
            result.table.num_rows,
            " (overflow)" if result.overflow else "",
        )
        return Response(body, media_type=media)

    @api.get("/availability")
    def availability() -> Response:
        ok = context.catalogs is not None
        return Response(
            availability_xml(ok, "service is accepting queries" if ok else "no catalog database"),
            media_type=_XML,
        )

    @api.get("/capabilities")
    def capabilities(request: Request) -> Response:
        return Response(
            capabilities_xml(tap_base(request), settings.max_rows, settings.default_maxrec, MAX_UPLOAD_BYTES),
            media_type=_XML,
        )

    @api.get("/tables")
    def tables(detail: str | None = None) -> Response:
        return Response(
            tables_xml(context.catalogs.tables.values(), keys=context.catalogs.keys), media_type=_XML
        )

    @api.get("/tables/{name}")
    def table(name: str) -> Response:
        served = context.catalogs.tables.get(name.lower())
        if served is None:
            raise HTTPException(404, f"no table {name!r}; see {'/tap/tables'}")
        return Response(tables_xml([served], single=True, keys=context.catalogs.keys), media_type=_XML)

    @api.get("/examples")
    def examples(request: Request) -> Response:
        return Response(examples_html(tap_base(request)), media_type="application/xhtml+xml")

    return api

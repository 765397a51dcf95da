"""SIAv2 (IVOA Simple Image Access 2.0) at ``/sia``: ``query``, ``capabilities``, ``availability``.

``/sia/query`` (GET or POST) filters the ObsCore table (`select_rows`) and answers a VOTable
of ObsCore columns; rows of collections the user may not see are dropped before MAXREC is
applied, so neither their rows nor their count leak.  Malformed parameters give a DALI error
document (HTTP 400, ``UsageError``) naming the parameter.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from pachon.services.auth import require_scope
from pachon.services.images.access import obscore_index, request_params, visible_rows
from pachon.services.images.obscore import with_base_url
from pachon.services.images.query import check_responseformat, parse_maxrec, select_rows
from pachon.services.images.vosi import XML_MEDIA_TYPE, availability_xml, capabilities_xml
from pachon.services.votable import VOTABLE_MEDIA_TYPE, arrow_to_votable

__all__ = ["router", "SIA_STANDARD_ID", "run_query"]

_log = logging.getLogger(__name__)

SIA_STANDARD_ID = "ivo://ivoa.net/std/SIA#query-2.0"


def run_query(context: Any, user: Any, params: dict[str, list[str]], base_url: str) -> tuple[Any, bool]:
    """The ObsCore rows matching a SIAv2 query that ``user`` may see, and the overflow flag."""
    import numpy as np

    check_responseformat(params.get("RESPONSEFORMAT", []))
    settings = context.settings
    maxrec = parse_maxrec(params.get("MAXREC", []), settings.default_maxrec, settings.max_rows)
    table, footprints = obscore_index(context).snapshot()
    rows = select_rows(table, footprints, params)
    visible = visible_rows(context, user, table.column("obs_collection").to_numpy(zero_copy_only=False))
    rows = rows[visible[rows]]
    overflow = len(rows) > maxrec
    result = table.take(np.asarray(rows[:maxrec], dtype=np.int64))
    return with_base_url(result, base_url), overflow


def router(context: Any) -> APIRouter:
    """The ``/sia`` endpoints of the application serving ``context``."""
    api = APIRouter(prefix="/sia", tags=["SIAv2"])
    reader = require_scope("read:image")

    @api.api_route("/query", methods=["GET", "POST"], response_class=Response)
    async def sia_query(request: Request, user: Any = Depends(reader)) -> Response:  # noqa: B008
        """Search images (SIAv2 POS, BAND, TIME, POL, CALIB, COLLECTION, ... MAXREC)."""
        params = await request_params(request)
        table, overflow = await run_in_threadpool(
            run_query, context, user, params, context.base_url(request)
        )
        body = await run_in_threadpool(
            arrow_to_votable, table, overflow=overflow, table_name="results"
        )
        return Response(body, media_type=VOTABLE_MEDIA_TYPE)

    @api.get("/capabilities", response_class=Response)
    def sia_capabilities(request: Request) -> Response:
        """VOSI capabilities."""
        url = f"{context.base_url(request)}/sia"
        return Response(capabilities_xml(url, [(SIA_STANDARD_ID, "query", "2.0")]), media_type=XML_MEDIA_TYPE)

    @api.get("/availability", response_class=Response)
    def sia_availability() -> Response:
        """VOSI availability: up when the repository registry answers."""
        try:
            context.repo.registry.list_dataset_types()
            ok, note = True, "SIAv2 service is accepting queries"
        except Exception as exc:  # any registry failure means unavailable
            ok, note = False, f"registry unavailable: {exc}"
        return Response(availability_xml(ok, note), media_type=XML_MEDIA_TYPE)

    return api

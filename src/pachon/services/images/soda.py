"""SODA 1.0 image cutouts at ``/soda``: ``sync``, ``async`` (UWS), ``capabilities``, ``availability``.

Parameters: ``ID`` (an ``obs_publisher_did``), and one region: ``CIRCLE`` (``"ra dec r"``),
``POLYGON`` (``"ra1 dec1 ..."``) or ``POS`` (``"CIRCLE ..."``, ``"POLYGON ..."``).  The answer
is a FITS file (`pachon.services.images.cutout.cutout_fits`).  Errors are SODA's text/plain
documents whose first word is the error code: ``UsageError`` (400), ``NotFoundFault`` (404,
also for datasets the user may not see), ``NoOverlap`` (400).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from pachon.core.errors import ConfigError
from pachon.services.auth import require_scope
from pachon.services.images.access import find_visible_dataset, request_params
from pachon.services.images.cutout import NoOverlapError, cutout_fits
from pachon.services.images.regions import LonLatRange, parse_circle, parse_polygon, parse_pos
from pachon.services.images.vosi import XML_MEDIA_TYPE, availability_xml, capabilities_xml

__all__ = ["router", "SODA_SYNC_ID", "SODA_ASYNC_ID", "parse_cutout_request", "soda_error", "make_cutout"]

_log = logging.getLogger(__name__)

SODA_SYNC_ID = "ivo://ivoa.net/std/SODA#sync-1.0"
SODA_ASYNC_ID = "ivo://ivoa.net/std/SODA#async-1.0"
FITS_MEDIA_TYPE = "application/fits"


def soda_error(status: int, code: str, message: str) -> Response:
    """A SODA error document: text/plain starting with the error code."""
    return Response(f"{code}: {message}\n", status_code=status, media_type="text/plain")


def parse_cutout_request(params: dict[str, list[str]]) -> tuple[str, Any]:
    """The dataset id and the region of a SODA request.

    Raises
    ------
    ConfigError
        No or several IDs, no or several regions, a malformed region.
    """
    ids = params.get("ID", [])
    if len(ids) != 1:
        raise ConfigError(f"give exactly one ID (got {len(ids)}); for several cutouts use several requests")
    shapes = [(name, v) for name in ("CIRCLE", "POLYGON", "POS") for v in params.get(name, [])]
    if len(shapes) != 1:
        raise ConfigError(f"give exactly one of CIRCLE, POLYGON or POS (got {len(shapes)})")
    name, text = shapes[0]
    if name == "CIRCLE":
        region = parse_circle(text, "CIRCLE")
    elif name == "POLYGON":
        region = parse_polygon(text, "POLYGON")
    else:
        region = parse_pos(text, "POS")
        if isinstance(region, LonLatRange):
            raise ConfigError("POS=RANGE cutouts are not supported; use CIRCLE or POLYGON")
    return ids[0], region


def make_cutout(context: Any, user: Any, params: dict[str, list[str]]) -> tuple[bytes, str]:
    """Run one cutout request: FITS bytes and a file name (raises ConfigError/HTTPException)."""
    text, region = parse_cutout_request(params)
    ref = find_visible_dataset(context, user, text)
    data, box = cutout_fits(context.repo, ref, region)
    return data, f"{ref.dataset_type}_{ref.id.hex[:8]}_{box.x0}_{box.y0}_{box.width}x{box.height}.fits"


async def run_cutout(context: Any, user: Any, params: dict[str, list[str]]) -> Response:
    """A sync cutout response (FITS, or a SODA error document)."""
    try:
        data, name = await run_in_threadpool(make_cutout, context, user, params)
    except NoOverlapError as exc:
        return soda_error(400, "NoOverlap", str(exc))
    except ConfigError as exc:
        return soda_error(400, "UsageError", str(exc))
    except HTTPException as exc:
        if exc.status_code == 404:
            return soda_error(404, "NotFoundFault", str(exc.detail))
        raise
    return Response(data, media_type=FITS_MEDIA_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def router(context: Any) -> APIRouter:
    """The ``/soda`` endpoints of the application serving ``context``."""
    from pachon.services.images.soda_async import add_async_routes

    api = APIRouter(prefix="/soda", tags=["SODA"])
    reader = require_scope("read:image")

    @api.api_route("/sync", methods=["GET", "POST"], response_class=Response)
    async def soda_sync(request: Request, user: Any = Depends(reader)) -> Response:  # noqa: B008
        """Cut out a region of one image (ID and CIRCLE, POLYGON or POS)."""
        return await run_cutout(context, user, await request_params(request))

    add_async_routes(api, context, reader)

    @api.get("/capabilities", response_class=Response)
    def soda_capabilities(request: Request) -> Response:
        """VOSI capabilities."""
        url = f"{context.base_url(request)}/soda"
        caps = [(SODA_SYNC_ID, "sync", "1.0"), (SODA_ASYNC_ID, "async", "1.0")]
        return Response(capabilities_xml(url, caps), media_type=XML_MEDIA_TYPE)

    @api.get("/availability", response_class=Response)
    def soda_availability() -> Response:
        """VOSI availability."""
        return Response(availability_xml(True, "SODA cutout service is accepting requests"),
                        media_type=XML_MEDIA_TYPE)

    return api

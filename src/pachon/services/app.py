"""The data access application: one FastAPI app serving TAP, SIAv2, SODA and DataLink.

`create_app` opens the repository, builds the `ServiceContext` and includes each service's
router; a service whose module is missing (the packages land at different times) is skipped
with a log line.  Errors are translated at this boundary into DALI VOTable error documents
(`pachon.services.votable.error_votable`) with the HTTP status kept.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from pachon.core.errors import PachonError
from pachon.services.context import ServiceContext
from pachon.services.settings import ServiceSettings
from pachon.services.votable import ERROR_CODES, VOTABLE_MEDIA_TYPE, error_votable

__all__ = ["create_app", "ROUTER_MODULES"]

_log = logging.getLogger(__name__)

#: Modules whose ``router(context) -> APIRouter`` is included, in order.
ROUTER_MODULES: tuple[str, ...] = (
    "pachon.services.tap",
    "pachon.services.images.sia",
    "pachon.services.images.soda",
    "pachon.services.images.datalink",
    "pachon.services.prompt",
)


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    code = ERROR_CODES.get(status, "UsageError" if status < 500 else "ServiceError")
    return Response(
        error_votable(message, code), status_code=status, headers=headers, media_type=VOTABLE_MEDIA_TYPE
    )


def create_app(settings: ServiceSettings) -> FastAPI:
    """Build the application serving ``settings.repo``.

    Parameters
    ----------
    settings
        Repository, limits and anonymous access.

    Returns
    -------
    app
        The FastAPI application; ``app.state.context`` is its `ServiceContext`.
    """
    context = ServiceContext.create(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        context.close()

    app = FastAPI(
        title="Pachón data access",
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.context = context
    app.state.services = []
    for name in ROUTER_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not name.startswith(exc.name or "\0"):
                raise
            _log.info("service module %s is not available; its endpoints are not served", name)
            continue
        app.include_router(module.router(context))
        app.state.services.append(name.rsplit(".", 1)[-1])
        _log.debug("included %s", name)

    from pachon.services.landing import router as landing_router

    app.include_router(landing_router(context))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        return _error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> Response:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return _error_response(400, "invalid request: " + "; ".join(parts))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Response:
        _log.exception("unexpected error serving %s", _request.url.path)
        return _error_response(500, f"internal error ({type(exc).__name__}); the service log has details")

    @app.exception_handler(PachonError)
    async def _pachon_error(_request: Request, exc: PachonError) -> Response:
        return _error_response(400, str(exc))

    return app

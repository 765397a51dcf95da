"""IVOA TAP 1.1 service: ADQL over the repository's catalogs, ObsCore and provenance.

``router(context)`` builds the catalog back end (`CatalogDatabase` on DuckDB by default, or
`PostgresCatalog`, by ``ServiceSettings.tap_backend``; stored in ``context.catalogs``) and
returns the ``/tap`` router: sync queries, UWS async jobs, VOSI availability/capabilities/tables
and DALI examples.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter

from pachon.services.context import ServiceContext

__all__ = ["router"]

_log = logging.getLogger(__name__)


def router(context: ServiceContext) -> APIRouter:
    """The TAP router of ``context`` (builds or reuses the catalog database)."""
    from pachon.services.tap.catalogs import open_backend
    from pachon.services.tap.routes import tap_router
    from pachon.services.tap.uws import uws_router

    if context.catalogs is None:
        context.catalogs = open_backend(context.repo, context.settings)
    api = APIRouter()
    api.include_router(uws_router(context))
    api.include_router(tap_router(context))
    return api

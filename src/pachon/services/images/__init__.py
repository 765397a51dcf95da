"""Image services: the ObsCore table, SIAv2 search, SODA cutouts and DataLink.

Modules: `obscore` (the table), `index` (its cached form), `query` (SIAv2 constraints),
`regions` (DALI/STC-S regions), `cutout` (pixel boxes and FITS cutouts), `access` (shared
look-ups with collection visibility), and the routers `sia`, `soda` (+ `soda_async`),
`datalink`, each exposing ``router(context) -> APIRouter``.
"""

from __future__ import annotations

__all__: list[str] = []

"""DataLink 1.1 at ``/datalink``: ``links``, the file endpoint, provenance, VOSI.

``/datalink/links?ID=...`` answers, per dataset: ``#this`` (the file, streamed by
``/datalink/files/{uuid}``), ``#cutout`` (a SODA service descriptor), ``#provenance`` (a JSON
document of the dataset's provenance) and one ``#progenitor`` row per visible input dataset.
Unknown, malformed and invisible ids get the same ``NotFoundFault`` error row.  The file
endpoint takes only a dataset UUID and serves the path the registry recorded for it: no part of
a request ever becomes a file path.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from pachon.services.auth import require_scope
from pachon.services.images.access import find_visible_dataset, request_params
from pachon.services.images.obscore import DATALINK_FORMAT, datalink_url, dataset_did
from pachon.services.images.soda import SODA_SYNC_ID
from pachon.services.images.vosi import XML_MEDIA_TYPE, availability_xml, capabilities_xml

__all__ = ["router", "links_votable", "provenance_document", "DATALINK_STANDARD_ID"]

_log = logging.getLogger(__name__)

DATALINK_STANDARD_ID = "ivo://ivoa.net/std/DataLink#links-1.1"
_FIELDS = (
    ("ID", "char", "meta.id;meta.main"),
    ("access_url", "char", "meta.ref.url"),
    ("service_def", "char", "meta.ref"),
    ("error_message", "char", "meta.code.error"),
    ("semantics", "char", "meta.code"),
    ("description", "char", "meta.note"),
    ("content_type", "char", "meta.code.mime"),
    ("content_length", "long", "phys.size;meta.file"),
)
_MIME = {"fits": "application/fits", "parquet": "application/vnd.apache.parquet", "json": "application/json"}


def _links_for(context: Any, user: Any, text: str, base: str) -> list[dict[str, Any]]:
    try:
        ref = find_visible_dataset(context, user, text)
    except HTTPException as exc:
        return [{"ID": text, "error_message": f"NotFoundFault: {exc.detail}"}]
    rec = context.repo.file_record(ref)
    mime = _MIME.get(rec.format, "application/octet-stream")
    rows = [
        {"ID": text, "access_url": f"{base}/datalink/files/{ref.id}", "semantics": "#this",
         "description": f"{ref.dataset_type} file", "content_type": mime, "content_length": rec.size},
        {"ID": text, "service_def": "cutout_soda", "semantics": "#cutout",
         "description": "cutout of a sky region (SODA sync)", "content_type": "application/fits"},
        {"ID": text, "access_url": f"{base}/datalink/provenance?ID={quote(dataset_did(ref.id), safe='')}",
         "semantics": "#provenance", "description": "provenance: task, run and input datasets",
         "content_type": "application/json"},
    ]
    for parent in context.repo.provenance(ref).inputs:
        if context.auth.visible(user, parent.run):
            rows.append({"ID": text, "access_url": datalink_url(base, parent.id), "semantics": "#progenitor",
                         "description": f"input {parent.dataset_type} ({parent.run})",
                         "content_type": DATALINK_FORMAT})
    return rows


def links_votable(context: Any, user: Any, ids: list[str], base: str) -> bytes:
    """The DataLink VOTable of ``ids`` with its SODA service descriptor."""
    rows = [row for text in ids for row in _links_for(context, user, text, base)]
    size = {"char": ' arraysize="*"', "long": ""}
    fields = "".join(
        f'<FIELD name="{n}" ID="{n}" datatype="{t}"{size[t]} ucd="{u}"/>' for n, t, u in _FIELDS
    )

    def cell(value: Any) -> str:
        return "<TD/>" if value is None else f"<TD>{escape(str(value))}</TD>"

    body = "".join("<TR>" + "".join(cell(r.get(n)) for n, _, _ in _FIELDS) + "</TR>" for r in rows)
    # one ID: the descriptor carries its value, so clients holding an ObsCore row can use it
    id_param = (f'value={quoteattr(ids[0])}' if len(ids) == 1 else 'value="" ref="ID"')
    descriptor = (
        '<RESOURCE type="meta" utype="adhoc:service" ID="cutout_soda">'
        f'<PARAM name="standardID" datatype="char" arraysize="*" value="{SODA_SYNC_ID}"/>'
        f'<PARAM name="accessURL" datatype="char" arraysize="*" value={quoteattr(base + "/soda/sync")}/>'
        '<GROUP name="inputParams">'
        f'<PARAM name="ID" datatype="char" arraysize="*" ucd="meta.id;meta.dataset" {id_param}/>'
        '<PARAM name="CIRCLE" datatype="double" arraysize="3" xtype="circle" unit="deg" '
        'ucd="obs.field" value=""/>'
        '<PARAM name="POLYGON" datatype="double" arraysize="*" xtype="polygon" unit="deg" '
        'ucd="obs.field" value=""/>'
        '<PARAM name="POS" datatype="char" arraysize="*" ucd="obs.field" value=""/>'
        "</GROUP></RESOURCE>"
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'
        '<RESOURCE type="results"><INFO name="QUERY_STATUS" value="OK"/>'
        f"<TABLE>{fields}<DATA><TABLEDATA>{body}</TABLEDATA></DATA></TABLE></RESOURCE>"
        f"{descriptor}</VOTABLE>\n"
    ).encode()


def provenance_document(context: Any, user: Any, text: str, base: str) -> dict[str, Any]:
    """Provenance of a visible dataset; inputs the user may not see are left out."""
    ref = find_visible_dataset(context, user, text)
    prov = context.repo.provenance(ref)
    inputs = [
        {"id": dataset_did(p.id), "dataset_type": p.dataset_type, "run": p.run,
         "data_id": {k: v for k, v in p.data_id.items()}, "datalink": datalink_url(base, p.id)}
        for p in prov.inputs if context.auth.visible(user, p.run)
    ]
    return {
        "id": dataset_did(ref.id), "dataset_type": ref.dataset_type, "run": prov.run,
        "data_id": dict(ref.data_id), "task": prov.task, "quantum_id": prov.quantum_id,
        "config_hash": prov.config_hash, "software_version": prov.software_version,
        "created_ns": prov.created_ns, "inputs": inputs,
    }


def router(context: Any) -> APIRouter:
    """The ``/datalink`` endpoints of the application serving ``context``."""
    api = APIRouter(prefix="/datalink", tags=["DataLink"])
    reader = require_scope("read:image")

    @api.api_route("/links", methods=["GET", "POST"], response_class=Response)
    async def links(request: Request, user: Any = Depends(reader)) -> Response:  # noqa: B008
        """Links of one or more datasets (ID=...)."""
        ids = (await request_params(request)).get("ID", [])
        if not ids:
            raise HTTPException(400, "DataLink needs at least one ID parameter (an obs_publisher_did)")
        body = await run_in_threadpool(links_votable, context, user, ids, context.base_url(request))
        return Response(body, media_type=DATALINK_FORMAT)

    @api.get("/files/{dataset_id}")
    def files(dataset_id: str, user: Any = Depends(reader)) -> Response:  # noqa: B008
        """The dataset's file, streamed from the datastore."""
        ref = find_visible_dataset(context, user, dataset_id)
        rec = context.repo.file_record(ref)
        name = rec.path.rsplit("/", 1)[-1]
        mime = _MIME.get(rec.format, "application/octet-stream")
        store = context.repo.datastore
        if store.is_local:
            return FileResponse(store.full_path(rec.path), media_type=mime, filename=name)
        local, temporary = store.local_copy(rec.path)
        try:
            data = local.read_bytes()
        finally:
            if temporary:
                local.unlink(missing_ok=True)
        disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
        return Response(data, media_type=mime, headers=disposition)

    @api.get("/provenance")
    def provenance(request: Request, ID: str, user: Any = Depends(reader)) -> Response:  # noqa: B008
        """Provenance of a dataset as JSON."""
        doc = provenance_document(context, user, ID, context.base_url(request))
        return Response(json.dumps(doc, default=str), media_type="application/json")

    @api.get("/capabilities", response_class=Response)
    def datalink_capabilities(request: Request) -> Response:
        """VOSI capabilities."""
        url = f"{context.base_url(request)}/datalink"
        return Response(capabilities_xml(url, [(DATALINK_STANDARD_ID, "links", "1.1")]),
                        media_type=XML_MEDIA_TYPE)

    @api.get("/availability", response_class=Response)
    def datalink_availability() -> Response:
        """VOSI availability."""
        return Response(availability_xml(True, "DataLink service is accepting requests"),
                        media_type=XML_MEDIA_TYPE)

    return api

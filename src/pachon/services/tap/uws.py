"""The UWS 1.1 endpoints of ``/tap/async`` and their XML documents."""

from __future__ import annotations

import datetime as dt
import logging
from xml.sax.saxutils import escape, quoteattr

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from pachon.core.errors import QueryError
from pachon.services.auth import User, require_scope
from pachon.services.context import ServiceContext
from pachon.services.tap.jobs import Job, JobManager, JobNotFoundError, QuotaError
from pachon.services.tap.routes import request_params
from pachon.services.votable import VOTABLE_MEDIA_TYPE, error_votable

__all__ = ["uws_router", "job_xml"]

_log = logging.getLogger(__name__)
_NS = (
    'xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0" xmlns:xlink="http://www.w3.org/1999/xlink" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
)
_MAX_WAIT_S = 60.0


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _parse_iso(text: str) -> float:
    try:
        return (
            dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00")).replace(tzinfo=dt.UTC).timestamp()
        )
    except ValueError:
        raise QueryError(f"{text!r} is not an ISO-8601 time (e.g. 2030-01-01T00:00:00Z)") from None


def _element(name: str, value: str | None) -> str:
    if value is None:
        return f'<uws:{name} xsi:nil="true"/>'
    return f"<uws:{name}>{escape(value)}</uws:{name}>"


def job_xml(job: Job, base: str) -> str:
    """The UWS job document."""
    params = "".join(
        f"<uws:parameter id={quoteattr(k.lower())}>{escape(str(v))}</uws:parameter>"
        for k, v in job.parameters.items()
    )
    results = ""
    if job.phase == "COMPLETED":
        results = f'<uws:result id="result" xlink:href={quoteattr(f"{base}/{job.id}/results/result")}/>'
    error = ""
    if job.phase == "ERROR":
        error = (
            f'<uws:errorSummary type="fatal" hasDetail="true"><uws:message>{escape(job.error or "")}'
            "</uws:message></uws:errorSummary>"
        )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<uws:job {_NS} version="1.1">'
        f"{_element('jobId', job.id)}{_element('runId', job.run_id) if job.run_id else ''}"
        f"{_element('ownerId', None if job.anonymous else job.owner)}{_element('phase', job.phase)}"
        f"{_element('quote', None)}{_element('creationTime', _iso(job.created))}"
        f"{_element('startTime', _iso(job.started))}{_element('endTime', _iso(job.ended))}"
        f"{_element('executionDuration', str(job.duration))}{_element('destruction', _iso(job.destruction))}"
        f"<uws:parameters>{params}</uws:parameters><uws:results>{results}</uws:results>{error}</uws:job>\n"
    )


def _jobs_xml(jobs: list[Job], base: str) -> str:
    refs = "".join(
        f"<uws:jobref id={quoteattr(j.id)} xlink:href={quoteattr(f'{base}/{j.id}')}>"
        f"{_element('phase', j.phase)}{_element('creationTime', _iso(j.created))}</uws:jobref>"
        for j in jobs
    )
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<uws:jobs {_NS} version="1.1">{refs}</uws:jobs>\n'


def uws_router(context: ServiceContext) -> APIRouter:
    """The ``/tap/async`` router; its `JobManager` is kept in ``context.extras["tap_jobs"]``."""
    manager = JobManager(context)
    context.extras["tap_jobs"] = manager
    api = APIRouter(prefix="/tap/async")
    read_tap = require_scope("read:tap")

    def base(request: Request) -> str:
        return context.base_url(request) + "/tap/async"

    def load(job_id: str, user: User) -> Job:
        try:
            return manager.get(job_id, user)
        except JobNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None

    def xml(text: str) -> Response:
        return Response(text, media_type="text/xml")

    def to_job(request: Request, job: Job) -> Response:
        return RedirectResponse(f"{base(request)}/{job.id}", status_code=303)

    @api.get("")
    def list_jobs(request: Request, user: User = Depends(read_tap)) -> Response:  # noqa: B008
        qp = request.query_params
        phases = [p.upper() for p in qp.getlist("PHASE") + qp.getlist("phase")] or None
        last = qp.get("LAST") or qp.get("last")
        after = qp.get("AFTER") or qp.get("after")
        try:
            jobs = manager.list(
                user, phases, int(last) if last else None, _parse_iso(after) if after else None
            )
        except (ValueError, QueryError) as exc:
            raise HTTPException(400, str(exc)) from None
        return xml(_jobs_xml(jobs, base(request)))

    @api.post("")
    async def create(request: Request, user: User = Depends(read_tap)) -> Response:  # noqa: B008
        params, files = await request_params(request)
        try:
            job = await run_in_threadpool(manager.create, user, params, files)
        except QuotaError as exc:
            raise HTTPException(429, str(exc)) from None
        if {k.upper(): v for k, v in params.items()}.get("PHASE", "").upper() == "RUN":
            manager.run(job)
        return to_job(request, job)

    @api.get("/{job_id}")
    async def get_job(job_id: str, request: Request, user: User = Depends(read_tap)) -> Response:  # noqa: B008
        job = load(job_id, user)
        wait = request.query_params.get("WAIT") or request.query_params.get("wait")
        if wait is not None:
            try:
                seconds = float(wait)
            except ValueError:
                raise HTTPException(400, f"WAIT={wait!r} is not a number of seconds") from None
            seconds = _MAX_WAIT_S if seconds < 0 else min(seconds, _MAX_WAIT_S)
            phase = request.query_params.get("PHASE") or request.query_params.get("phase")
            job = await run_in_threadpool(manager.wait, job, user, seconds, phase.upper() if phase else None)
        return xml(job_xml(job, base(request)))

    @api.post("/{job_id}")
    async def post_job(job_id: str, request: Request, user: User = Depends(read_tap)) -> Response:  # noqa: B008
        job = load(job_id, user)
        params, _ = await request_params(request)
        if {k.upper(): v for k, v in params.items()}.get("ACTION", "").upper() != "DELETE":
            raise HTTPException(400, "POST to a job needs ACTION=DELETE")
        manager.delete(job)
        return RedirectResponse(base(request), status_code=303)

    @api.delete("/{job_id}")
    def delete_job(job_id: str, request: Request, user: User = Depends(read_tap)) -> Response:  # noqa: B008
        manager.delete(load(job_id, user))
        return RedirectResponse(base(request), status_code=303)

    @api.get("/{job_id}/{field}")
    def get_field(job_id: str, field: str, request: Request, user: User = Depends(read_tap)) -> Response:  # noqa: B008
        job = load(job_id, user)
        values = {
            "phase": job.phase,
            "executionduration": str(job.duration),
            "destruction": _iso(job.destruction),
            "quote": "",
            "owner": "" if job.anonymous else job.owner,
        }
        if field in values:
            return Response(values[field] or "", media_type="text/plain")
        if field == "error":
            if job.phase != "ERROR":
                raise HTTPException(404, f"job {job.id} is {job.phase}, not ERROR: it has no error")
            return Response(error_votable(job.error or "error", "UsageError"), media_type=VOTABLE_MEDIA_TYPE)
        if field == "parameters":
            doc = job_xml(job, "")
            start, end = doc.index("<uws:parameters>"), doc.index("</uws:parameters>")
            return xml(
                f'<?xml version="1.0" encoding="UTF-8"?>\n<uws:parameters {_NS}>'
                f"{doc[start + 16 : end]}</uws:parameters>\n"
            )
        if field == "results":
            doc = job_xml(job, base(request))
            start, end = doc.index("<uws:results>"), doc.index("</uws:results>")
            return xml(
                f'<?xml version="1.0" encoding="UTF-8"?>\n<uws:results {_NS}>'
                f"{doc[start + 13 : end]}</uws:results>\n"
            )
        raise HTTPException(404, f"jobs have no {field!r}")

    @api.get("/{job_id}/results/result")
    def result(job_id: str, user: User = Depends(read_tap)) -> Response:  # noqa: B008
        job = load(job_id, user)
        path = manager.job_dir(job.id) / "result"
        if job.phase != "COMPLETED" or not path.exists():
            raise HTTPException(404, f"job {job.id} is {job.phase}; it has no result")
        return FileResponse(path, media_type=job.result_media or VOTABLE_MEDIA_TYPE)

    @api.post("/{job_id}/{field}")
    async def post_field(
        job_id: str,
        field: str,
        request: Request,
        user: User = Depends(read_tap),  # noqa: B008
    ) -> Response:
        job = load(job_id, user)
        params, _ = await request_params(request)
        upper = {k.upper(): v for k, v in params.items()}
        try:
            if field == "phase":
                phase = upper.get("PHASE", "").upper()
                if phase == "RUN":
                    manager.run(job)
                elif phase == "ABORT":
                    manager.abort(job)
                else:
                    raise QueryError(f"PHASE={upper.get('PHASE')!r}: use RUN or ABORT")
            elif field == "executionduration":
                manager.set_duration(job, int(float(upper.get("EXECUTIONDURATION", ""))))
            elif field == "destruction":
                manager.set_destruction(job, _parse_iso(upper.get("DESTRUCTION", "")))
            elif field == "parameters":
                manager.update_params(job, params)
            else:
                raise HTTPException(404, f"jobs have no {field!r} to change")
        except (QueryError, ValueError) as exc:
            raise HTTPException(400, str(exc)) from None
        return to_job(request, job)

    return api

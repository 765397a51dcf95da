"""SODA async: a small UWS 1.1 job list at ``/soda/async`` running cutouts in worker threads.

Jobs live in memory (a cutout is cheap to redo; results are files under
``<data_dir>/soda-jobs/``) and belong to the user who created them: another user's job answers
404.  Phases: PENDING → QUEUED → EXECUTING → COMPLETED | ERROR, or ABORTED.  The number of
jobs per user is capped by ``settings.async_jobs_per_user``; jobs are destroyed after
``settings.async_destruction_days`` (checked when jobs are listed or created).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from pachon.core.errors import ConfigError
from pachon.services.images.access import request_params

__all__ = ["SodaJobs", "add_async_routes"]

_log = logging.getLogger(__name__)
_UWS_NS = 'xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0" xmlns:xlink="http://www.w3.org/1999/xlink"'


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Job:
    """One SODA async job."""

    id: str
    owner: Any
    params: dict[str, list[str]]
    phase: str = "PENDING"
    created: dt.datetime = field(default_factory=_now)
    started: dt.datetime | None = None
    ended: dt.datetime | None = None
    destruction: dt.datetime | None = None
    error: str | None = None
    result: Path | None = None


class SodaJobs:
    """The async cutout jobs of one application (``context.extras["soda_jobs"]``)."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.folder = context.settings.resolved_data_dir() / "soda-jobs"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=context.settings.async_workers,
                                        thread_name_prefix="soda-job")

    def close(self) -> None:
        """Stop the workers (running cutouts finish)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _expire(self) -> None:
        now = _now()
        for job in [j for j in self.jobs.values() if j.destruction and j.destruction <= now]:
            self.delete(job)

    def create(self, user: Any, params: dict[str, list[str]]) -> Job:
        """A new PENDING job (its parameters are checked when it runs)."""
        from pachon.services.images.soda import parse_cutout_request

        parse_cutout_request(params)  # refuse malformed jobs at once
        with self._lock:
            self._expire()
            mine = sum(1 for j in self.jobs.values() if j.owner == user.name)
            if mine >= self.context.settings.async_jobs_per_user:
                raise HTTPException(403, f"user {user.name!r} has {mine} SODA jobs, the maximum; delete some")
            job = Job(secrets.token_hex(8), user.name, params)
            days = self.context.settings.async_destruction_days
            job.destruction = job.created + dt.timedelta(days=days)
            self.jobs[job.id] = job
        return job

    def get(self, user: Any, job_id: str) -> Job:
        """The user's job (404 for unknown ids and other users' jobs)."""
        job = self.jobs.get(job_id)
        if job is None or job.owner != user.name:
            raise HTTPException(404, f"no SODA job {job_id!r}; list yours at /soda/async")
        return job

    def run(self, job: Job, user: Any) -> None:
        """Queue a PENDING job."""
        if job.phase != "PENDING":
            return
        job.phase = "QUEUED"
        self._pool.submit(self._execute, job, user)

    def _execute(self, job: Job, user: Any) -> None:
        from pachon.services.images.cutout import NoOverlapError
        from pachon.services.images.soda import make_cutout

        if job.phase != "QUEUED":
            return
        job.phase, job.started = "EXECUTING", _now()
        try:
            data, _ = make_cutout(self.context, user, job.params)
            path = self.folder / f"{job.id}.fits"
            path.write_bytes(data)
            job.result, job.phase = path, "COMPLETED"
        except NoOverlapError as exc:
            job.error, job.phase = f"NoOverlap: {exc}", "ERROR"
        except ConfigError as exc:
            job.error, job.phase = f"UsageError: {exc}", "ERROR"
        except HTTPException as exc:
            job.error, job.phase = f"NotFoundFault: {exc.detail}", "ERROR"
        except Exception as exc:  # a job must end in ERROR, whatever went wrong
            _log.exception("SODA job %s failed", job.id)
            job.error, job.phase = f"Error: {type(exc).__name__}: {exc}", "ERROR"
        job.ended = _now()

    def abort(self, job: Job) -> None:
        """Abort a job that has not finished."""
        if job.phase in ("PENDING", "QUEUED", "EXECUTING"):
            job.phase, job.ended = "ABORTED", _now()

    def delete(self, job: Job) -> None:
        """Destroy a job and its result file."""
        self.abort(job)
        self.jobs.pop(job.id, None)
        if job.result is not None:
            job.result.unlink(missing_ok=True)

    def job_xml(self, job: Job, base: str) -> bytes:
        """The UWS job document."""
        params = "".join(
            f"<uws:parameter id={quoteattr(k.lower())}>{escape(v)}</uws:parameter>"
            for k, values in job.params.items() for v in values
        )
        results = ""
        if job.phase == "COMPLETED":
            results = (f'<uws:result id="cutout" xlink:href={quoteattr(f"{base}/{job.id}/results/cutout")} '
                       'mime-type="application/fits"/>')
        error = (f'<uws:errorSummary type="fatal" hasDetail="false"><uws:message>{escape(job.error)}'
                 "</uws:message></uws:errorSummary>") if job.error else ""
        times = "".join(
            f"<uws:{tag}>{_iso(t)}</uws:{tag}>" if t else f'<uws:{tag} xsi:nil="true"/>'
            for tag, t in (("startTime", job.started), ("endTime", job.ended))
        )
        return (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<uws:job {_UWS_NS} '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="1.1">'
            f"<uws:jobId>{job.id}</uws:jobId><uws:ownerId>{escape(job.owner)}</uws:ownerId>"
            f"<uws:phase>{job.phase}</uws:phase><uws:quote xsi:nil=\"true\"/>"
            f"<uws:creationTime>{_iso(job.created)}</uws:creationTime>{times}"
            "<uws:executionDuration>0</uws:executionDuration>"
            f"<uws:destruction>{_iso(job.destruction)}</uws:destruction>"
            f"<uws:parameters>{params}</uws:parameters><uws:results>{results}</uws:results>{error}"
            "</uws:job>\n"
        ).encode()


def add_async_routes(api: APIRouter, context: Any, reader: Callable[..., Any]) -> None:
    """Add the UWS endpoints under ``/soda/async`` to ``api``."""
    jobs: SodaJobs = context.extras.setdefault("soda_jobs", SodaJobs(context))
    xml = "text/xml"

    def base(request: Request) -> str:
        return f"{context.base_url(request)}/soda/async"

    @api.post("/async", response_class=Response)
    async def create_job(request: Request, user: Any = Depends(reader)) -> Response:  # noqa: B008
        params = await request_params(request)
        phase = [p.upper() for p in params.pop("PHASE", [])]
        job = jobs.create(user, params)
        if "RUN" in phase:
            jobs.run(job, user)
        return RedirectResponse(f"{base(request)}/{job.id}", status_code=303)

    @api.get("/async", response_class=Response)
    def list_jobs(request: Request, user: Any = Depends(reader)) -> Response:  # noqa: B008
        refs = "".join(
            f'<uws:jobref id="{j.id}" xlink:href={quoteattr(f"{base(request)}/{j.id}")}>'
            f"<uws:phase>{j.phase}</uws:phase></uws:jobref>"
            for j in list(jobs.jobs.values()) if j.owner == user.name
        )
        body = f'<?xml version="1.0" encoding="UTF-8"?>\n<uws:jobs {_UWS_NS} version="1.1">{refs}</uws:jobs>'
        return Response(body.encode(), media_type=xml)

    @api.get("/async/{job_id}", response_class=Response)
    def get_job(job_id: str, request: Request, user: Any = Depends(reader)) -> Response:  # noqa: B008
        return Response(jobs.job_xml(jobs.get(user, job_id), base(request)), media_type=xml)

    @api.post("/async/{job_id}", response_class=Response)
    async def post_job(job_id: str, request: Request, user: Any = Depends(reader)) -> Response:  # noqa: B008
        job = jobs.get(user, job_id)
        params = await request_params(request)
        if [a.upper() for a in params.get("ACTION", [])] != ["DELETE"]:
            raise HTTPException(400, "POST to a job takes ACTION=DELETE")
        jobs.delete(job)
        return RedirectResponse(base(request), status_code=303)

    @api.delete("/async/{job_id}", response_class=Response)
    def delete_job(job_id: str, request: Request, user: Any = Depends(reader)) -> Response:  # noqa: B008
        jobs.delete(jobs.get(user, job_id))
        return RedirectResponse(base(request), status_code=303)

    @api.get("/async/{job_id}/phase", response_class=Response)
    def get_phase(job_id: str, user: Any = Depends(reader)) -> Response:  # noqa: B008
        return Response(jobs.get(user, job_id).phase, media_type="text/plain")

    @api.post("/async/{job_id}/phase", response_class=Response)
    async def post_phase(job_id: str, request: Request, user: Any = Depends(reader)) -> Response:  # noqa: B008
        job = jobs.get(user, job_id)
        phase = [p.upper() for p in (await request_params(request)).get("PHASE", [])]
        if phase == ["RUN"]:
            jobs.run(job, user)
        elif phase == ["ABORT"]:
            jobs.abort(job)
        else:
            raise HTTPException(400, f"PHASE must be RUN or ABORT, got {phase!r}")
        return RedirectResponse(f"{base(request)}/{job.id}", status_code=303)

    @api.get("/async/{job_id}/error", response_class=Response)
    def get_error(job_id: str, user: Any = Depends(reader)) -> Response:  # noqa: B008
        job = jobs.get(user, job_id)
        if job.error is None:
            raise HTTPException(404, f"SODA job {job_id} has no error (phase {job.phase})")
        return Response(job.error + "\n", media_type="text/plain")

    @api.get("/async/{job_id}/results", response_class=Response)
    def get_results(job_id: str, request: Request, user: Any = Depends(reader)) -> Response:  # noqa: B008
        job = jobs.get(user, job_id)
        inner = ""
        if job.phase == "COMPLETED":
            href = quoteattr(f"{base(request)}/{job.id}/results/cutout")
            inner = f'<uws:result id="cutout" xlink:href={href} mime-type="application/fits"/>'
        body = f'<?xml version="1.0" encoding="UTF-8"?>\n<uws:results {_UWS_NS}>{inner}</uws:results>\n'
        return Response(body.encode(), media_type=xml)

    @api.get("/async/{job_id}/results/cutout", response_class=Response)
    def get_result(job_id: str, user: Any = Depends(reader)) -> Response:  # noqa: B008
        job = jobs.get(user, job_id)
        if job.phase != "COMPLETED" or job.result is None or not job.result.exists():
            raise HTTPException(404, f"SODA job {job_id} has no result (phase {job.phase})")
        return Response(job.result.read_bytes(), media_type="application/fits")

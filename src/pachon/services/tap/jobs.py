"""UWS 1.1 jobs of the async TAP endpoint: a persistent store and a thread-pool runner.

Jobs live in ``jobs.sqlite3`` of the service data folder, results and uploads under
``jobs/<id>/``.  Phases: PENDING -> QUEUED -> EXECUTING -> COMPLETED | ERROR, ABORTED from any
of the first three; jobs found QUEUED or EXECUTING when the service starts (it was stopped while
they ran) are marked ERROR.  Each user may hold ``async_jobs_per_user`` jobs; jobs past their
destruction time are deleted with their files.  ABORT marks the job and its result is discarded
(a DuckDB query already executing finishes in the background, bounded by its execution duration).
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pachon.core.errors import PachonError, QueryError
from pachon.services.auth.store import User

__all__ = ["Job", "JobManager", "JobNotFoundError", "QuotaError", "PHASES", "ACTIVE_PHASES"]

_log = logging.getLogger(__name__)

PHASES = (
    "PENDING",
    "QUEUED",
    "EXECUTING",
    "COMPLETED",
    "ERROR",
    "ABORTED",
    "HELD",
    "SUSPENDED",
    "ARCHIVED",
    "UNKNOWN",
)
ACTIVE_PHASES = ("PENDING", "QUEUED", "EXECUTING")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS job (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, groups TEXT NOT NULL, scopes TEXT NOT NULL,
    anonymous INTEGER NOT NULL, phase TEXT NOT NULL, params TEXT NOT NULL, created REAL NOT NULL,
    started REAL, ended REAL, duration INTEGER NOT NULL, destruction REAL NOT NULL, error TEXT,
    result_format TEXT, result_media TEXT, result_rows INTEGER, run_id TEXT
);
"""
_COLUMNS = (
    "id",
    "owner",
    "groups",
    "scopes",
    "anonymous",
    "phase",
    "params",
    "created",
    "started",
    "ended",
    "duration",
    "destruction",
    "error",
    "result_format",
    "result_media",
    "result_rows",
    "run_id",
)


@dataclass
class Job:
    """One UWS job as stored."""

    id: str
    owner: str
    groups: str
    scopes: str
    anonymous: int
    phase: str
    params: str
    created: float
    started: float | None
    ended: float | None
    duration: int
    destruction: float
    error: str | None
    result_format: str | None
    result_media: str | None
    result_rows: int | None
    run_id: str | None

    @property
    def parameters(self) -> dict[str, str]:
        """The job's TAP parameters."""
        return json.loads(self.params)

    def user(self) -> User:
        """The owner as a `User` (queries run with the owner's rights at submission)."""
        return User(
            self.owner, frozenset(self.groups.split()), frozenset(self.scopes.split()), bool(self.anonymous)
        )


class JobManager:
    """Create, run, change and destroy async TAP jobs.

    Parameters
    ----------
    context
        The `ServiceContext` (settings, catalogs, auth).
    """

    def __init__(self, context: Any) -> None:
        self.context = context
        self.settings = context.settings
        self.root = self.settings.resolved_data_dir() / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.root.parent / "jobs.sqlite3", check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._pool = ThreadPoolExecutor(self.settings.async_workers, thread_name_prefix="tap-async")
        n = self._exec(
            "UPDATE job SET phase = 'ERROR', error = 'the service restarted while the job ran', "
            "ended = ? WHERE phase IN ('QUEUED', 'EXECUTING')",
            (time.time(),),
        )
        if n:
            _log.warning("%d async jobs were interrupted by a restart and marked ERROR", n)

    def close(self) -> None:
        """Stop the runner (waiting for running queries) and close the database."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._db.close()

    def _exec(self, sql: str, args: tuple = ()) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    def _rows(self, sql: str, args: tuple = ()) -> list[Job]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM job {sql}", args).fetchall()
        return [Job(*r) for r in rows]

    def job_dir(self, job_id: str) -> Path:
        """Folder of a job's uploads and result."""
        return self.root / job_id

    # -- lifecycle -----------------------------------------------------------------------------
    def create(self, user: User, params: dict[str, str], files: dict[str, bytes]) -> Job:
        """A new PENDING job of ``user`` (raises `QueryError` past the quota)."""
        self.sweep()
        (count,) = self._db.execute("SELECT count(*) FROM job WHERE owner = ?", (user.name,)).fetchone()
        if count >= self.settings.async_jobs_per_user:
            raise QuotaError(
                f"user {user.name!r} holds {count} async jobs, the quota; delete some "
                "(DELETE /tap/async/<id>) before submitting more"
            )
        job_id = uuid.uuid4().hex
        folder = self.job_dir(job_id)
        folder.mkdir(parents=True)
        for name, data in files.items():
            safe = "".join(ch for ch in name if ch.isalnum() or ch in "_-")[:64] or "part"
            (folder / f"upload_{safe}").write_bytes(data)
        clean = {k.upper(): v for k, v in params.items() if k.upper() not in ("PHASE", "RUNID")}
        run_id = next((v for k, v in params.items() if k.upper() == "RUNID"), None)
        now = time.time()
        duration = int(self.settings.async_timeout_s)
        self._exec(
            f"INSERT INTO job ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
            (
                job_id,
                user.name,
                " ".join(sorted(user.groups)),
                " ".join(sorted(user.scopes)),
                int(user.anonymous),
                "PENDING",
                json.dumps(clean),
                now,
                None,
                None,
                duration,
                now + self.settings.async_destruction_days * 86400,
                None,
                None,
                None,
                None,
                run_id,
            ),
        )
        return self.get(job_id, user)

    def get(self, job_id: str, user: User) -> Job:
        """The job ``job_id`` of ``user`` (others' jobs are reported missing)."""
        rows = self._rows("WHERE id = ? AND owner = ?", (job_id, user.name))
        if not rows:
            raise JobNotFoundError(f"no async job {job_id!r} of user {user.name!r}")
        return rows[0]

    def list(
        self, user: User, phases: list[str] | None = None, last: int | None = None, after: float | None = None
    ) -> list[Job]:
        """Jobs of ``user``, newest first."""
        self.sweep()
        jobs = self._rows("WHERE owner = ? ORDER BY created DESC", (user.name,))
        if phases:
            jobs = [j for j in jobs if j.phase in phases]
        if after is not None:
            jobs = [j for j in jobs if j.created > after]
        return jobs[:last] if last is not None else jobs

    def update_params(self, job: Job, params: dict[str, str]) -> None:
        """Add or replace parameters of a PENDING job."""
        if job.phase != "PENDING":
            raise QueryError(f"job {job.id} is {job.phase}; parameters can change only while PENDING")
        merged = {
            **job.parameters,
            **{k.upper(): v for k, v in params.items() if k.upper() not in ("PHASE", "RUNID")},
        }
        run_id = next((v for k, v in params.items() if k.upper() == "RUNID"), job.run_id)
        self._exec("UPDATE job SET params = ?, run_id = ? WHERE id = ?", (json.dumps(merged), run_id, job.id))

    def set_duration(self, job: Job, seconds: int) -> None:
        """Change the execution duration (capped at the service's limit) of a PENDING job."""
        if job.phase != "PENDING":
            raise QueryError(f"job {job.id} is {job.phase}; EXECUTIONDURATION can change only while PENDING")
        limit = int(self.settings.async_timeout_s)
        seconds = limit if seconds <= 0 else min(seconds, limit)
        self._exec("UPDATE job SET duration = ? WHERE id = ?", (seconds, job.id))

    def set_destruction(self, job: Job, when: float) -> None:
        """Change the destruction time (never later than the service's retention)."""
        latest = job.created + self.settings.async_destruction_days * 86400
        self._exec("UPDATE job SET destruction = ? WHERE id = ?", (min(when, latest), job.id))

    def run(self, job: Job) -> None:
        """Queue a PENDING job (RUN of a job already past PENDING is ignored, as UWS allows)."""
        if self._exec("UPDATE job SET phase = 'QUEUED' WHERE id = ? AND phase = 'PENDING'", (job.id,)):
            self._pool.submit(self._execute, job.id)

    def abort(self, job: Job) -> None:
        """Abort a job that has not finished."""
        self._exec(
            "UPDATE job SET phase = 'ABORTED', ended = ? WHERE id = ? AND phase IN "
            "('PENDING', 'QUEUED', 'EXECUTING')",
            (time.time(), job.id),
        )

    def delete(self, job: Job) -> None:
        """Destroy a job and its files."""
        self.abort(job)
        self._exec("DELETE FROM job WHERE id = ?", (job.id,))
        shutil.rmtree(self.job_dir(job.id), ignore_errors=True)

    def sweep(self) -> None:
        """Destroy jobs past their destruction time."""
        for job in self._rows("WHERE destruction < ?", (time.time(),)):
            self.delete(job)

    def wait(self, job: Job, user: User, timeout_s: float, phase: str | None = None) -> Job:
        """Block up to ``timeout_s`` while the job stays active (and in ``phase`` if given)."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        while time.monotonic() < deadline:
            job = self.get(job.id, user)
            if job.phase not in ACTIVE_PHASES or (phase is not None and job.phase != phase):
                break
            time.sleep(0.05)
        return job

    # -- execution -------------------------------------------------------------------------------
    def _execute(self, job_id: str) -> None:
        from pachon.services.tap.query import parse_params, render, run_query

        if not self._exec(
            "UPDATE job SET phase = 'EXECUTING', started = ? WHERE id = ? AND phase = 'QUEUED'",
            (time.time(), job_id),
        ):
            return
        job = self._rows("WHERE id = ?", (job_id,))[0]
        folder = self.job_dir(job_id)
        try:
            files = {p.name[len("upload_") :]: p.read_bytes() for p in folder.glob("upload_*")}
            params = parse_params(job.parameters, files, self.settings.max_rows, self.settings.default_maxrec)
            result = run_query(self.context, job.user(), params, timeout_s=job.duration)
            body, media = render(result, params.format, self.settings.base_url)
            (folder / "result").write_bytes(body)
            done = self._exec(
                "UPDATE job SET phase = 'COMPLETED', ended = ?, result_format = ?, result_media = ?, "
                "result_rows = ? WHERE id = ? AND phase = 'EXECUTING'",
                (time.time(), params.format, media, result.table.num_rows, job_id),
            )
            if not done:
                (folder / "result").unlink(missing_ok=True)
        except PachonError as exc:
            self._fail(job_id, str(exc))
        except Exception as exc:  # a job must end in a phase, whatever happened
            _log.exception("async job %s failed", job_id)
            self._fail(job_id, f"internal error: {type(exc).__name__}")

    def _fail(self, job_id: str, message: str) -> None:
        self._exec(
            "UPDATE job SET phase = 'ERROR', ended = ?, error = ? WHERE id = ? AND phase = 'EXECUTING'",
            (time.time(), message, job_id),
        )


class JobNotFoundError(QueryError):
    """No such job for this user."""


class QuotaError(QueryError):
    """The user holds too many jobs."""

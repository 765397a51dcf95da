"""Settings of the data access application (`pachon serve`).

One pydantic model, `ServiceSettings`, holds everything the handlers need: the repository, the
public base URL, the scopes anonymous users get per service, and the safety limits of TAP
(row cap, query time limit, async job quota).  Defaults work for a laptop: anonymous users may
read everything that no access rule restricts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["ServiceSettings", "DEFAULT_ANONYMOUS_SCOPES", "SCOPES"]

_log = logging.getLogger(__name__)

#: Scopes a token may carry.
SCOPES: tuple[str, ...] = ("read:tap", "read:image", "exec:admin")

#: Service name -> scopes granted without a token (read access to public data).
DEFAULT_ANONYMOUS_SCOPES: dict[str, list[str]] = {
    "tap": ["read:tap"],
    "sia": ["read:image"],
    "soda": ["read:image"],
    "datalink": ["read:image"],
}


class ServiceSettings(BaseModel):
    """Configuration of one data access application.

    Attributes
    ----------
    repo
        Repository folder served.
    base_url
        Public URL of the application root for absolute links (``None``: from each request).
    anonymous_scopes
        Service (``tap``, ``sia``, ``soda``, ``datalink``) -> scopes granted to requests
        without a token; an empty mapping makes every service require a token.
    max_rows
        Cap on MAXREC (rows returned by one query, sync or async).
    default_maxrec
        Rows returned when a query gives no MAXREC.
    query_timeout_s
        Wall-clock limit of one sync query; async jobs use ``async_timeout_s``.
    async_timeout_s
        Default and maximum execution duration of an async job.
    async_jobs_per_user
        Jobs a user may have that are not yet destroyed (quota).
    async_destruction_days
        Days after which an async job and its results are destroyed.
    async_workers
        Threads executing async jobs.
    data_dir
        Folder of the auth database, job database and job results (``<repo>/services``).
    catalog_cache
        Rebuild the DuckDB catalog cache at start-up only when the repository changed.
    tap_backend
        TAP query back end: ``duckdb`` (default, a file in ``data_dir``) or ``postgresql``
        (the served tables copied into ``tap_database_url`` with Q3C indexes, for large tables).
    tap_database_url
        PostgreSQL URL of a database the service may fill, as a user allowed to create schemas,
        roles and the ``q3c`` extension (``postgresql://user@host:5432/db``; a SQLAlchemy
        ``postgresql+psycopg://`` URL is accepted).
    tap_reader_role
        Name of the read-only role queries run as (default ``<database>_tap_reader``).
    apdb_url
        SQLAlchemy URL of the APDB whose tables TAP serves in the schema ``apdb``
        (``sqlite:///PATH`` or ``postgresql+psycopg://...``).  None (the default):
        ``sqlite:///<repo>/apdb.sqlite3`` when that file exists (where the AP pipeline writes it),
        else no APDB; an empty string: no APDB.  See `resolved_apdb_url`.
    apdb_refresh_s
        Least interval (seconds) between two checks, before a query, of whether the APDB
        changed; a change reloads its tables.
    """

    repo: Path
    base_url: str | None = None
    anonymous_scopes: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_ANONYMOUS_SCOPES.items()}
    )
    max_rows: int = Field(100_000, gt=0)
    default_maxrec: int = Field(10_000, gt=0)
    query_timeout_s: float = Field(60.0, gt=0)
    async_timeout_s: float = Field(3600.0, gt=0)
    async_jobs_per_user: int = Field(100, gt=0)
    async_destruction_days: float = Field(7.0, gt=0)
    async_workers: int = Field(2, gt=0)
    data_dir: Path | None = None
    tap_backend: Literal["duckdb", "postgresql"] = "duckdb"
    tap_database_url: str | None = None
    tap_reader_role: str | None = None
    apdb_url: str | None = None
    apdb_refresh_s: float = Field(10.0, ge=0)

    def resolved_data_dir(self) -> Path:
        """The data folder (created when missing): ``data_dir`` or ``<repo>/services``."""
        path = Path(self.data_dir) if self.data_dir is not None else Path(self.repo) / "services"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def resolved_apdb_url(self) -> str | None:
        """The APDB served: ``apdb_url``, or ``<repo>/apdb.sqlite3`` when None and that file exists."""
        if self.apdb_url is not None:
            return self.apdb_url or None
        path = Path(self.repo) / "apdb.sqlite3"
        return f"sqlite:///{path.resolve()}" if path.is_file() else None

    def anonymous_scopes_for(self, service: str) -> frozenset[str]:
        """Scopes granted without a token by ``service``."""
        return frozenset(self.anonymous_scopes.get(service, ()))

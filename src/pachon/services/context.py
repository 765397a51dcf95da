"""`ServiceContext`: what every handler of the data access application shares."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from pachon.repo import Repository
from pachon.services.auth.store import AuthStore, User
from pachon.services.settings import ServiceSettings

__all__ = ["ServiceContext"]

_log = logging.getLogger(__name__)


@dataclass
class ServiceContext:
    """Repository handle, settings, auth store and catalog back end of one application.

    Attributes
    ----------
    settings
        The application settings.
    repo
        The opened repository.
    auth
        Users, tokens and access rules.
    catalogs
        The TAP back end (`pachon.services.tap.catalogs.CatalogDatabase`), or None when the TAP
        package could not be loaded.
    extras
        Per-service state (job managers, caches) keyed by service name.
    """

    settings: ServiceSettings
    repo: Repository
    auth: AuthStore
    catalogs: Any = None
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: ServiceSettings) -> ServiceContext:
        """Open the repository and the auth store named by ``settings``."""
        repo = Repository(settings.repo)
        data_dir = settings.resolved_data_dir()
        return cls(settings, repo, AuthStore(data_dir / "auth.sqlite3"))

    def base_url(self, request: Request) -> str:
        """Public URL of the application root, without a trailing slash."""
        if self.settings.base_url:
            return self.settings.base_url.rstrip("/")
        return str(request.base_url).rstrip("/")

    def visible_runs(self, user: User) -> list[str]:
        """RUN collections of the repository whose datasets ``user`` may see."""
        runs = [name for name, _ in self.repo.registry.list_collections(types=["RUN"])]
        return [r for r in runs if self.auth.visible(user, r)]

    def close(self) -> None:
        """Stop background work and release files and connections."""
        for extra in self.extras.values():
            closer = getattr(extra, "close", None)
            if callable(closer):
                closer()
        if self.catalogs is not None:
            self.catalogs.close()
        self.auth.close()
        self.repo.close()

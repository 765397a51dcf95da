"""FastAPI dependencies: who is asking (`current_user`) and may they (`require_scope`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import HTTPException, Request

from pachon.services.auth.store import User

__all__ = ["current_user", "require_scope", "service_of"]

_log = logging.getLogger(__name__)


def service_of(request: Request) -> str:
    """The service a request addresses: the first path segment (``tap``, ``sia``, ...)."""
    path = request.url.path
    root = request.scope.get("root_path", "") or ""
    if root and path.startswith(root):
        path = path[len(root) :]
    return path.strip("/").split("/", 1)[0]


def current_user(request: Request) -> User:
    """The user of the request's ``Authorization: Bearer`` token, or the anonymous user.

    The anonymous user has the scopes that the settings grant without a token for the service
    the request addresses.  A bad or expired token is refused (401 with
    ``WWW-Authenticate: Bearer``) rather than silently treated as anonymous.
    """
    cached = getattr(request.state, "pachon_user", None)
    if cached is not None:
        return cached
    context = request.app.state.context
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        user = context.auth.authenticate(token) if scheme.lower() == "bearer" else None
        if user is None:
            raise HTTPException(
                401,
                "invalid or expired token: create one with `pachon token create` and send it as "
                "'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
    else:
        user = User(
            "anonymous", frozenset(), context.settings.anonymous_scopes_for(service_of(request)), True
        )
    request.state.pachon_user = user
    return user


def require_scope(scope: str) -> Callable[[Request], User]:
    """A dependency returning the current user if they hold ``scope`` (else 401 or 403)."""

    def dependency(request: Request) -> User:
        user = current_user(request)
        if scope in user.scopes:
            return user
        if user.anonymous:
            raise HTTPException(
                401,
                f"this service needs a token with scope {scope!r}; anonymous access is not enabled",
                headers={"WWW-Authenticate": f'Bearer scope="{scope}"'},
            )
        raise HTTPException(
            403, f"user {user.name!r} lacks scope {scope!r}; ask for a token with --scope {scope}"
        )

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency

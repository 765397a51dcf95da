"""Authentication and authorization: tokens with scopes, groups, collection access rules."""

from __future__ import annotations

from pachon.services.auth.deps import current_user, require_scope
from pachon.services.auth.store import AuthStore, TokenInfo, User, parse_duration

__all__ = ["AuthStore", "User", "TokenInfo", "parse_duration", "current_user", "require_scope"]

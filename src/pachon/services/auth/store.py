"""The authentication database: users, groups, tokens with scopes, collection access rules.

A SQLite file (``auth.sqlite3`` in the service data folder).  Tokens are random 32-byte strings
shown once at creation; only their SHA-256 hash is stored, so a stolen database reveals no
usable token.  A token looks like ``pachon-<key>.<secret>``: the key finds the row, the secret
is compared in constant time against the stored hash.

Access rules: ``set_rule("embargo/*", ["embargo"])`` makes every collection matching the glob
visible only to members of one of the groups (and to ``exec:admin`` holders).  A collection
matching no rule is public.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import logging
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pachon.core.errors import ConfigError
from pachon.services.settings import SCOPES

__all__ = ["AuthStore", "User", "TokenInfo", "parse_duration"]

_log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS user_group (user TEXT NOT NULL, grp TEXT NOT NULL, PRIMARY KEY (user, grp));
CREATE TABLE IF NOT EXISTS token (
    key TEXT PRIMARY KEY, hash TEXT NOT NULL, user TEXT NOT NULL, scopes TEXT NOT NULL,
    created REAL NOT NULL, expires REAL, note TEXT
);
CREATE TABLE IF NOT EXISTS access_rule (pattern TEXT PRIMARY KEY, groups TEXT NOT NULL);
"""
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 86400.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``30d``, ``12h``, ``90m``, ``3600s`` (bare numbers: days).

    Raises
    ------
    ConfigError
        The text is not a duration.
    """
    m = _DURATION.match(text)
    if not m:
        raise ConfigError(f"expiry {text!r} is not a duration; write e.g. 30d, 12h, 90m or 3600s")
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass(frozen=True)
class User:
    """Who is asking: a named user with groups and scopes, or the anonymous user."""

    name: str
    groups: frozenset[str] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)
    anonymous: bool = False

    @property
    def is_admin(self) -> bool:
        """Whether the user holds ``exec:admin`` (sees every collection)."""
        return "exec:admin" in self.scopes


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed (never the secret)."""

    key: str
    user: str
    scopes: tuple[str, ...]
    created: float
    expires: float | None
    note: str | None


class AuthStore:
    """Users, groups, tokens and access rules in one SQLite file.

    Parameters
    ----------
    path
        The database file (created with its tables when missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        self._rules_cache: tuple[float, list[tuple[str, frozenset[str]]]] | None = None

    def close(self) -> None:
        """Close the database."""
        self._conn.close()

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    # -- users and groups ------------------------------------------------------------------------
    def add_to_group(self, user: str, group: str) -> None:
        """Make ``user`` a member of ``group``."""
        self._query("INSERT OR IGNORE INTO user_group VALUES (?, ?)", (user, group))

    def remove_from_group(self, user: str, group: str) -> None:
        """Remove ``user`` from ``group``."""
        self._query("DELETE FROM user_group WHERE user = ? AND grp = ?", (user, group))

    def groups_of(self, user: str) -> frozenset[str]:
        """Groups ``user`` belongs to."""
        return frozenset(r[0] for r in self._query("SELECT grp FROM user_group WHERE user = ?", (user,)))

    # -- tokens ------------------------------------------------------------------------------------
    def create_token(
        self,
        user: str,
        scopes: Iterable[str],
        *,
        groups: Iterable[str] = (),
        expires_in_s: float | None = None,
        note: str | None = None,
    ) -> str:
        """Create a token for ``user`` and return it (shown once; only its hash is kept).

        Raises
        ------
        ConfigError
            An unknown scope or an empty user name.
        """
        scopes = sorted(set(scopes))
        bad = [s for s in scopes if s not in SCOPES]
        if bad:
            raise ConfigError(f"unknown scope {bad[0]!r}; known scopes: {', '.join(SCOPES)}")
        if not user or not user.strip():
            raise ConfigError("a token needs a user name (--user)")
        for g in groups:
            self.add_to_group(user, g)
        key, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        now = time.time()
        self._query(
            "INSERT INTO token VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                _hash(secret),
                user,
                " ".join(scopes),
                now,
                None if expires_in_s is None else now + expires_in_s,
                note,
            ),
        )
        _log.info("created token %s for user %s with scopes %s", key, user, scopes)
        return f"pachon-{key}.{secret}"

    def authenticate(self, token: str) -> User | None:
        """The user of a valid, unexpired token; None for any other string."""
        m = re.fullmatch(r"pachon-([0-9a-f]{16})\.([A-Za-z0-9_-]{20,100})", token.strip())
        if not m:
            return None
        rows = self._query("SELECT hash, user, scopes, expires FROM token WHERE key = ?", (m.group(1),))
        if not rows:
            return None
        digest, user, scopes, expires = rows[0]
        if not hmac.compare_digest(digest, _hash(m.group(2))):
            return None
        if expires is not None and expires < time.time():
            return None
        return User(user, self.groups_of(user), frozenset(scopes.split()), False)

    def list_tokens(self, user: str | None = None) -> list[TokenInfo]:
        """Tokens (all, or of one user), oldest first."""
        sql = "SELECT key, user, scopes, created, expires, note FROM token"
        rows = self._query(
            sql + (" WHERE user = ?" if user else "") + " ORDER BY created", (user,) if user else ()
        )
        return [TokenInfo(k, u, tuple(s.split()), c, e, n) for k, u, s, c, e, n in rows]

    def revoke_token(self, key_or_token: str) -> bool:
        """Delete a token given its key (as listed) or the whole token; False if unknown."""
        key = key_or_token.removeprefix("pachon-").split(".", 1)[0]
        with self._lock:
            return self._conn.execute("DELETE FROM token WHERE key = ?", (key,)).rowcount > 0

    # -- access rules -------------------------------------------------------------------------------
    def set_rule(self, collection_glob: str, groups: Iterable[str]) -> None:
        """Restrict collections matching ``collection_glob`` to members of ``groups``."""
        groups = sorted(set(groups))
        if not groups:
            raise ConfigError(f"access rule {collection_glob!r} needs at least one group (--group)")
        self._query("INSERT OR REPLACE INTO access_rule VALUES (?, ?)", (collection_glob, " ".join(groups)))
        self._rules_cache = None

    def remove_rule(self, collection_glob: str) -> bool:
        """Delete the rule of ``collection_glob``; False if there was none."""
        with self._lock:
            n = self._conn.execute("DELETE FROM access_rule WHERE pattern = ?", (collection_glob,)).rowcount
        self._rules_cache = None
        return n > 0

    def rules(self) -> list[tuple[str, frozenset[str]]]:
        """Access rules as ``(glob, groups)``, sorted by glob (cached for one second)."""
        cached = self._rules_cache
        if cached is not None and time.monotonic() - cached[0] < 1.0:
            return cached[1]
        rows = self._query("SELECT pattern, groups FROM access_rule ORDER BY pattern")
        rules = [(p, frozenset(g.split())) for p, g in rows]
        self._rules_cache = (time.monotonic(), rules)
        return rules

    def visible(self, user: User, collection: str) -> bool:
        """Whether ``user`` may see datasets of ``collection``.

        A collection matched by rules is visible to administrators and to users who belong to
        one of the groups of *every* matching rule (rules only ever narrow access); any other
        collection is public.
        """
        if user.is_admin:
            return True
        matched = [groups for pattern, groups in self.rules() if fnmatch.fnmatchcase(collection, pattern)]
        return all(user.groups & groups for groups in matched)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()

"""A cached ObsCore table with the parsed footprint of each row, refreshed as the repository grows.

Building the table reads one header per image file; the index keeps those header readings
between rebuilds (`build_obscore`'s ``cache``) and checks for new or removed datasets at most
every ``refresh_s`` seconds, so SIA queries cost a table filter, not a repository scan.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import numpy as np

from pachon.services.images.obscore import build_obscore
from pachon.services.images.regions import stcs_to_region

__all__ = ["ObscoreIndex"]

_log = logging.getLogger(__name__)


class ObscoreIndex:
    """The ObsCore rows of a repository, kept up to date lazily.

    Parameters
    ----------
    repo
        An open `~pachon.repo.Repository`.
    refresh_s
        Minimum seconds between checks for added or removed datasets.
    """

    def __init__(self, repo: Any, *, refresh_s: float = 5.0) -> None:
        self.repo = repo
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._cache: dict[uuid.UUID, Any] = {}
        self._table: Any = None
        self._footprints: list[Any] = []
        self._ids: frozenset[str] = frozenset()
        self._checked = -np.inf

    def invalidate(self) -> None:
        """Force a check for new datasets at the next access."""
        self._checked = -np.inf

    def snapshot(self) -> tuple[Any, list[Any]]:
        """The current table (root-relative access URLs) and the footprint Region of each row."""
        with self._lock:
            now = time.monotonic()
            if self._table is None or now - self._checked >= self.refresh_s:
                self._checked = now
                table = build_obscore(self.repo, cache=self._cache)
                ids = frozenset(table.column("obs_publisher_did").to_pylist())
                if self._table is None or ids != self._ids:
                    self._footprints = [stcs_to_region(s) for s in table.column("s_region").to_pylist()]
                    self._table, self._ids = table, ids
                    _log.info("ObsCore index: %d image datasets", table.num_rows)
            return self._table, self._footprints

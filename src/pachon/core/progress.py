"""Progress reporting for long loops: a bar on a terminal, log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["progress"]

T = TypeVar("T")
_log = logging.getLogger(__name__)


def progress(
    items: Iterable[T],
    *,
    total: int | None = None,
    desc: str = "working",
    logger: logging.Logger | None = None,
    log_every_s: float = 10.0,
) -> Iterator[T]:
    """Iterate over ``items`` while reporting progress.

    On an interactive terminal a ``tqdm`` bar is drawn on standard error; otherwise a log
    line at INFO level is written at most every ``log_every_s`` seconds and at the end.

    Parameters
    ----------
    items
        The iterable to walk through.
    total
        Number of items, if ``items`` has no ``len``.
    desc
        Short description shown before the bar or in the log lines.
    logger
        Logger for the non-interactive case; defaults to this module's logger.
    log_every_s
        Minimum interval between log lines in the non-interactive case.

    Yields
    ------
    item
        Each element of ``items`` in order.
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, total=total, desc=desc, leave=False)
        return
    log = logger or _log
    start = last = time.monotonic()
    count = 0
    for item in items:
        yield item
        count += 1
        now = time.monotonic()
        if now - last >= log_every_s:
            last = now
            of = f"/{total}" if total is not None else ""
            log.info("%s: %d%s done (%.1f/s)", desc, count, of, count / max(now - start, 1e-9))
    if count:
        log.info("%s: %d done in %.1f s", desc, count, time.monotonic() - start)

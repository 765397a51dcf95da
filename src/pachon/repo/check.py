"""Consistency check: every registered file exists with its recorded size and checksum."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pachon.core.progress import progress

__all__ = ["check_repository", "CheckReport"]

_log = logging.getLogger(__name__)


@dataclass
class CheckReport:
    """Problems found: missing files, checksum mismatches, unregistered (orphan) files."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    corrupted: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    removed_orphans: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no registered file is missing or corrupted and no orphan remains."""
        return not (self.missing or self.corrupted or (set(self.orphans) - set(self.removed_orphans)))

    def lines(self) -> list[str]:
        """Human-readable report lines."""
        out = [f"checked {self.checked} files"]
        out += [f"MISSING {p}" for p in self.missing]
        out += [f"CORRUPTED {p} (checksum differs from the registry)" for p in self.corrupted]
        out += [
            f"ORPHAN {p} (not registered{'; removed' if p in self.removed_orphans else ''})"
            for p in self.orphans
        ]
        out.append("OK" if self.ok else "PROBLEMS FOUND")
        return out


def check_repository(repo: Any, *, fix: bool = False) -> CheckReport:
    """Verify every file record against the datastore.

    Parameters
    ----------
    repo
        The `~pachon.repo.Repository`.
    fix
        Delete orphan files (files in the datastore that no dataset refers to, such as
        temporary files left by a crash).  Missing or corrupted files are only reported.
    """
    report = CheckReport()
    records = repo.registry.file_records()
    store = repo.datastore
    for rec in progress(records, desc="checking files", logger=_log):
        report.checked += 1
        if not store.exists(rec.path):
            report.missing.append(rec.path)
        elif store.size(rec.path) != rec.size or store.checksum(rec.path) != rec.checksum:
            report.corrupted.append(rec.path)
    known = {r.path for r in records}
    report.orphans = sorted(p for p in store.walk() if p not in known)
    if fix:
        for path in report.orphans:
            store.remove(path)
            report.removed_orphans.append(path)
    for line in report.lines()[1:-1]:
        _log.warning("%s", line)
    return report

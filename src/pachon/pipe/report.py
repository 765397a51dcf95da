"""The outcome of a pipeline run: status of every quantum and a summary table per task."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pachon.pipe.quantum import EXISTING, FAILED, NO_WORK, SKIPPED, SUCCEEDED, QuantumResult

__all__ = ["RunReport", "STATUSES"]

_log = logging.getLogger(__name__)

#: Column order of the summary table.
STATUSES = (SUCCEEDED, NO_WORK, EXISTING, FAILED, SKIPPED)


@dataclass
class RunReport:
    """Quantum outcomes of one run.

    Attributes
    ----------
    run
        The RUN collection written.
    output
        The CHAINED output collection (None when writing to a bare run).
    labels
        Task labels in pipeline order.
    results
        Quantum id → result.
    """

    run: str
    output: str | None
    labels: list[str]
    results: dict[uuid.UUID, QuantumResult] = field(default_factory=dict)
    wall_s: float = 0.0

    def add(self, result: QuantumResult) -> None:
        """Record one quantum's outcome."""
        self.results[result.quantum_id] = result

    def add_skipped(self, quanta: Iterable[Any], reason: str) -> None:
        """Mark quanta as skipped because an upstream quantum failed."""
        for q in quanta:
            if q.id not in self.results:
                self.add(QuantumResult(q.id, q.label, q.data_id, SKIPPED, reason))

    def counts(self) -> dict[str, dict[str, int]]:
        """Task label → status → number of quanta."""
        out = {lb: dict.fromkeys(STATUSES, 0) for lb in self.labels}
        for r in self.results.values():
            out.setdefault(r.label, dict.fromkeys(STATUSES, 0))[r.status] += 1
        return out

    def failures(self) -> list[QuantumResult]:
        """Failed quanta, in the order they finished."""
        return [r for r in self.results.values() if r.status == FAILED]

    def skipped(self) -> list[QuantumResult]:
        """Quanta not run because something upstream failed."""
        return [r for r in self.results.values() if r.status == SKIPPED]

    @property
    def ok(self) -> bool:
        """True when no quantum failed or was skipped."""
        return not any(r.status in (FAILED, SKIPPED) for r in self.results.values())

    def table(self) -> str:
        """The per-task summary as a text table."""
        counts = self.counts()
        width = max([len("task"), *(len(lb) for lb in counts)])
        head = f"{'task':<{width}}  " + "  ".join(f"{s:>9}" for s in STATUSES)
        lines = [head, "-" * len(head)]
        total = dict.fromkeys(STATUSES, 0)
        for lb, c in counts.items():
            lines.append(f"{lb:<{width}}  " + "  ".join(f"{c[s]:>9d}" for s in STATUSES))
            for s in STATUSES:
                total[s] += c[s]
        lines.append(f"{'(all)':<{width}}  " + "  ".join(f"{total[s]:>9d}" for s in STATUSES))
        return "\n".join(lines)

    def summary(self, *, max_failures: int = 10) -> str:
        """Table, then each failure with its data ID and error, then what to do next."""
        parts = [f"run {self.run}" + (f" (output {self.output})" if self.output else "")
                 + f": {len(self.results)} quanta in {self.wall_s:.1f} s", self.table()]
        fails = self.failures()
        for r in fails[:max_failures]:
            last = (r.traceback or "").strip().splitlines()[-3:]
            parts.append(f"FAILED {r.label} {r.data_id}: {r.error}\n    " + "\n    ".join(last))
        if len(fails) > max_failures:
            parts.append(f"... and {len(fails) - max_failures} more failures (see the "
                         f"<label>_failure datasets)")
        if not self.ok:
            parts.append(f"{len(fails)} quanta failed and {len(self.skipped())} were skipped downstream; fix "
                         f"the cause and rerun the same command with --skip-existing --clobber-failures")
        return "\n".join(parts)

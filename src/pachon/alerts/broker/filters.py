"""User filters: SQL WHERE expressions over the flattened alert (DuckDB) and Python functions.

A SQL filter is parsed when it is created, so a syntax error is reported before any alert is
read.  A filter that names a field a survey lacks (``candidate.magpsf`` on Rubin alerts)
matches none of that survey's alerts, with one warning per survey.  A Python filter takes the
batch's Arrow table and returns one boolean per row (vectorized: no per-alert calls).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pachon.alerts.broker.projection import sql_needs
from pachon.alerts.broker.table import ROW_COLUMN
from pachon.core.errors import ConfigError, QueryError

__all__ = ["SqlFilter", "PythonFilter", "load_python_filter"]

log = logging.getLogger(__name__)


class SqlFilter:
    """A SQL WHERE expression evaluated by DuckDB on each batch.

    Parameters
    ----------
    where
        The expression, e.g. ``"diaSource.snr > 10 AND features.ndet >= 2"``.

    Raises
    ------
    QueryError
        When the expression does not parse (the DuckDB message is included).
    """

    def __init__(self, where: str) -> None:
        import duckdb

        self.where = where
        self.name = f"sql({where})"
        if not where.strip():
            raise QueryError("empty --where expression; give a SQL condition such as 'diaSource.snr > 10'")
        try:
            statements = duckdb.extract_statements(f"SELECT 1 FROM alerts WHERE {where}")
        except duckdb.Error as exc:
            raise QueryError(f"filter {where!r} is not a valid SQL WHERE expression: {exc}") from None
        if len(statements) != 1:
            raise QueryError(f"filter {where!r} must be one expression, not several statements")
        self._con = duckdb.connect()
        self._skipped: set[str] = set()
        self.needs = sql_needs(where)
        """Record fields the expression names (the broker decodes only those, and its own)."""

    def __call__(self, table: Any, survey: str) -> np.ndarray:
        """Return the boolean mask of the rows of ``table`` that pass."""
        import duckdb

        mask = np.zeros(table.num_rows, dtype=bool)
        if survey in self._skipped:
            return mask
        self._con.register("alerts", table)
        try:
            rows = self._con.execute(f"SELECT {ROW_COLUMN} FROM alerts WHERE {self.where}").fetchnumpy()
        except duckdb.BinderException as exc:
            self._skipped.add(survey)
            log.warning("filter %r does not apply to %s alerts, which match none: %s",
                        self.where, survey, str(exc).splitlines()[0])
            return mask
        except duckdb.Error as exc:
            raise QueryError(f"filter {self.where!r} failed on {survey} alerts: {exc}") from None
        finally:
            self._con.unregister("alerts")
        mask[np.asarray(rows[ROW_COLUMN], dtype=np.int64)] = True
        return mask


class PythonFilter:
    """A vectorized Python filter: ``func(table: pyarrow.Table, survey: str) -> bool array``.

    Parameters
    ----------
    func
        The function.
    name
        Name used in messages.
    """

    def __init__(self, func: Callable[[Any, str], Any], name: str | None = None) -> None:
        self.func = func
        self.name = name or getattr(func, "__name__", "python-filter")

    def __call__(self, table: Any, survey: str) -> np.ndarray:
        """Return the boolean mask (length checked)."""
        mask = np.asarray(self.func(table, survey), dtype=bool)
        if mask.shape != (table.num_rows,):
            raise QueryError(
                f"Python filter {self.name} returned shape {mask.shape} for {table.num_rows} alerts; "
                "return one boolean per row of the table"
            )
        return mask


def load_python_filter(spec: str) -> PythonFilter:
    """Load ``module:function`` or ``path/to/file.py:function`` as a :class:`PythonFilter`."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError(f"Python filter {spec!r} must be 'module:function' or 'file.py:function'")
    try:
        if target.endswith(".py"):
            path = Path(target)
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            if module_spec is None or module_spec.loader is None or not path.exists():
                raise ConfigError(f"Python filter file {path} does not exist")
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
        func = getattr(module, attr)
    except (ImportError, AttributeError, SyntaxError) as exc:
        raise ConfigError(f"cannot load Python filter {spec!r}: {exc}") from exc
    return PythonFilter(func, name=spec)

"""Certify the calibrations made by a cp run into a CALIBRATION collection, in place.

The cp pipeline writes the calibration dataset types themselves (``bias``, ``dark``, ``flat``,
``ptc``, ``linearity``, ``defects``, registered ``is_calibration`` by the pipeline framework), so
:func:`certify_calibrations` certifies the very datasets of the run over ``[begin, end)``: no
copy.  Running it again leaves those already certified in ``calib_collection`` as they are.
"""

from __future__ import annotations

import logging
from typing import Any

from pachon.core.errors import DatasetNotFoundError
from pachon.pipelines.cp_tasks import CP_PRODUCTS
from pachon.pipelines.isr_task import CALIBRATION_TYPES

__all__ = ["certify_calibrations", "register_calibration_types"]

_log = logging.getLogger(__name__)


def register_calibration_types(repo: Any) -> None:
    """Register every calibration dataset type ISR reads (``is_calibration=True``)."""
    for dtype, dims, storage in CALIBRATION_TYPES.values():
        repo.register_dataset_type(dtype, dims, storage, is_calibration=True)


def _runs(repo: Any, collection: str) -> list[str]:
    """The RUN collections of ``collection`` (itself, or the runs of a CHAINED one, in order)."""
    kind = str(repo.collection_type(collection))
    if kind == "CHAINED":
        return [r for child in repo.get_chain(collection) for r in _runs(repo, child)]
    return [collection] if kind == "RUN" else []


def _products(repo: Any, runs: list[str], calib: str) -> list[Any]:
    if not runs:
        return []
    try:
        return repo.query_datasets(calib, runs, find_first=True)
    except DatasetNotFoundError:  # type not registered: no cp run made it
        return []


def certify_calibrations(repo: Any, run: str, calib_collection: str, begin: Any = None,
                         end: Any = None) -> list[Any]:
    """Certify the calibrations found in ``run`` into ``calib_collection`` over ``[begin, end)``.

    Parameters
    ----------
    repo
        The `pachon.repo.Repository`.
    run
        Collection holding the products: a cp RUN, or its CHAINED output collection (only its
        RUN members are searched, so calibrations certified earlier are not picked up again).
    calib_collection
        CALIBRATION collection (created when missing).
    begin, end
        Validity range (anything `pachon.repo.times.to_ns` takes: astropy Time, ISO string,
        ns TAI); None is unbounded.

    Returns
    -------
    refs
        The certified calibration datasets (those of ``run``).

    Raises
    ------
    pachon.core.errors.DatasetNotFoundError
        ``run`` holds no calibration (the message names it and what was looked for).
    pachon.core.errors.CollectionError
        ``run`` does not exist.
    """
    runs = _runs(repo, run)
    found = [ref for calib in CP_PRODUCTS for ref in _products(repo, runs, calib)]
    if not found:
        raise DatasetNotFoundError(f"no calibration products ({', '.join(CP_PRODUCTS)}) in "
                                   f"collection {run!r}; run the cp pipeline into it first")
    repo.register_collection(calib_collection, "CALIBRATION")
    done = {r.id for name in {r.dataset_type for r in found}
            for r in repo.query_datasets(name, calib_collection, find_first=False)}
    new = [r for r in found if r.id not in done]
    if new:
        repo.certify(calib_collection, new, begin, end)
    _log.info("certified %d calibrations from %s into %s (%d already there)", len(new), run,
              calib_collection, len(found) - len(new))
    return found

"""Certify calibration products of a cp run into a CALIBRATION collection.

The cp pipeline writes ``cpBias``, ``cpDark``, ``cpFlat``, ``cpPtc``, ``cpLinearity`` and
``cpDefects`` (plain dataset types: the pipeline framework registers its outputs without the
calibration flag).  :func:`certify_calibrations` stores each as its calibration dataset type
(``bias``, ``dark``, ... registered with ``is_calibration=True``) in the RUN
``<run>/certified``, with the product as its provenance input, and certifies them over
``[begin, end)`` in ``calib_collection``.  Running it again certifies the same datasets again
(no new copies) and leaves those already certified in ``calib_collection`` as they are.
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


def _product_refs(repo: Any, run: str, product: str) -> list[Any]:
    try:
        return repo.query_datasets(product, run, find_first=False)
    except DatasetNotFoundError:
        return []


def certify_calibrations(repo: Any, run: str, calib_collection: str, begin: Any = None,
                         end: Any = None) -> list[Any]:
    """Certify the cp products found in ``run`` into ``calib_collection`` over ``[begin, end)``.

    Parameters
    ----------
    repo
        The `pachon.repo.Repository`.
    run
        Collection holding the products (a cp run, or its CHAINED output collection).
    calib_collection
        CALIBRATION collection (created when missing).
    begin, end
        Validity range (anything `pachon.repo.times.to_ns` takes: astropy Time, ISO string,
        ns TAI); None is unbounded.

    Returns
    -------
    refs
        The certified calibration datasets.

    Raises
    ------
    pachon.core.errors.DatasetNotFoundError
        ``run`` holds no cp product (the message names it and what was looked for).
    """
    register_calibration_types(repo)
    target = f"{run}/certified"
    certified = []
    for product, calib in CP_PRODUCTS.items():
        for ref in _product_refs(repo, run, product):
            dims = CALIBRATION_TYPES[calib][1]
            did = {k: ref.data_id[k] for k in dims}
            existing = repo.find_dataset(calib, did, collections=[target]) if \
                target in {c for c, _ in repo.list_collections()} else None
            if existing is None:
                existing = repo.put(repo.get(ref), calib, did, run=target, inputs=[ref],
                                    provenance={"task": "certify_calibrations"})
            certified.append(existing)
    if not certified:
        raise DatasetNotFoundError(f"no calibration products ({', '.join(CP_PRODUCTS)}) in "
                                   f"collection {run!r}; "
                                   f"run the cp pipeline into it first")
    repo.register_collection(calib_collection, "CALIBRATION")
    done = {r.id for name in {r.dataset_type for r in certified}
            for r in repo.query_datasets(name, calib_collection, find_first=False)}
    new = [r for r in certified if r.id not in done]
    if new:
        repo.certify(calib_collection, new, begin, end)
    _log.info("certified %d calibrations from %s into %s", len(certified), run, calib_collection)
    return certified

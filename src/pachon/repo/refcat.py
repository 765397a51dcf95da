"""Reference catalogs in the repository: shards keyed by HEALPix pixel, found by sky region.

A reference catalog (Gaia-like: ``ra``, ``dec`` in degrees plus any columns) is stored as one
Parquet dataset per HEALPix pixel of the registry's sky-pixel dimension
(`~pachon.repo.dimensions.SKYPIX_DIMENSION`, nested ordering). Shard files are named
``<pixel>.parquet``, as the simulator writes them. Loading for a region reads only the shards
whose pixel overlaps it and keeps the rows inside it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pachon.core.errors import ConfigError, DatasetNotFoundError
from pachon.repo.dimensions import SKYPIX_DIMENSION
from pachon.repo.ingest import IngestReport

__all__ = ["ingest_refcat", "load_refcat", "refcat_run"]

_log = logging.getLogger(__name__)


def refcat_run(name: str) -> str:
    """The default RUN collection of reference catalog ``name``: ``refcats/<name>``."""
    return f"refcats/{name}"


def ingest_refcat(
    repo: Any,
    name: str,
    files: Iterable[str | Path],
    *,
    run: str | None = None,
    transfer: str = "copy",
) -> IngestReport:
    """Ingest reference-catalog shards as dataset type ``name`` keyed by sky pixel.

    Parameters
    ----------
    repo
        The `~pachon.repo.Repository`.
    name
        Catalog name, used as the dataset type name (e.g. ``gaia_dr3``).
    files
        Shard files named ``<pixel>.parquet`` (HEALPix nested index at the registry's level).
    run
        RUN collection; `refcat_run` of the name by default.
    transfer
        How files enter the datastore (see `pachon.repo.ingest_files.ingest_files`).

    Returns
    -------
    IngestReport
        A shard whose name is not a pixel index fails with a message naming it.
    """
    from pachon.core.skypix import DEFAULT_SKYPIX_LEVEL, SkyPixelization
    from pachon.repo.ingest_files import ingest_files

    pixelization = SkyPixelization(DEFAULT_SKYPIX_LEVEL)
    report = IngestReport()
    items: list[tuple[str, dict[str, Any]]] = []
    for path in map(str, files):
        stem = Path(path).name.removesuffix(".parquet")
        if not stem.isdigit() or not 0 <= int(stem) < pixelization.npix:
            report.failed.append(
                (path, f"ConfigError: {path}: shard name must be '<pixel>.parquet' with a HEALPix "
                       f"level-{DEFAULT_SKYPIX_LEVEL} nested index (0..{pixelization.npix - 1})")
            )
            continue
        items.append((path, {SKYPIX_DIMENSION: int(stem)}))
    pixels = sorted({d[SKYPIX_DIMENSION] for _, d in items})
    repo.insert_dimension_records(
        SKYPIX_DIMENSION, [{"id": p, "region": pixelization.pixel_region(p)} for p in pixels]
    )
    repo.register_dataset_type(name, (SKYPIX_DIMENSION,), "ArrowTable")
    result = ingest_files(repo, name, items, run=run or refcat_run(name), transfer=transfer,
                          task="ingest_refcat")
    result.failed[:0] = report.failed
    return result


def load_refcat(
    repo: Any,
    name: str,
    region: Any,
    *,
    collections: str | Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
) -> Any:
    """Rows of reference catalog ``name`` inside ``region``, as a ``pyarrow.Table``.

    Parameters
    ----------
    repo
        The `~pachon.repo.Repository`.
    name
        Catalog (dataset type) name.
    region
        A `~pachon.core.sphgeom.Region` (e.g. the bounding circle of a detector).
    collections
        Where to look; `refcat_run` of the name by default.
    columns
        Columns to read (``ra`` and ``dec`` are always read).

    Raises
    ------
    DatasetNotFoundError
        No shard of the catalog overlaps the region.
    """
    import numpy as np
    import pyarrow as pa

    if not hasattr(region, "contains"):
        raise ConfigError(f"region must be a pachon.core.sphgeom Region, got {type(region).__name__}")
    refs = repo.query_datasets(name, collections or refcat_run(name), region=region)
    if not refs:
        raise DatasetNotFoundError(
            f"no shard of reference catalog {name!r} overlaps {region}; ingest it with "
            f"`pachon refcat ingest` or check the collections"
        )
    read_cols = None if columns is None else list(dict.fromkeys(["ra", "dec", *columns]))
    tables = [repo.get(ref, parameters={"columns": read_cols} if read_cols else None) for ref in refs]
    table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    inside = region.contains(np.asarray(table["ra"]), np.asarray(table["dec"]))
    _log.debug("refcat %s: %d shards, %d of %d rows inside", name, len(refs), int(inside.sum()), len(table))
    return table.filter(pa.array(inside))

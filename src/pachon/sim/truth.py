"""Truth tables (Parquet): sources, visits, per-epoch renderings, injected effects, amplifiers, exposures.

* ``sources``: every simulated source (stars, galaxies, transients, movers) with its static
  parameters (positions at epoch 2016.0, proper motions, parallaxes, magnitudes in ugrizy,
  galaxy shapes, light-curve parameters).
* ``visits``: pointing, band, time and conditions of each visit.
* ``epochs``: for every visit x detector x source drawn: pixel position, sky position at the
  visit (proper motion, parallax, DCR applied), magnitude, ``flux`` (electrons before
  vignetting and flat) and ``illumination`` (vignetting x large-scale flat at the source).
* ``effects``: cosmic rays, bleed trails, ghosts, satellite trails, defects, crosstalk
  coefficients, per exposure and detector (``kind``, ``x0, y0, x1, y1``, ``value``).
* ``amplifiers``: gain, read noise (e- and ADU), bias level (ADU), full well, non-linearity.
* ``exposures``: every raw file written, with its exposure id, type and detector.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pachon.sim.sky import SkyCatalog

__all__ = ["source_table", "write_table", "rows_to_columns"]

log = logging.getLogger(__name__)


def rows_to_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Turn a list of row dicts into columns (missing values become None)."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    return {k: [row.get(k) for row in rows] for k in keys}


def source_table(catalog: SkyCatalog) -> dict[str, np.ndarray]:
    """All sources in one table (columns not applying to a population are NaN, or "" for text)."""
    parts = {
        "star": catalog.stars,
        "galaxy": catalog.galaxies,
        "transient": catalog.transients,
        "mover": catalog.movers,
    }
    renames = {"ra0": "ra", "dec0": "dec", "kind": "transient_kind"}
    text: set[str] = set()
    cols: list[str] = []
    for p in parts.values():
        for k, v in p.items():
            name = renames.get(k, k)
            if name not in cols:
                cols.append(name)
            if np.asarray(v).dtype == object:
                text.add(name)
    out: dict[str, list[np.ndarray]] = {c: [] for c in ["kind", *cols]}
    for kind, p in parts.items():
        n = len(p["id"])
        data = {renames.get(k, k): v for k, v in p.items()}
        out["kind"].append(np.full(n, kind, dtype=object))
        for c in cols:
            if c in data:
                out[c].append(np.asarray(data[c], dtype=object if c in text else None))
            else:
                out[c].append(np.full(n, "", dtype=object) if c in text else np.full(n, np.nan))
    return {c: np.concatenate(v) for c, v in out.items()}


def write_table(columns: Mapping[str, Any], path: str | Path) -> Path:
    """Write columns (arrays or lists) as a Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for k, v in columns.items():
        arr = np.asarray(v)
        arrays[k] = pa.array(list(v) if arr.dtype == object else arr)
    pq.write_table(pa.table(arrays), path)
    return path

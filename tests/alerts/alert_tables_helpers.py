"""APDB-shaped tables with every column filled, for the columnar alert tests."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from pachon.alerts.columnar import _record_plan
from pachon.core.schemas import arrow_schema

RECORDS = {"DiaSource": "diaSource", "DiaForcedSource": "diaForcedSource",
           "DiaObject": "diaObject", "SSSource": "ssSource"}


def random_table(table: str, n: int, rng: np.random.Generator, *, version: str = "11.1",
                 holes: float = 0.1, **columns: object) -> pa.Table:
    """Rows of an APDB table (its Arrow schema) with random values in every column.

    Columns that the alert schema makes nullable get nulls (and floats NaN) in about a
    ``holes`` fraction of the rows; ``columns`` override whole columns.
    """
    nullable = {name for name, _, _, ok in _record_plan(version, RECORDS[table]) if ok}
    arrays = []
    schema = arrow_schema("apdb", table)
    for field in schema:
        t = field.type
        if field.name in columns:
            arrays.append(pa.array(np.asarray(columns[field.name]) if not isinstance(
                columns[field.name], list) else columns[field.name], t))
            continue
        if pa.types.is_integer(t):
            info = np.iinfo(t.to_pandas_dtype())
            values = rng.integers(max(info.min, -2**40), min(info.max, 2**40), n)
        elif pa.types.is_floating(t):
            values = rng.normal(0.0, 1e3, n)
        elif pa.types.is_boolean(t):
            values = rng.random(n) < 0.5
        elif pa.types.is_string(t):
            values = np.array(["ugrizy"[k] for k in rng.integers(0, 6, n)], object)
        else:
            arrays.append(pa.nulls(n, t))
            continue
        mask = None
        if field.name in nullable:
            mask = rng.random(n) < holes
            if pa.types.is_floating(t):
                values = np.where(rng.random(n) < holes, np.nan, values)
        arrays.append(pa.array(values, t, mask=mask))
    return pa.Table.from_arrays(arrays, schema=schema)

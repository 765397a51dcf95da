"""Complete APDB rows from a few arrays, for simulations, tests and benchmarks.

Measurement code fills every column it measures; these helpers fill the columns the schema
requires (``x``, ``y``, ``psfNdata``, ``bboxSize``, ...) with neutral values so rows from a
simulation can be stored in the APDB and put into alert packets.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["dia_source_table", "dia_forced_source_table"]

log = logging.getLogger(__name__)


def dia_source_table(
    dia_source_id: Any,
    ra: Any,
    dec: Any,
    midpoint_mjd_tai: Any,
    *,
    visit: int,
    detector: int,
    band: str = "r",
    psf_flux: Any = 1000.0,
    psf_flux_err: Any = 50.0,
    science_flux: Any = None,
    dia_object_id: Any = None,
    x: Any = 0.0,
    y: Any = 0.0,
    pos_err_deg: float = 2e-5,
) -> Any:
    """A DiaSource table (pyarrow, APDB schema) with the required columns filled.

    Parameters
    ----------
    dia_source_id, ra, dec, midpoint_mjd_tai
        Arrays (or scalars broadcast) of ids, positions (deg) and times (MJD TAI).
    visit, detector, band
        Where the sources were measured.
    psf_flux, psf_flux_err, science_flux
        Difference-image and science PSF fluxes (nJy); ``science_flux`` defaults to psf_flux.
    dia_object_id
        Associated DiaObject ids, or None (unassociated).
    x, y
        Pixel positions.
    pos_err_deg
        raErr and decErr (deg).

    Returns
    -------
    pyarrow.Table
    """
    import pyarrow as pa

    from pachon.core.schemas import arrow_schema

    ids = np.atleast_1d(np.asarray(dia_source_id, np.int64))
    n = ids.size

    def col(value: Any, dtype: Any) -> np.ndarray:
        return np.broadcast_to(np.asarray(value, dtype), (n,)).copy()

    flux = col(psf_flux, float)
    columns: dict[str, Any] = {
        "diaSourceId": ids,
        "visit": col(visit, np.int64),
        "detector": col(detector, np.int16),
        "diaObjectId": None if dia_object_id is None else col(dia_object_id, np.int64),
        "midpointMjdTai": col(midpoint_mjd_tai, float),
        "ra": col(ra, float), "dec": col(dec, float),
        "raErr": col(pos_err_deg, np.float32), "decErr": col(pos_err_deg, np.float32),
        "x": col(x, np.float32), "y": col(y, np.float32),
        "psfFlux": flux.astype(np.float32), "psfFluxErr": col(psf_flux_err, np.float32),
        "scienceFlux": col(flux if science_flux is None else science_flux, np.float32),
        "scienceFluxErr": col(psf_flux_err, np.float32),
        "snr": (flux / col(psf_flux_err, float)).astype(np.float32),
        "psfNdata": col(0, np.int32), "trailNdata": col(0, np.int32),
        "dipoleNdata": col(0, np.int32), "bboxSize": col(15, np.int32),
        "band": [band] * n,
        "timeProcessedMjdTai": col(midpoint_mjd_tai, float) + 1e-3,
    }
    schema = arrow_schema("apdb", "DiaSource")
    arrays = []
    for field in schema:
        value = columns.get(field.name)
        arrays.append(pa.nulls(n, field.type) if value is None else pa.array(value, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def dia_forced_source_table(
    dia_forced_source_id: Any,
    dia_object_id: Any,
    ra: Any,
    dec: Any,
    midpoint_mjd_tai: Any,
    *,
    visit: int,
    detector: int,
    band: str = "r",
    psf_flux: Any = 0.0,
    psf_flux_err: Any = 50.0,
) -> Any:
    """A DiaForcedSource table (pyarrow, APDB schema) with the required columns filled.

    Parameters
    ----------
    dia_forced_source_id, dia_object_id, ra, dec, midpoint_mjd_tai
        Arrays (or scalars broadcast).
    visit, detector, band
        Where the photometry was measured.
    psf_flux, psf_flux_err
        Forced difference-image PSF flux and error (nJy); science flux set equal.

    Returns
    -------
    pyarrow.Table
    """
    import pyarrow as pa

    from pachon.core.schemas import arrow_schema

    ids = np.atleast_1d(np.asarray(dia_forced_source_id, np.int64))
    n = ids.size

    def col(value: Any, dtype: Any) -> np.ndarray:
        return np.broadcast_to(np.asarray(value, dtype), (n,)).copy()

    columns = {
        "diaForcedSourceId": ids, "diaObjectId": col(dia_object_id, np.int64),
        "ra": col(ra, float), "dec": col(dec, float),
        "visit": col(visit, np.int64), "detector": col(detector, np.int16),
        "psfFlux": col(psf_flux, np.float32), "psfFluxErr": col(psf_flux_err, np.float32),
        "midpointMjdTai": col(midpoint_mjd_tai, float),
        "scienceFlux": col(psf_flux, np.float32), "scienceFluxErr": col(psf_flux_err, np.float32),
        "band": [band] * n, "timeProcessedMjdTai": col(midpoint_mjd_tai, float) + 1e-3,
    }
    schema = arrow_schema("apdb", "DiaForcedSource")
    arrays = [
        pa.nulls(n, f.type) if columns.get(f.name) is None else pa.array(columns[f.name], f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)

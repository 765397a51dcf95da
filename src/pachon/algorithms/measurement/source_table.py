"""Measurement columns → a table in the Rubin ``Source`` schema (DP1), fluxes in nJy."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pachon.core.exposure import Exposure

__all__ = ["to_source_table"]

_log = logging.getLogger(__name__)


def to_source_table(
    exposure: Exposure,
    m: dict[str, np.ndarray],
    *,
    extra: dict[str, np.ndarray] | None = None,
    source_id_base: int = 0,
) -> Any:
    """Build a ``pyarrow.Table`` with every column of ``dp1.Source`` (absent ones null/False).

    ``exposure`` must carry a WCS and a photometric calibration; ``m`` is the output of
    :func:`~pachon.algorithms.measurement.measure.measure_sources` (with ``psfFlux_apCorr``
    when aperture corrections were applied); ``extra`` holds further ready columns.
    """
    import pyarrow as pa

    from pachon.core.schemas import arrow_schema

    schema = arrow_schema("dp1", "Source")
    n = len(m["x"])
    pc = exposure.photo_calib
    cols: dict[str, Any] = {}
    ra, dec = exposure.pixel_to_sky(m["x"], m["y"]) if exposure.wcs is not None else (np.full(n, np.nan),) * 2
    cols.update(
        coord_ra=ra, coord_dec=dec, ra=ra, dec=dec, x=m["x"], y=m["y"], xErr=m["xErr"], yErr=m["yErr"]
    )
    if exposure.wcs is not None:
        scale = np.sqrt(abs(np.linalg.det(exposure.wcs.pixel_scale_matrix)))
        cols["raErr"] = (m["xErr"] * scale).astype(np.float32)
        cols["decErr"] = (m["yErr"] * scale).astype(np.float32)

    def njy(f: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if pc is None:
            return f * np.nan, e * np.nan
        return pc.to_njy(f, e)

    cols["psfFlux"], cols["psfFluxErr"] = njy(m["psf_instFlux"], m["psf_instFluxErr"])
    cols["calibFlux"], cols["calibFluxErr"] = cols["psfFlux"], cols["psfFluxErr"]
    cols["gaussianFlux"], cols["gaussianFluxErr"] = njy(m["gaussian_instFlux"], m["gaussian_instFluxErr"])
    for key in m:
        if key.startswith("ap") and key.endswith("_instFlux"):
            name = key[: -len("_instFlux")]
            cols[f"{name}Flux"], cols[f"{name}FluxErr"] = njy(m[key], m[f"{name}_instFluxErr"])
            cols[f"{name}Flux_flag"] = m[f"{name}_flag"]
    for k in (12, 17, 35, 50):
        if f"ap{k:02d}_instFlux" in m:
            cols[f"apFlux_{k}_0_instFlux"] = m[f"ap{k:02d}_instFlux"]
            cols[f"apFlux_{k}_0_instFluxErr"] = m[f"ap{k:02d}_instFluxErr"]
            cols[f"apFlux_{k}_0_flag"] = m[f"ap{k:02d}_flag"]
    direct = (
        "ixx iyy ixy ixxPSF iyyPSF ixyPSF sizeExtendedness psfFlux_area psfFlux_flag psfFlux_flag_edge "
        "centroid_flag deblend_nChild deblend_deblendedAsPsf footprintArea_value psfFlux_apCorr "
        "psfFlux_apCorrErr extendedness"
    ).split()
    for key in direct:
        if key in m:
            cols[key] = m[key]
    for key, val in m.items():
        if key.startswith("pixelFlags_"):
            cols[key] = val
    vi = exposure.visit_info
    base = int(source_id_base)
    cols["sourceId"] = base + np.arange(n, dtype=np.int64)
    cols["parentSourceId"] = np.where(m["parentSourceId"] >= 0, base + m["parentSourceId"], 0)
    if vi is not None:
        cols["visit"] = np.full(n, vi.visit_id if vi.visit_id is not None else -1, dtype=np.int64)
        cols["detector"] = np.full(n, vi.detector if vi.detector is not None else -1, dtype=np.int32)
        cols["band"] = [vi.band or ""] * n
        cols["physical_filter"] = [vi.physical_filter or ""] * n
    cols.update(extra or {})
    arrays = []
    for f in schema:
        if f.name in cols:
            arrays.append(
                pa.array(
                    np.asarray(cols[f.name]) if not isinstance(cols[f.name], list) else cols[f.name]
                ).cast(f.type)
            )
        elif pa.types.is_boolean(f.type):
            arrays.append(pa.array(np.zeros(n, bool)))
        else:
            arrays.append(pa.nulls(n, type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)

"""A Gaia-like reference catalogue of the simulated stars, sharded by HEALPix pixel.

Columns follow Gaia DR3 names (``source_id``, ``ra``, ``dec``, ``ra_error``... errors in mas,
proper motions in mas/yr, ``ref_epoch`` 2016.0, G/BP/RP magnitudes) plus Rubin refcat-style
fluxes ``<band>_flux`` / ``<band>_fluxErr`` in nJy and the simulator's ``sim_id``.  Positions
are the true 2016.0 positions plus Gaussian errors of the quoted size.  One Parquet file per
HEALPix pixel (nested ordering) at ``level``: ``<dir>/<pixel>.parquet``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pachon.sim.config import BANDS
from pachon.sim.sky import SkyCatalog

__all__ = ["make_refcat_columns", "write_refcat"]

log = logging.getLogger(__name__)

_MAS_DEG = 1.0 / 3.6e6


def make_refcat_columns(
    catalog: SkyCatalog, rng: np.random.Generator, *, mag_limit: float
) -> dict[str, np.ndarray]:
    """Reference-catalogue columns of the stars brighter than ``mag_limit`` in G (variables excluded)."""
    s = catalog.stars
    gmag = s["mag_r"] + 0.1 - 0.25 * s["g_r"]
    keep = (gmag < mag_limit) & (s["period"] == 0)
    g = gmag[keep]
    n = int(keep.sum())
    pos_err = 0.02 * 10 ** (0.2 * np.clip(g - 15.0, 0, None)) + 0.01
    pm_err = 1.2 * pos_err
    mag_err = 0.0003 + 0.002 * 10 ** (0.4 * np.clip(g - 17.0, 0, None)) / 10
    dec = s["dec"][keep] + rng.normal(0, 1, n) * pos_err * _MAS_DEG
    ra = s["ra"][keep] + rng.normal(0, 1, n) * pos_err * _MAS_DEG / np.cos(np.radians(dec))
    cols: dict[str, np.ndarray] = {
        "source_id": np.arange(1, n + 1, dtype=np.int64) + 4_000_000_000,
        "sim_id": s["id"][keep],
        "ra": ra % 360.0,
        "dec": dec,
        "ra_error": pos_err,
        "dec_error": pos_err,
        "pmra": s["pm_ra"][keep] + rng.normal(0, 1, n) * pm_err,
        "pmdec": s["pm_dec"][keep] + rng.normal(0, 1, n) * pm_err,
        "pmra_error": pm_err,
        "pmdec_error": pm_err,
        "parallax": s["parallax"][keep] + rng.normal(0, 1, n) * pos_err,
        "parallax_error": pos_err,
        "ref_epoch": np.full(n, 2016.0),
        "phot_g_mean_mag": g + rng.normal(0, 1, n) * mag_err,
        "phot_g_mean_mag_error": mag_err,
        "phot_bp_mean_mag": s["mag_g"][keep] + 0.05,
        "phot_bp_mean_mag_error": 2 * mag_err,
        "phot_rp_mean_mag": s["mag_i"][keep] + 0.1,
        "phot_rp_mean_mag_error": 2 * mag_err,
    }
    for band in BANDS:
        flux = 10 ** (-0.4 * (s[f"mag_{band}"][keep] - 31.4))
        err = flux * mag_err * 0.921
        cols[f"{band}_flux"] = flux + rng.normal(0, 1, n) * err
        cols[f"{band}_fluxErr"] = err
    return cols


def write_refcat(columns: dict[str, np.ndarray], out_dir: str | Path, *, level: int) -> list[Path]:
    """Write the catalogue as one Parquet file per HEALPix pixel; returns the files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pachon.core.skypix import SkyPixelization

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pixels = SkyPixelization(level).index(columns["ra"], columns["dec"])
    table = pa.table(columns)
    meta = {
        b"healpix_level": str(level).encode(),
        b"healpix_ordering": b"nested",
        b"ref_epoch": b"2016.0",
        b"units": b"ra/dec deg; errors mas; pm mas/yr; flux nJy",
    }
    order = np.argsort(pixels, kind="stable")
    uniq, start = np.unique(pixels[order], return_index=True)
    bounds = list(start) + [len(order)]
    files = []
    for k, pix in enumerate(uniq):
        part = table.take(pa.array(order[bounds[k] : bounds[k + 1]]))
        path = out_dir / f"{int(pix)}.parquet"
        pq.write_table(part.replace_schema_metadata(meta), path)
        files.append(path)
    log.info("refcat: %d stars in %d shard(s) at HEALPix level %d", len(order), len(files), level)
    return files

"""Calibration of a characterized exposure: deep measurement, astrometry, photometry → calexp + Source.

:func:`calibrate_image` (no I/O) matches the sources to the reference catalogue, fits a
TAN-SIP WCS, fits the zero point, applies the aperture correction and writes every source in
the Rubin ``Source`` schema (fluxes in nJy).  :class:`CalibrateTask` reads ``ic_exp``, the
characterization's measurements ``ic_src`` (it does not characterize again) and the
reference-catalogue shards overlapping the detector, and writes ``calexp`` and ``src``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from pachon.algorithms.astrometry import AstrometryResult, solve_astrometry
from pachon.algorithms.measurement.source_table import to_source_table
from pachon.algorithms.photometry import ZeroPointFit, fit_zero_point
from pachon.core.exposure import Exposure
from pachon.pipe.task import Input, Output, PrerequisiteInput, Task
from pachon.pipelines.characterize_task import CharacterizeResult

__all__ = ["CalibrateConfig", "CalibrateResult", "CalibrateTask", "calibrate_image", "refcat_at_epoch"]

_log = logging.getLogger(__name__)


@dataclass
class CalibrateConfig:
    """Settings of the calibration step."""

    sip_order: int = 2
    match_tolerance: float = 5.0
    min_astrometry_snr: float = 20.0
    photometry_min_snr: float = 50.0
    #: with fewer stars above ``photometry_min_snr``, the zero point uses the astrometric matches
    #: above ``min_astrometry_snr`` (logged; the calexp header ``CALPHSNR`` gives the cut used)
    photometry_min_stars: int = 3
    extendedness_ratio: float = 0.985
    #: dataset type name of the reference catalogue shards (healpix7)
    refcat_name: str = "sim_gaia"
    #: fit a colour term against the reference colour ``a - b`` (mag) of these two bands
    #: (``{a}_flux``, ``{b}_flux`` columns); None: zero point only
    colour_bands: tuple[str, str] | None = None


@dataclass
class CalibrateResult:
    """The calexp, its Source table and the fits behind them."""

    exposure: Exposure
    sources: Any
    astrometry: AstrometryResult
    zero_point: ZeroPointFit


def refcat_at_epoch(ref: dict[str, np.ndarray], epoch_year: float) -> tuple[np.ndarray, np.ndarray]:
    """Reference positions moved by their proper motions from ``ref_epoch`` to ``epoch_year``."""
    ra, dec = np.asarray(ref["ra"], float), np.asarray(ref["dec"], float)
    if "pmra" not in ref:
        return ra, dec
    dt = epoch_year - np.asarray(ref.get("ref_epoch", np.full(len(ra), 2016.0)), float)
    pmra = np.nan_to_num(np.asarray(ref["pmra"], float))
    pmdec = np.nan_to_num(np.asarray(ref["pmdec"], float))
    dec2 = dec + pmdec * dt / 3.6e6
    return ra + pmra * dt / 3.6e6 / np.cos(np.radians(dec2)), dec2


def calibrate_image(
    char: CharacterizeResult,
    refcat: dict[str, np.ndarray],
    band: str,
    *,
    epoch_year: float,
    config: CalibrateConfig | None = None,
    data_id: str = "",
) -> CalibrateResult:
    """Astrometric and photometric calibration of a characterized exposure.

    Raises
    ------
    pachon.algorithms.astrometry.AstrometryError, pachon.algorithms.photometry.PhotometryError
        No solution for this data ID (the message names it).
    """
    cfg = config or CalibrateConfig()
    exp = char.exposure
    m = dict(char.measurements)
    if exp.wcs is None:
        from pachon.algorithms.astrometry import AstrometryError

        raise AstrometryError(f"calibrate {data_id}: the exposure has no initial WCS; use blind_solve")
    snr = m["psf_instFlux"] / m["psf_instFluxErr"]
    primary = m["deblend_nChild"] == 0
    use = primary & (snr > cfg.min_astrometry_snr) & ~m["pixelFlags_edge"] & ~m["pixelFlags_saturated"]
    ra, dec = refcat_at_epoch(refcat, epoch_year)
    flux_col = f"{band}_flux"
    ref_mag = -2.5 * np.log10(np.clip(np.asarray(refcat[flux_col], float), 1e-3, None)) + 31.4
    idx = np.flatnonzero(use)
    astro = solve_astrometry(
        m["x"][idx], m["y"][idx], m["psf_instFlux"][idx], ra, dec, ref_mag, exp.wcs, exp.image.shape,
        sip_order=cfg.sip_order, match_tolerance=cfg.match_tolerance, data_id=data_id,
    )  # fmt: skip
    exp.wcs = astro.wcs
    # aperture-corrected PSF fluxes are the calibration fluxes
    corr = np.ones(len(m["x"]))
    corr_err = np.zeros(len(m["x"]))
    if char.apcorr is not None:
        corr = char.apcorr.evaluate(m["x"], m["y"])
        corr_err = np.full(len(m["x"]), char.apcorr.error)
        f, e, _ = char.apcorr.apply(m["x"], m["y"], m["psf_instFlux"], m["psf_instFluxErr"])
        m["psf_instFlux"], m["psf_instFluxErr"] = f, e
    m["psfFlux_apCorr"], m["psfFlux_apCorrErr"] = corr, corr_err
    si, ri = idx[astro.src_index], astro.ref_index
    phot = (snr[si] > cfg.photometry_min_snr) & (m["parentSourceId"][si] < 0)
    phot_snr = cfg.photometry_min_snr
    if phot.sum() < cfg.photometry_min_stars:
        # a sparse field (few bright stars on a small detector): the astrometric matches down to
        # min_astrometry_snr still give a zero point good to ~1 %, rather than no calexp at all
        relaxed = (snr[si] > cfg.min_astrometry_snr) & (m["parentSourceId"][si] < 0)
        _log.warning("calibrate %s: %d photometric star(s) above S/N %.0f; using the %d above S/N %.0f "
                     "(header CALPHSNR)", data_id, int(phot.sum()), cfg.photometry_min_snr,
                     int(relaxed.sum()), cfg.min_astrometry_snr)
        phot, phot_snr = relaxed, cfg.min_astrometry_snr
    colour = _reference_colour(refcat, cfg.colour_bands, ri[phot], data_id)
    zp = fit_zero_point(
        m["psf_instFlux"][si][phot], m["psf_instFluxErr"][si][phot],
        np.asarray(refcat[flux_col], float)[ri][phot], np.asarray(refcat[f"{band}_fluxErr"], float)[ri][phot],
        colour=colour, colour_term=None if colour is not None else 0.0, data_id=data_id,
    )  # fmt: skip
    exp.photo_calib = zp.photo_calib
    if exp.metadata is not None:
        exp.metadata["CALPHSNR"] = (float(phot_snr), "S/N cut of the zero-point stars")
    ref_ap = next((k for k in ("ap17_instFlux", "ap12_instFlux") if k in m), None)
    if ref_ap is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = m["psf_instFlux"] / m[ref_ap]
        m["extendedness"] = np.where(
            np.isfinite(ratio), (ratio < cfg.extendedness_ratio).astype(float), np.nan
        )
    extra = {
        "calib_astrometry_used": np.isin(np.arange(len(m["x"])), si),
        "calib_photometry_used": np.isin(np.arange(len(m["x"])), si[phot][zp.used]),
        "calib_psf_used": char.psf_used,
        "calib_psf_reserved": char.psf_reserved,
    }
    table = to_source_table(exp, m, extra=extra)
    return CalibrateResult(exp, table, astro, zp)


def _reference_colour(
    refcat: dict[str, np.ndarray], bands: tuple[str, str] | None, rows: np.ndarray, data_id: str
) -> np.ndarray | None:
    """Reference colour ``m_a - m_b`` of ``rows`` (None without ``colour_bands``)."""
    if bands is None:
        return None
    cols = [f"{b}_flux" for b in bands]
    missing = [c for c in cols if c not in refcat]
    if missing:
        from pachon.core.errors import ConfigError

        raise ConfigError(
            f"calibrate {data_id}: colour_bands={bands!r} needs reference columns {missing}; "
            "set CalibrateConfig.colour_bands to bands the reference catalogue has"
        )
    fa, fb = (np.asarray(refcat[c], float)[rows] for c in cols)
    with np.errstate(invalid="ignore", divide="ignore"):
        return -2.5 * np.log10(fa / fb)


class CalibrateTask(Task):
    """Astrometric and photometric calibration of a characterized detector image."""

    dimensions = ("instrument", "exposure", "detector")
    inputs = {
        "ic_exp": Input("ic_exp", ("instrument", "exposure", "detector"), "Exposure"),
        "ic_src": Input("ic_src", ("instrument", "exposure", "detector"), "ArrowTable"),
    }
    prerequisites = {
        "refcat": PrerequisiteInput("sim_gaia", ("healpix7",), "ArrowTable", multiple=True, lookup="region"),
    }
    outputs = {
        "calexp": Output("calexp", ("instrument", "exposure", "detector"), "Exposure"),
        "src": Output("src", ("instrument", "exposure", "detector"), "ArrowTable"),
    }
    config_class = CalibrateConfig

    def __init__(self, config: CalibrateConfig | None = None) -> None:
        super().__init__(config)
        # the reference catalogue's dataset type comes from the config (``refcat_name``)
        self.prerequisites = {
            "refcat": PrerequisiteInput(
                self.config.refcat_name, ("healpix7",), "ArrowTable", multiple=True, lookup="region"
            )
        }

    def run(self, ic_exp: Exposure, ic_src: Any, refcat: list[Any]) -> dict[str, Any]:  # noqa: D102
        import pyarrow as pa

        from pachon.pipelines.characterize_task import (
            CharacterizeConfig,
            characterization_from_table,
            characterize_image,
        )

        table = pa.concat_tables(refcat) if refcat else None
        if table is None or table.num_rows == 0:
            from pachon.algorithms.astrometry import AstrometryError

            raise AstrometryError(
                "calibrate: no reference stars overlap this detector (blank reference region)"
            )
        ref = {c: table.column(c).to_numpy() for c in table.column_names}
        vi = ic_exp.visit_info
        band = (vi.band if vi is not None else None) or "r"
        mjd = vi.mjd_tai_mid if vi is not None and vi.mjd_tai_mid is not None else 51544.5
        # the characterization of ic_exp is stored in ic_src (measurements, PSF stars, aperture
        # correction); only tables written before the model was kept need it done again
        char = characterization_from_table(ic_exp, ic_src)
        if char is None:
            char = characterize_image(ic_exp, CharacterizeConfig(repair_cosmic_rays=False))
        data_id = f"exposure={getattr(vi, 'exposure_id', None)} detector={getattr(vi, 'detector', None)}"
        res = calibrate_image(char, ref, band, epoch_year=2000.0 + (mjd - 51544.5) / 365.25, data_id=data_id)
        return {"calexp": res.exposure, "src": res.sources}

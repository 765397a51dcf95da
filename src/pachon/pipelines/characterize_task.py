"""Image characterization: background, cosmic rays, bright-source detection, PSF, aperture correction.

:func:`characterize_image` is the algorithm (no I/O); :class:`CharacterizeImageTask` wires it
to the repository: ``post_isr`` in, ``ic_exp`` (background-subtracted, CR-masked, with its
PSF) and ``ic_src`` (the bright sources with their measurements) out.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pachon.algorithms.apcorr import ApertureCorrection, fit_aperture_correction
from pachon.algorithms.background import Background, subtract_background
from pachon.algorithms.cosmic_rays import repair_cosmic_rays
from pachon.algorithms.detection import Detections, detect_sources
from pachon.algorithms.measurement.measure import MeasurementConfig, measure_sources
from pachon.algorithms.psf.fit import PsfFitError, fit_pixel_psf, select_psf_stars
from pachon.core.exposure import Exposure
from pachon.core.psf import GaussianPsf
from pachon.pipe.task import Input, Output, Task

__all__ = ["CharacterizeConfig", "CharacterizeImageTask", "CharacterizeResult", "characterize_image",
           "characterization_from_table", "APCORR_KEY"]

#: ``ic_src`` schema-metadata key of the aperture-correction model (JSON; ``null`` when none).
APCORR_KEY = b"apcorr_model"

_log = logging.getLogger(__name__)


@dataclass
class CharacterizeConfig:
    """Settings of image characterization (pixels unless stated)."""

    mesh_size: int = 64
    mask_grow: int = 8
    threshold: float = 5.0
    psf_sigma_guess: float = 1.7
    psf_size: int = 25
    psf_order: int = 1
    psf_min_snr: float = 30.0
    reserve_fraction: float = 0.1
    read_noise: float = 5.0
    repair_cosmic_rays: bool = True
    apcorr_radius: int = 12
    apcorr_min_snr: float = 100.0
    seed: int = 0


@dataclass
class CharacterizeResult:
    """The characterized exposure and what was learnt on the way.

    ``detections`` and ``background`` are None when the result was read back from the
    ``ic_src`` table (`characterization_from_table`): calibration needs neither.
    """

    exposure: Exposure
    detections: Detections | None
    measurements: dict[str, np.ndarray]
    background: Background | None
    psf_used: np.ndarray
    psf_reserved: np.ndarray
    apcorr: ApertureCorrection | None
    n_cosmic_rays: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _detect(exp: Exposure, sigma: float, cfg: CharacterizeConfig) -> Detections:
    from scipy import ndimage

    bad = exp.mask.any(*[p for p in ("BAD", "NO_DATA") if p in exp.mask.planes])
    det = detect_sources(exp.image, exp.variance, sigma, threshold=cfg.threshold, bad=bad)
    exp.mask.clear("DETECTED")
    # grow by a diamond of mask_grow pixels (a taxicab distance transform: one pass)
    if (det.footprints > 0).any():  # (with no footprint the transform has no origin: -1 everywhere)
        dist = ndimage.distance_transform_cdt(det.footprints == 0, metric="taxicab")
        exp.mask.set("DETECTED", dist <= cfg.mask_grow)
    return det


def _mask_sources(exp: Exposure, cfg: CharacterizeConfig) -> None:
    """DETECTED = matched-filter pixels above threshold, grown (no footprints, peaks or deblending)."""
    from scipy import ndimage

    from pachon.algorithms.detection import significance_image

    above = significance_image(exp.image, exp.variance, cfg.psf_sigma_guess) > cfg.threshold
    known = [p for p in ("BAD", "NO_DATA") if p in exp.mask.planes]
    if known:
        above &= ~exp.mask.any(*known)
    exp.mask.clear("DETECTED")
    if above.any():
        exp.mask.set("DETECTED", ndimage.distance_transform_cdt(~above, metric="taxicab") <= cfg.mask_grow)


def characterize_image(exposure: Exposure, config: CharacterizeConfig | None = None) -> CharacterizeResult:
    """Characterize a post-ISR exposure (a copy is modified and returned).

    Raises
    ------
    pachon.algorithms.psf.fit.PsfFitError
        Too few stars for a PSF model (an empty or starless image).
    """
    cfg = config or CharacterizeConfig()
    exp = exposure.copy()
    if not np.isfinite(exp.image).all():
        bad = ~np.isfinite(exp.image)
        exp.mask.set("NO_DATA", bad)
        exp.image[bad] = 0.0
    if not (exp.variance > 0).any():
        raise PsfFitError("characterize_image: the variance plane is empty; run ISR with variance first")
    # first pass on every other pixel: the second, full-resolution pass removes its residual
    bkg = subtract_background(exp, mesh_size=cfg.mesh_size, subsample=2)
    sky = float(np.median(bkg.values))
    n_cr = 0
    if cfg.repair_cosmic_rays:
        n_cr = repair_cosmic_rays(
            exp, read_noise=cfg.read_noise, sky=sky, psf_fwhm=2.3548 * cfg.psf_sigma_guess
        )
    _mask_sources(exp, cfg)  # the first pass only masks sources for the second background
    bkg2 = subtract_background(exp, mesh_size=cfg.mesh_size, statistic="mean")
    bkg.values = bkg.values + bkg2.values
    det = _detect(exp, cfg.psf_sigma_guess, cfg)
    exp.psf = GaussianPsf(cfg.psf_sigma_guess)
    # PSF candidates: only isolated detections that could reach psf_min_snr are measured here
    rows = np.flatnonzero(
        (det.parent < 0) & (det.n_child == 0) & (det.peak_significance > 0.5 * cfg.psf_min_snr)
    )
    m = measure_sources(exp, _subset(det, rows), MeasurementConfig(aperture_radii=(cfg.apcorr_radius,)))
    snr = m["psf_instFlux"] / m["psf_instFluxErr"]
    flags = m["pixelFlags_edge"] | m["pixelFlags_saturated"] | m["pixelFlags_cr"] | m["centroid_flag"]
    cand = np.zeros(len(det), bool)
    cand[rows] = select_psf_stars(snr, m["ixx"], m["iyy"], ~flags, min_snr=cfg.psf_min_snr)
    rng = np.random.default_rng(cfg.seed)
    reserved = cand & (rng.uniform(size=len(cand)) < cfg.reserve_fraction)
    use = cand & ~reserved
    pos = np.searchsorted(rows, np.flatnonzero(use))
    fit = fit_pixel_psf(
        exp.image, exp.variance, m["x"][pos] - exp.bbox.x0, m["y"][pos] - exp.bbox.y0,
        size=cfg.psf_size, order=cfg.psf_order, bad=exp.mask.any("BAD", "SAT", "CR"),
        xy0=(exp.bbox.x0, exp.bbox.y0),
    )  # fmt: skip
    exp.psf = fit.psf
    used = np.zeros(len(det), bool)
    used[np.flatnonzero(use)[fit.used]] = True
    m = measure_sources(exp, det)
    snr = m["psf_instFlux"] / m["psf_instFluxErr"]
    stars = cand & (snr > cfg.apcorr_min_snr) & ~m[f"ap{cfg.apcorr_radius:02d}_flag"]
    apcorr = None
    if stars.sum() >= 3:
        ap_flux, ap_err = _clean_aperture_flux(exp, det, m, stars, cfg.apcorr_radius)
        apcorr = fit_aperture_correction(
            m["x"][stars], m["y"][stars], m["psf_instFlux"][stars], ap_flux, ap_err
        )
    return CharacterizeResult(exp, det, m, bkg, used, reserved, apcorr, n_cr)


def _subset(det: Detections, rows: np.ndarray) -> Detections:
    """The detection rows ``rows`` (isolated sources: no parent, no children) as a Detections."""
    import dataclasses

    return dataclasses.replace(
        det,
        x=det.x[rows],
        y=det.y[rows],
        peak_significance=det.peak_significance[rows],
        footprint_id=det.footprint_id[rows],
        parent=np.full(len(rows), -1),
        n_child=np.zeros(len(rows), np.int32),
        footprint_area=det.footprint_area[rows],
    )


class CharacterizeImageTask(Task):
    """Background, cosmic rays, PSF and aperture correction of one post-ISR detector image."""

    dimensions = ("instrument", "exposure", "detector")
    inputs = {"post_isr": Input("post_isr", ("instrument", "exposure", "detector"), "Exposure")}
    outputs = {
        "ic_exp": Output("ic_exp", ("instrument", "exposure", "detector"), "Exposure"),
        "ic_src": Output("ic_src", ("instrument", "exposure", "detector"), "ArrowTable"),
    }
    config_class = CharacterizeConfig

    def run(self, post_isr: Exposure) -> dict[str, Any]:  # noqa: D102
        import pyarrow as pa

        res = characterize_image(post_isr, self.config)
        m = res.measurements
        keep = {k: v for k, v in m.items() if np.ndim(v) == 1}
        keep["calib_psf_used"] = res.psf_used
        keep["calib_psf_reserved"] = res.psf_reserved
        table = pa.table(keep)
        meta = {b"apcorr": str(res.apcorr.coefficients[0] if res.apcorr else 1.0).encode(),
                APCORR_KEY: json.dumps(res.apcorr.to_dict() if res.apcorr else None).encode()}
        return {"ic_exp": res.exposure, "ic_src": table.replace_schema_metadata(meta)}


def characterization_from_table(exposure: Exposure, table: Any) -> CharacterizeResult | None:
    """The characterization stored as ``ic_exp`` + ``ic_src``, or None for a table without the model.

    Calibration needs the measurements, the PSF-star flags and the aperture correction, all
    kept by `CharacterizeImageTask` (tables written before the model was stored give None).
    """
    meta = table.schema.metadata or {}
    if APCORR_KEY not in meta:
        return None
    model = json.loads(meta[APCORR_KEY])
    cols = {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}
    used = cols.pop("calib_psf_used").astype(bool)
    reserved = cols.pop("calib_psf_reserved").astype(bool)
    apcorr = ApertureCorrection.from_dict(model) if model is not None else None
    return CharacterizeResult(exposure, None, cols, None, used, reserved, apcorr)


def _clean_aperture_flux(
    exp: Exposure, det: Detections, m: dict[str, np.ndarray], rows: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Aperture fluxes of ``rows`` with every other source's PSF model subtracted first.

    In crowded fields neighbours' light inside the calibration aperture would bias the
    aperture correction high; removing their PSF models leaves only the star's own light.
    """
    import sep

    from pachon.algorithms.measurement.stamps import psf_stamps, render_psf_models

    psf = exp.psf
    half = psf.kernel_image(*exp.bbox.center).shape[0] // 2
    leaf = (det.n_child == 0) & np.isfinite(m["psf_instFlux"])
    flux = np.clip(np.where(leaf, m["psf_instFlux"], 0.0), 0.0, None)
    x0, y0 = exp.bbox.x0, exp.bbox.y0
    models = render_psf_models(exp.image.shape, psf, m["x"][leaf], m["y"][leaf], flux[leaf], half, (x0, y0))
    bad = exp.mask.any(*[p for p in ("BAD", "NO_DATA", "SAT") if p in exp.mask.planes])
    clean = np.ascontiguousarray(exp.image - models, dtype=np.float64)
    var = np.ascontiguousarray(np.where(bad, 0.0, exp.variance), dtype=np.float64)
    mask = np.ascontiguousarray(bad, dtype=np.uint8)
    x, y = m["x"][rows], m["y"][rows]
    resid, err, _ = sep.sum_circle(clean, x - x0, y - y0, float(radius), var=var, mask=mask, subpix=0)
    # each star's own model light inside the aperture, from its unit model laid out in a strip
    unit = psf_stamps(psf, x, y, half)
    n, size = len(x), 2 * half + 1
    strip = np.ascontiguousarray(unit.transpose(1, 0, 2).reshape(size, n * size))
    sx = np.arange(n) * size + half + (x - np.floor(x + 0.5))
    sy = half + (y - np.floor(y + 0.5))
    enclosed, _, _ = sep.sum_circle(strip, sx, sy, float(min(radius, half)), subpix=0)
    own_ap = flux[rows] * enclosed
    return resid + own_ap, err

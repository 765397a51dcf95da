"""Measure DIA sources and fill the Rubin ``DiaSource`` table (APDB schema).

For each detection (:func:`pachon.algorithms.diffim.detect.detect_dia_sources`):

* centroid: sub-pixel peak of the matched-filter score (the maximum-likelihood position for a
  point source), error ``sqrt(2) sigma_PSF / snr``;
* ``psfFlux``: linear PSF fit on the difference at the centroid; ``psfChi2``, ``psfNdata``;
* ``apFlux``: sum within ``aperture_fwhm`` PSF FWHMs of the centroid;
* ``scienceFlux`` / ``templateFlux``: forced PSF fits at the same position on the science
  exposure and on the warped template, each with its own PSF;
* adaptive moments ``ixx, iyy, ixy`` and those of the PSF; ``extendedness`` (trace ratio);
* dipole fit on sources with both a positive and a negative lobe (:mod:`.dipole`);
* trailed-source fit on elongated positive sources (:mod:`.trail`);
* pixel flags from the mask planes in the stamp / at the centre;
* ``reliability``: P(real) from :mod:`.reliability` (logistic regression on these columns).

Units follow the schema: fluxes in nJy when the difference has a ``PhotoCalib`` (image counts
otherwise), lengths in arcsec, moments in arcsec^2, angles as sky bearings (degrees east of
north; trails modulo 180) — all computed in pixels and converted with the local WCS.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pachon.algorithms.dia import stamps as st
from pachon.algorithms.dia.dipole import fit_dipole
from pachon.algorithms.dia.reliability import score_reliability
from pachon.algorithms.dia.trail import fit_trail
from pachon.algorithms.diffim.mismatch import HEADER_KEY as MISMATCH_KEY
from pachon.core.exposure import Exposure

__all__ = ["DiaMeasureConfig", "measure_dia_sources", "pixel_angle_to_bearing"]

_log = logging.getLogger(__name__)

_FLAG_PLANES = {
    "bad": "BAD",
    "cr": "CR",
    "edge": "EDGE",
    "nodata": "NO_DATA",
    "interpolated": "INTRP",
    "saturated": "SAT",
    "suspect": "SUSPECT",
    "streak": "STREAK",
}


@dataclass
class DiaMeasureConfig:
    """Settings of :func:`measure_dia_sources`.

    Attributes
    ----------
    aperture_fwhm
        Aperture radius in units of the difference PSF FWHM.
    trail_min_elongation
        Fit a trail when the PSF-deconvolved major-axis variance exceeds this (pixels^2) ...
    trail_max_half
        ... using a stamp of at most this half width.
    extended_ratio
        ``extendedness`` is 1 when the moment trace exceeds the PSF's by this factor.
    reliability
        Fill ``reliability`` with the packaged real/bogus classifier
        (:mod:`pachon.algorithms.dia.reliability`); False leaves it null.
    """

    aperture_fwhm: float = 1.5
    trail_min_elongation: float = 4.0
    trail_max_half: int = 60
    extended_ratio: float = 1.3
    reliability: bool = True


def pixel_angle_to_bearing(
    exposure: Exposure, x: np.ndarray, y: np.ndarray, angle_deg: np.ndarray
) -> np.ndarray:
    """Sky bearing (degrees east of north) of pixel-frame directions ``angle_deg`` (from +x) at ``(x, y)``."""
    a = np.radians(np.nan_to_num(angle_deg))
    ra0, dec0 = exposure.pixel_to_sky(x, y)
    ra1, dec1 = exposure.pixel_to_sky(x + 0.5 * np.cos(a), y + 0.5 * np.sin(a))
    ra_m, dec_m = exposure.pixel_to_sky(x - 0.5 * np.cos(a), y - 0.5 * np.sin(a))
    dra = ((ra1 - ra_m + 180.0) % 360.0 - 180.0) * np.cos(np.radians(dec0))
    out = np.degrees(np.arctan2(dra, dec1 - dec_m)) % 360.0
    return np.where(np.isfinite(angle_deg), out, np.nan)


def _midpoint(exposure: Exposure) -> float:
    """Exposure mid-time (MJD TAI) from its VisitInfo; NaN when unknown."""
    vi = exposure.visit_info
    return float(vi.mjd_tai_mid) if vi is not None and vi.mjd_tai_mid is not None else float("nan")


def _now_mjd() -> float:
    import time

    return 40587.0 + time.time() / 86400.0 + 37.0 / 86400.0  # UTC + (TAI - UTC)


def _psf_half(kernel: np.ndarray) -> int:
    return kernel.shape[0] // 2


def _forced(
    exposure: Exposure | None, x: np.ndarray, y: np.ndarray, half: int
) -> tuple[np.ndarray, np.ndarray]:
    n = len(x)
    if exposure is None or exposure.psf is None:
        return np.full(n, np.nan), np.full(n, np.nan)
    ix, iy = np.rint(x).astype(int), np.rint(y).astype(int)
    img = exposure.image.astype(float)
    b = exposure.bbox
    kernel = exposure.psf.kernel_image(b.x0 + 0.5 * b.width, b.y0 + 0.5 * b.height)
    stamps = st.gather(img, ix - b.x0, iy - b.y0, half)
    var = st.gather(exposure.variance.astype(float), ix - b.x0, iy - b.y0, half)
    psfs = st.shifted_psfs(kernel, x - ix, y - iy, half)
    f, e, _, _ = st.psf_fit(stamps, var, psfs)
    return f, e


def measure_dia_sources(
    difference: Exposure,
    score: np.ndarray,
    detections: Any,
    *,
    science: Exposure | None = None,
    template: Exposure | None = None,
    config: DiaMeasureConfig | None = None,
    visit: int = 0,
    detector: int = 0,
    band: str | None = None,
    id_offset: int = 0,
) -> Any:
    """Measure every detection and return a ``pyarrow.Table`` with the APDB ``DiaSource`` schema.

    Parameters
    ----------
    difference, score
        Difference exposure and its matched-filter score (from ``subtract_images``).
    detections
        Output of ``detect_dia_sources``.
    science, template
        For the forced ``scienceFlux`` / ``templateFlux`` (template on the science grid).
    config
        Measurement settings.
    visit, detector, band, id_offset
        Identifiers written to the table (``diaSourceId = id_offset + row``).
    """
    import pyarrow as pa

    from pachon.core.schemas import arrow_schema

    config = config or DiaMeasureConfig()
    n = len(detections)
    b = difference.bbox
    ox, oy = b.x0, b.y0
    kernel = difference.psf.kernel_image(ox + 0.5 * b.width, oy + 0.5 * b.height)
    sig = difference.psf.sigma(0.0, 0.0)
    half = _psf_half(kernel)
    img = difference.image.astype(float)
    var = difference.variance.astype(float)
    ax, ay = np.rint(detections.x - ox).astype(int), np.rint(detections.y - oy).astype(int)
    cx, cy = st.peak_centroid(score, ax, ay)
    dip_cand = detections.is_dipole_candidate
    cx, cy = np.where(dip_cand, detections.x - ox, cx), np.where(dip_cand, detections.y - oy, cy)
    ix, iy = np.rint(cx).astype(int), np.rint(cy).astype(int)
    stamps = st.gather(img, ix, iy, half)
    vstamps = st.gather(var, ix, iy, half)
    psfs = st.shifted_psfs(kernel, cx - ix, cy - iy, half)
    flux, flux_err, chi2, ndata = st.psf_fit(stamps, vstamps, psfs)
    snr = np.abs(flux) / flux_err
    pos_err = math.sqrt(2.0) * sig / np.maximum(snr, 1e-3)
    radius = config.aperture_fwhm * 2.3548 * sig
    ap_half = int(math.ceil(radius))
    ap, ap_err, trunc = st.aperture_flux(
        st.gather(img, ix, iy, ap_half), st.gather(var, ix, iy, ap_half), radius
    )
    mhalf = max(half, int(math.ceil(4 * sig)))
    sign = np.where(detections.is_negative, -1.0, 1.0)[:, None, None]
    mom_stamps = sign * st.gather(img, ix, iy, mhalf, fill=0.0)
    ixx, iyy, ixy, mom_ok = st.adaptive_moments(mom_stamps, sig)
    pxx, pyy, pxy = st.kernel_moments(kernel)
    extended = ((ixx + iyy) > config.extended_ratio * (pxx + pyy)).astype(float)
    sci_f, sci_e = _forced(science, cx + ox, cy + oy, half)
    tpl_f, tpl_e = _forced(template, cx + ox, cy + oy, half)
    calib = difference.photo_calib.calibration_mean if difference.photo_calib is not None else 1.0
    tpl_calib = (template.photo_calib.calibration_mean
                 if template is not None and template.photo_calib is not None else calib)
    # PSF-matching residual of the static flux (kernel-star estimate from subtract_images),
    # in quadrature: a systematic of bright objects that pixel noise does not describe.  `snr`
    # stays |flux| / pixel-noise error: association recovers the common (mismatch) part of
    # psfFluxErr from it for the DiaObject mean error (pachon.algorithms.association)
    mismatch = float(difference.metadata.get(MISMATCH_KEY, 0.0) or 0.0)
    if mismatch > 0:
        static = np.abs(np.nan_to_num(tpl_f)) * (tpl_calib / calib)
        flux_err = np.hypot(flux_err, mismatch * static)
    cols: dict[str, Any] = {}
    # dipoles
    dip = {k: np.full(n, np.nan) for k in ("mean", "mean_err", "diff", "diff_err", "length", "angle", "chi2")}
    dip_n = np.zeros(n, np.int32)
    is_dip = np.zeros(n, bool)
    for i in np.flatnonzero(dip_cand):
        sep = float(np.hypot(*(detections.pos_xy[i] - detections.neg_xy[i])))
        dh = half + int(math.ceil(sep / 2)) + 1
        fit = fit_dipole(
            st.gather(img, ix[i : i + 1], iy[i : i + 1], dh)[0],
            st.gather(var, ix[i : i + 1], iy[i : i + 1], dh)[0],
            kernel,
            (int(ix[i]) + ox, int(iy[i]) + oy),
            tuple(detections.pos_xy[i]),
            tuple(detections.neg_xy[i]),
        )
        dip["mean"][i], dip["diff"][i] = fit.mean_flux, fit.flux_diff
        dip["mean_err"][i] = 0.5 * math.hypot(fit.pos_flux_err, fit.neg_flux_err)
        dip["diff_err"][i] = math.hypot(fit.pos_flux_err, fit.neg_flux_err)
        dip["length"][i], dip["angle"][i], dip["chi2"][i] = fit.length, fit.angle, fit.chi2
        dip_n[i] = fit.n_data
        is_dip[i] = fit.is_dipole()
    # trails: elongated positive sources
    tr = {
        k: np.full(n, np.nan)
        for k in (
            "x",
            "y",
            "length",
            "angle",
            "flux",
            "x_err",
            "y_err",
            "length_err",
            "angle_err",
            "flux_err",
            "chi2",
        )
    }
    tr_n = np.zeros(n, np.int32)
    tr_edge = np.zeros(n, bool)
    dxx, dyy, dxy = ixx - pxx, iyy - pyy, ixy - pxy
    major = 0.5 * (dxx + dyy) + np.sqrt(0.25 * (dxx - dyy) ** 2 + dxy**2)
    fat = (major > config.trail_min_elongation) | (detections.bbox_size > 4 * 2.3548 * sig)
    for i in np.flatnonzero(fat & ~detections.is_negative & ~dip_cand):
        length0 = math.sqrt(12.0 * max(major[i], 1.0))
        length0 = max(length0, float(detections.bbox_size[i]) - 2 * 2.3548 * sig)
        angle0 = 0.5 * math.degrees(math.atan2(2 * dxy[i], dxx[i] - dyy[i]))
        th = int(min(config.trail_max_half, math.ceil(0.6 * length0 + 3 * sig + 2)))
        s_i = st.gather(img, ix[i : i + 1], iy[i : i + 1], th)[0]
        tr_edge[i] = bool(np.isnan(s_i).any())
        fit = fit_trail(
            s_i,
            st.gather(var, ix[i : i + 1], iy[i : i + 1], th)[0],
            kernel,
            (int(ix[i]) + ox, int(iy[i]) + oy),
            length0,
            angle0,
        )
        for k in tr:
            tr[k][i] = getattr(fit, k)
        tr_n[i] = fit.n_data
    # pixel flags
    mask = difference.mask
    flags: dict[str, np.ndarray] = {}
    for key, plane in _FLAG_PLANES.items():
        if plane not in mask.planes:
            flags[f"pixelFlags_{key}"] = np.zeros(n, bool)
            continue
        pl = mask.get(plane).astype(float)
        flags[f"pixelFlags_{key}"] = st.gather(pl, ix, iy, half, fill=1.0).max(axis=(1, 2)) > 0
        if key not in ("edge", "bad"):
            flags[f"pixelFlags_{key}Center"] = st.gather(pl, ix, iy, 1, fill=1.0).max(axis=(1, 2)) > 0
    off = ~((ix >= 0) & (ix < b.width) & (iy >= 0) & (iy < b.height))
    if difference.wcs is not None:
        ra, dec = difference.pixel_to_sky(cx + ox, cy + oy)
        tra, tdec = difference.pixel_to_sky(np.nan_to_num(tr["x"]), np.nan_to_num(tr["y"]))
        scale = float(np.sqrt(abs(np.linalg.det(difference.wcs.pixel_scale_matrix))))
        tr["angle"] = pixel_angle_to_bearing(difference, cx + ox, cy + oy, tr["angle"]) % 180.0
        dip["angle"] = pixel_angle_to_bearing(difference, cx + ox, cy + oy, dip["angle"])
    else:  # no WCS: pixel units and angles from +x
        ra = dec = tra = tdec = np.full(n, np.nan)
        scale = 1.0 / 3600.0
    arcsec = scale * 3600.0
    has_tr = np.isfinite(tr["length"])
    cols.update(
        {
            "diaSourceId": id_offset + np.arange(n, dtype=np.int64),
            "visit": np.full(n, visit, np.int64),
            "detector": np.full(n, detector, np.int16),
            "midpointMjdTai": np.full(n, _midpoint(difference)),
            "timeProcessedMjdTai": np.full(n, _now_mjd()),
            "ra": ra,
            "dec": dec,
            "raErr": pos_err * scale,
            "decErr": pos_err * scale,
            "ra_dec_Cov": np.zeros(n),
            "x": cx + ox,
            "y": cy + oy,
            "xErr": pos_err,
            "yErr": pos_err,
            "centroid_flag": off,
            "apFlux": ap * calib,
            "apFluxErr": ap_err * calib,
            "apFlux_flag": ~np.isfinite(ap),
            "apFlux_flag_apertureTruncated": trunc,
            "isNegative": detections.is_negative,
            "snr": snr,
            "psfFlux": flux * calib,
            "psfFluxErr": flux_err * calib,
            "psfChi2": chi2,
            "psfNdata": ndata.astype(np.int32),
            "psfFlux_flag": ~np.isfinite(flux),
            "psfFlux_flag_edge": flags["pixelFlags_edge"] | flags["pixelFlags_nodata"],
            "psfFlux_flag_noGoodPixels": ndata == 0,
            "trailFlux": tr["flux"] * calib,
            "trailFluxErr": tr["flux_err"] * calib,
            "trailRa": np.where(has_tr, tra, np.nan),
            "trailDec": np.where(has_tr, tdec, np.nan),
            "trailRaErr": tr["x_err"] * scale,
            "trailDecErr": tr["y_err"] * scale,
            "trailLength": tr["length"] * arcsec,
            "trailLengthErr": tr["length_err"] * arcsec,
            "trailAngle": tr["angle"],
            "trailAngleErr": tr["angle_err"],
            "trailChi2": tr["chi2"],
            "trailNdata": tr_n,
            "trail_flag_edge": tr_edge,
            "trail_flag": has_tr & ~np.isfinite(tr["length_err"]),
            "dipoleMeanFlux": dip["mean"] * calib,
            "dipoleMeanFluxErr": dip["mean_err"] * calib,
            "dipoleFluxDiff": dip["diff"] * calib,
            "dipoleFluxDiffErr": dip["diff_err"] * calib,
            "dipoleLength": dip["length"] * arcsec,
            "dipoleAngle": dip["angle"],
            "dipoleChi2": dip["chi2"],
            "dipoleNdata": dip_n,
            "isDipole": is_dip,
            "dipoleFitAttempted": dip_cand,
            "scienceFlux": sci_f * calib,
            "scienceFluxErr": sci_e * calib,
            "forced_PsfFlux_flag": ~np.isfinite(sci_f),
            "templateFlux": tpl_f * tpl_calib,
            "templateFluxErr": tpl_e * tpl_calib,
            "ixx": ixx * arcsec**2,
            "iyy": iyy * arcsec**2,
            "ixy": ixy * arcsec**2,
            "ixxPSF": np.full(n, pxx * arcsec**2),
            "iyyPSF": np.full(n, pyy * arcsec**2),
            "ixyPSF": np.full(n, pxy * arcsec**2),
            "shape_flag": ~mom_ok,
            "extendedness": extended,
            "band": [band] * n if band is not None else None,
            "bboxSize": detections.bbox_size.astype(np.int32),
            **flags,
        }
    )
    cols["reliability"] = score_reliability(cols) if config.reliability else None
    schema = arrow_schema("apdb", "DiaSource")
    arrays = []
    for field in schema:
        value = cols.get(field.name)
        arrays.append(
            pa.nulls(n, field.type) if value is None else pa.array(value, field.type, from_pandas=True)
        )
    return pa.Table.from_arrays(arrays, schema=schema)

"""Single-frame measurement of detected sources: centroids, shapes, fluxes, flags.

:func:`measure_sources` takes a background-subtracted exposure with a PSF and the output of
:func:`pachon.algorithms.detection.detect_sources`, and returns columns (instrumental units,
Rubin ``Source`` names where one exists) for every detection row.  Children of blends are
measured on the image with their siblings' PSF models subtracted (``deblendedAsPsf``); their
PSF fluxes come from a few Jacobi sweeps of the simultaneous PSF fit.  Aperture and Kron sums
use SEP (exact circle/ellipse overlap, C speed); centroids, adaptive moments and PSF fluxes are
our own, vectorized over stamp cubes.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pachon.algorithms.measurement.apertures import RowCumsum, row_circle_sums
from pachon.algorithms.measurement.shapes import adaptive_moments, windowed_centroid
from pachon.algorithms.measurement.stamps import extract_stamps, psf_stamps
from pachon.core.errors import ConfigError

if TYPE_CHECKING:
    from pachon.algorithms.detection import Detections
    from pachon.core.exposure import Exposure

__all__ = ["MeasurementConfig", "measure_sources", "psf_fit_flux"]

_log = logging.getLogger(__name__)


@dataclass
class MeasurementConfig:
    """Measurement settings (radii in pixels)."""

    aperture_radii: tuple[int, ...] = (3, 6, 9, 12, 17, 25, 35, 50, 70)
    kron_factor: float = 2.5
    min_kron_radius: float = 3.5
    jacobi_sweeps: int = 3
    #: apertures up to this radius use SEP's exact pixel overlap; larger ones row sums
    exact_aperture_max: float = 12.0
    bad_planes: tuple[str, ...] = ("BAD", "NO_DATA", "SAT")
    flag_planes: dict[str, str] = field(
        default_factory=lambda: {
            "bad": "BAD",
            "cr": "CR",
            "edge": "EDGE",
            "interpolated": "INTRP",
            "nodata": "NO_DATA",
            "saturated": "SAT",
            "suspect": "SUSPECT",
        }
    )


def psf_fit_flux(
    data: np.ndarray, var: np.ndarray, model: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear PSF flux of stamp cubes with uniform weights: ``sum(P D) / sum(P²)``.

    Uniform weights keep the estimate unbiased when the variance includes the source's own
    photon noise; the error propagates the per-pixel variance exactly.  Returns flux, error and
    the effective area ``1 / sum(P²)``.
    """
    p = np.where(valid, model, 0.0)
    pp = (p * p).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        flux = (p * np.where(valid, data, 0.0)).sum(axis=(1, 2)) / pp
        err = np.sqrt((p * p * np.where(valid, var, 0.0)).sum(axis=(1, 2))) / pp
    return flux, err, 1.0 / pp


def _sep_ready(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def measure_sources(
    exposure: Exposure, detections: Detections, config: MeasurementConfig | None = None
) -> dict[str, np.ndarray]:
    """Measure every detection row of ``detections`` on ``exposure`` (needs a PSF).

    Returns
    -------
    dict
        Columns of length ``len(detections)``: ``x, y, xErr, yErr`` (parent pixels),
        ``psf_instFlux(Err)``, ``psfFlux_area``, ``ap{NN}_instFlux(Err)`` and ``_flag``,
        ``kron_instFlux(Err)``, ``kron_radius``, ``gaussian_instFlux(Err)``, ``ixx, iyy, ixy``,
        ``ixxPSF, iyyPSF, ixyPSF``, ``sizeExtendedness``, ``centroid_flag``, ``psfFlux_flag``,
        ``pixelFlags_*``, ``deblend_*``, ``parentSourceId`` (row index or -1).
    """
    import sep

    cfg = config or MeasurementConfig()
    if exposure.psf is None:
        raise ConfigError("measure_sources: the exposure has no PSF; fit one before measuring")
    n = len(detections)
    x0, y0 = exposure.bbox.x0, exposure.bbox.y0
    image = exposure.image.astype(np.float64)
    var = exposure.variance.astype(np.float64)
    known = [p for p in cfg.bad_planes if p in exposure.mask.planes]
    bad = exposure.mask.any(*known) if known else np.zeros(image.shape, bool)
    psf = exposure.psf
    cx, cy = x0 + image.shape[1] / 2.0, y0 + image.shape[0] / 2.0
    sigma = float(psf.sigma(cx, cy))
    half = max(5, int(math.ceil(4.0 * sigma)))
    ph = max(half, psf.kernel_image(cx, cy).shape[0] // 2)
    ix = np.rint(detections.x).astype(int)
    iy = np.rint(detections.y).astype(int)
    child = detections.parent >= 0
    cols: dict[str, np.ndarray] = {}

    def cubes(img: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d, inside = extract_stamps(img, ix, iy, h)
        v, _ = extract_stamps(var, ix, iy, h)
        b, _ = extract_stamps(bad, ix, iy, h)
        return d, v, inside & ~b.astype(bool) & (v > 0)

    # 1. first centroids and PSF fluxes on the raw image
    d, v, ok = cubes(image, half)
    dx, dy, cen_ok = windowed_centroid(d, sigma, valid=ok)
    # recentre the stamps on the pixel nearest the centroid (PSF images are centred there)
    ix, iy = (
        ix + np.where(cen_ok, np.rint(dx), 0).astype(int),
        iy + np.where(cen_ok, np.rint(dy), 0).astype(int),
    )
    d, v, ok = cubes(image, half)
    dx, dy, cen_ok2 = windowed_centroid(d, sigma, valid=ok)
    cen_ok &= cen_ok2
    ix, iy = (
        ix + np.where(cen_ok, np.rint(dx), 0).astype(int),
        iy + np.where(cen_ok, np.rint(dy), 0).astype(int),
    )
    dx, dy = np.where(cen_ok, dx - np.rint(dx), dx), np.where(cen_ok, dy - np.rint(dy), dy)
    d, v, ok = cubes(image, half)
    px, py = ix + dx + x0, iy + dy + y0
    dp, vp, okp = cubes(image, ph)
    model = psf_stamps(psf, px, py, ph)
    flux, _, _ = psf_fit_flux(dp, vp, model, okp)
    # 2. Jacobi sweeps: children refit with their siblings' models subtracted (sums over the
    # union of the children's stamp pixels only, by bincount: no full-image passes)
    neighbours = None
    if child.any():
        kids = np.flatnonzero(child)
        ry = iy[kids, None, None] + np.arange(-ph, ph + 1)[None, :, None]
        rx = ix[kids, None, None] + np.arange(-ph, ph + 1)[None, None, :]
        on = (ry >= 0) & (ry < image.shape[0]) & (rx >= 0) & (rx < image.shape[1])
        flat = np.clip(ry, 0, image.shape[0] - 1) * image.shape[1] + np.clip(rx, 0, image.shape[1] - 1)
        upix, inverse = np.unique(flat, return_inverse=True)
        inverse = inverse.reshape(flat.shape)
        for _ in range(cfg.jacobi_sweeps):
            own = np.where(on, np.clip(flux[kids], 0, None)[:, None, None] * model[kids], 0.0)
            total = np.bincount(inverse[on], weights=own[on], minlength=len(upix))
            fk, _, _ = psf_fit_flux(dp[kids] - total[inverse] + own, vp[kids], model[kids], okp[kids])
            flux[kids] = fk
        own = np.where(on, np.clip(flux[kids], 0, None)[:, None, None] * model[kids], 0.0)
        neighbours = np.zeros(image.size)
        neighbours[upix] = np.bincount(inverse[on], weights=own[on], minlength=len(upix))
        neighbours = neighbours.reshape(image.shape)
        # centroids again on the deblended stamps
        dk, _ = extract_stamps(neighbours, ix[kids], iy[kids], half)
        ownh = (
            model[kids][:, ph - half : ph + half + 1, ph - half : ph + half + 1]
            * np.clip(flux[kids], 0, None)[:, None, None]
        )
        d[kids] = d[kids] - dk + ownh
        dxk, dyk, okk = windowed_centroid(d[kids], sigma, valid=ok[kids])
        dx[kids], dy[kids], cen_ok[kids] = dxk, dyk, okk
        px, py = ix + dx + x0, iy + dy + y0
        model = psf_stamps(psf, px, py, ph)
        nbk, _ = extract_stamps(neighbours, ix[kids], iy[kids], ph)
        dp[kids] = dp[kids] - nbk + model[kids] * np.clip(flux[kids], 0, None)[:, None, None]
    pf, pfe, area = psf_fit_flux(dp, vp, model, okp)
    cols["x"], cols["y"] = px, py
    # centroid errors (SExtractor's ERRX2WIN form)
    ox = np.arange(-half, half + 1, dtype=float)
    rx = ox[None, None, :] - dx[:, None, None]
    ry = ox[None, :, None] - dy[:, None, None]
    w = np.exp(-0.5 * (rx**2 + ry**2) / sigma**2) * ok
    wi = (w * d).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        cols["xErr"] = (2.0 * np.sqrt((w * w * v * rx * rx).sum(axis=(1, 2))) / wi).astype(np.float32)
        cols["yErr"] = (2.0 * np.sqrt((w * w * v * ry * ry).sum(axis=(1, 2))) / wi).astype(np.float32)
    cols["psf_instFlux"], cols["psf_instFluxErr"], cols["psfFlux_area"] = pf, pfe, area.astype(np.float32)
    # 3. adaptive moments of sources and of the PSF at their positions
    ixx, iyy, ixy, mom_ok = adaptive_moments(d, dx, dy, sigma, valid=ok)
    psf_cube = model[:, ph - half : ph + half + 1, ph - half : ph + half + 1]
    pxx, pyy, pxy, _ = adaptive_moments(psf_cube, dx, dy, sigma)
    cols.update(ixx=ixx, iyy=iyy, ixy=ixy, ixxPSF=pxx, iyyPSF=pyy, ixyPSF=pxy)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (ixx + iyy) / (pxx + pyy)
        snr = pf / pfe
    cols["sizeExtendedness"] = np.where(
        mom_ok, np.clip((ratio - 1.0) * np.clip(snr, 0, None) / 10.0, 0, 1), np.nan
    )
    # Gaussian flux with the adaptive weight
    det_m = np.where(mom_ok, ixx * iyy - ixy**2, sigma**4)
    a_, b_, c_ = (
        np.where(mom_ok, iyy, sigma**2) / det_m,
        -np.where(mom_ok, ixy, 0) / det_m,
        np.where(mom_ok, ixx, sigma**2) / det_m,
    )
    gw = np.exp(
        -0.5 * (a_[:, None, None] * rx**2 + 2 * b_[:, None, None] * rx * ry + c_[:, None, None] * ry**2)
    )
    gw = gw * ok
    cols["gaussian_instFlux"] = 2.0 * (gw * d).sum(axis=(1, 2))
    cols["gaussian_instFluxErr"] = 2.0 * np.sqrt((gw * gw * v).sum(axis=(1, 2)))
    # 4. apertures: SEP's exact overlap for small radii, row cumulative sums for large ones;
    # children get their own PSF model's share in place of the blend
    sub = _sep_ready(image if neighbours is None else image - neighbours)
    sep_var = _sep_ready(np.where(bad, 0.0, var))
    mask8 = np.ascontiguousarray(bad, dtype=np.uint8)
    ax, ay = px - x0, py - y0
    kernel = psf.kernel_image(cx, cy)
    kh = kernel.shape[0] // 2
    cums = None
    for r in cfg.aperture_radii:
        if r <= cfg.exact_aperture_max:
            s, e, fl = sep.sum_circle(sub, ax, ay, float(r), var=sep_var, mask=mask8, subpix=0)
            trunc = (fl & 0x10) != 0
        else:
            if cums is None:
                cums = RowCumsum(np.where(bad, 0.0, sub), sep_var)
            sums = row_circle_sums(cums, ax, ay, r)
            s, e = sums[:, 0], np.sqrt(np.clip(sums[:, 1], 0, None))
            trunc = np.zeros(n, bool)
        ee = sep.sum_circle(
            _sep_ready(kernel), np.array([float(kh)]), np.array([float(kh)]), float(r), subpix=0
        )[0][0]
        s = np.where(child, s + np.clip(flux, 0, None) * ee, s)
        name = f"ap{r:02d}"
        cols[f"{name}_instFlux"], cols[f"{name}_instFluxErr"] = s, e
        edge = (ax - r < 0) | (ay - r < 0) | (ax + r > image.shape[1] - 1) | (ay + r > image.shape[0] - 1)
        cols[f"{name}_flag"] = edge | trunc | ~np.isfinite(s)
    # 5. Kron radius and flux from the adaptive-moment ellipse
    lam1 = 0.5 * (ixx + iyy) + np.sqrt(0.25 * (ixx - iyy) ** 2 + ixy**2)
    lam2 = 0.5 * (ixx + iyy) - np.sqrt(0.25 * (ixx - iyy) ** 2 + ixy**2)
    a = np.sqrt(np.clip(np.where(mom_ok, lam1, sigma**2), 0.25, None))
    b = np.sqrt(np.clip(np.where(mom_ok, lam2, sigma**2), 0.25, None))
    theta = np.clip(
        0.5 * np.arctan2(2 * np.where(mom_ok, ixy, 0.0), np.where(mom_ok, ixx - iyy, 0.0)),
        -np.pi / 2,
        np.pi / 2,
    )
    kr, _ = sep.kron_radius(sub, ax, ay, a, b, theta, 6.0, mask=mask8)
    kr = np.where(np.isfinite(kr) & (kr > 0), kr, cfg.min_kron_radius)
    rk = np.maximum(cfg.kron_factor * kr, cfg.min_kron_radius)
    kf, kfe, _ = sep.sum_ellipse(sub, ax, ay, a, b, theta, rk, var=sep_var, mask=mask8, subpix=1)
    cols["kron_instFlux"], cols["kron_instFluxErr"], cols["kron_radius"] = kf, kfe, kr * np.sqrt(a * b)
    # 6. flags
    cols["centroid_flag"] = ~cen_ok
    cols["psfFlux_flag"] = ~np.isfinite(pf) | (okp.sum(axis=(1, 2)) < 0.5 * okp.shape[1] ** 2)
    cols["psfFlux_flag_edge"] = (
        (ix - ph < 0) | (iy - ph < 0) | (ix + ph > image.shape[1] - 1) | (iy + ph > image.shape[0] - 1)
    )
    inner = max(1, int(round(2 * sigma)))
    # stamps of the packed mask once, then one bit per plane (no full-image pass per plane)
    mask_cube, _ = extract_stamps(exposure.mask.array, ix, iy, inner)
    for key, plane in cfg.flag_planes.items():
        if plane not in exposure.mask.planes:
            cols[f"pixelFlags_{key}"] = np.zeros(n, bool)
            continue
        m = (mask_cube & np.uint32(exposure.mask.bitmask(plane))) != 0
        cols[f"pixelFlags_{key}"] = m.any(axis=(1, 2))
        cols[f"pixelFlags_{key}Center"] = m[:, inner - 1 : inner + 2, inner - 1 : inner + 2].any(axis=(1, 2))
    cols["pixelFlags_edge"] = cols["pixelFlags_edge"] | cols["psfFlux_flag_edge"]
    cols["parentSourceId"] = detections.parent.copy()
    cols["deblend_nChild"] = detections.n_child.astype(np.int32)
    cols["deblend_deblendedAsPsf"] = child
    cols["footprintArea_value"] = detections.footprint_area.astype(np.int32)
    return cols

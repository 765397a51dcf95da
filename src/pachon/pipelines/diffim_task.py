"""Difference imaging of one calexp against the template patches overlapping it.

:class:`DiffimTask` runs per ``(instrument, exposure, detector)``.  Templates are found by a
*region* prerequisite (every ``template_coadd`` whose patch region overlaps the exposure's
region; when the templates are made in the same pipeline, every patch of the exposure's band
is offered instead, the framework matching prerequisites made upstream by shared data-ID values
only).  :func:`warp_template` keeps the patches of the calexp's band (header ``BAND``),
stitches the patches of each tract (one pixel grid) over the detector footprint, warps that
mosaic onto the detector with a Lanczos kernel, and stitches tracts, the best-covering first;
its PSF is that of the best-covering patch at the detector centre.

Outputs: ``difference_exp`` (decorrelated difference, white-noise variance, its own PSF) and
``template_detector`` (the warped template, for forced ``templateFlux`` in the DIA task).

Bad input, per data ID: no template overlapping the exposure region makes the quantum fail
with a record naming the data ID (``missing="fail"``); templates that overlap the region but
not the detector pixels, or a band without template, give ``NoWorkFound`` (``no_work``); too
few kernel stars fall back to a kernel fitted on the PSF models (logged; see
:mod:`pachon.algorithms.diffim.subtract`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pachon.algorithms.diffim.subtract import DiffimConfig, subtract_images
from pachon.core.errors import ConfigError, NoWorkFound
from pachon.core.exposure import Exposure
from pachon.pipe.task import Input, Output, PrerequisiteInput, Task

__all__ = ["DiffimTaskConfig", "DiffimTask", "warp_template"]

_log = logging.getLogger(__name__)

_DETECTOR = ("instrument", "exposure", "detector")
_PATCH = ("skymap", "tract", "patch", "band")


@dataclass
class DiffimTaskConfig:
    """Settings of :class:`DiffimTask`."""

    #: Difference-imaging settings (algorithm "al" or "zogy", kernel fit, decorrelation).
    diffim: DiffimConfig = field(default_factory=DiffimConfig)
    #: Lanczos order of the template warp to the detector.
    warp_order: int = 3


def _mosaic(patches: list[Exposure], science: Exposure, margin: int) -> Exposure | None:
    """Patches of one tract (one pixel grid) cut to the science footprint and stitched."""
    from pachon.core.geom import Box
    from pachon.core.mask import Mask

    ref = patches[0]
    b = science.bbox
    xs = np.array([b.x0 - 0.5, b.x0 + b.width - 0.5] * 2)
    ys = np.array([b.y0 - 0.5] * 2 + [b.y0 + b.height - 0.5] * 2)
    ra, dec = science.wcs.all_pix2world(xs, ys, 0)
    tx, ty = ref.wcs.all_world2pix(ra, dec, 0)
    x0, y0 = int(np.floor(tx.min())) - margin, int(np.floor(ty.min())) - margin
    x1, y1 = int(np.ceil(tx.max())) + margin, int(np.ceil(ty.max())) + margin
    h, w = y1 - y0, x1 - x0
    img, var = np.full((h, w), np.nan, np.float32), np.full((h, w), np.nan, np.float32)
    msk = np.zeros((h, w), np.uint32)
    have = np.zeros((h, w), bool)
    used = []
    for p in patches:
        pb = p.bbox
        ix0, iy0 = max(x0, pb.x0), max(y0, pb.y0)
        ix1, iy1 = min(x1, pb.x0 + pb.width), min(y1, pb.y0 + pb.height)
        if ix1 <= ix0 or iy1 <= iy0:
            continue
        dst = (slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0))
        src = (slice(iy0 - pb.y0, iy1 - pb.y0), slice(ix0 - pb.x0, ix1 - pb.x0))
        ok = np.isfinite(p.image[src]) & ~p.mask.get("NO_DATA")[src] & ~have[dst]
        img[dst] = np.where(ok, p.image[src], img[dst])
        var[dst] = np.where(ok, p.variance[src], var[dst])
        msk[dst] = np.where(ok, p.mask.array[src], msk[dst])
        have[dst] |= ok
        used.append((int(ok.sum()), p))
    if not used or not have.any():
        return None
    best = max(used, key=lambda t: t[0])[1]
    mask = Mask(msk, planes=ref.mask.planes)
    mask.set("NO_DATA", ~have)
    _log.debug("template mosaic of %d patches on %s", len(used), Box(x0, y0, w, h))
    return Exposure(img, mask, var, wcs=ref.wcs, psf=best.psf, photo_calib=best.photo_calib,
                    metadata=best.metadata.copy(), xy0=(x0, y0))


def warp_template(templates: list[Exposure], science: Exposure, *, order: int = 3) -> Exposure:
    """The template patches of ``science``'s band warped and stitched onto its pixel grid.

    Patches of one tract are first cut to the science footprint and stitched on the tract
    grid, then warped once; several tracts are warped separately and stitched, the
    best-covering first.

    Raises
    ------
    NoWorkFound
        No patch of the band covers any science pixel (message names the band).
    """
    from pachon.algorithms.warp import warp_exposure

    if science.wcs is None:
        raise ConfigError("warp_template: the science exposure has no WCS; calibrate it first")
    band = science.visit_info.band if science.visit_info is not None else None
    same = [t for t in templates if band is None or t.metadata.get("BAND", band) == band]
    tracts: dict[Any, list[Exposure]] = {}
    for t in same:
        tracts.setdefault((t.metadata.get("SKYMAP"), t.metadata.get("TRACT")), []).append(t)
    warps = []
    for group in tracts.values():
        mosaic = _mosaic(group, science, order + 4)
        if mosaic is None:
            continue
        try:
            warps.append(warp_exposure(mosaic, science.wcs, science.bbox, order=order))
        except ConfigError:
            _log.debug("template tract %s does not overlap %s", group[0].metadata.get("TRACT"), science.bbox)
    if not warps:
        raise NoWorkFound(f"no template coverage: {len(same)} of {len(templates)} template patches are in "
                          f"band {band!r} and none covers the detector {science.bbox}")
    covered = [np.isfinite(w.image) & ~w.mask.get("NO_DATA") for w in warps]
    order_idx = np.argsort([-c.sum() for c in covered], kind="stable")
    out = warps[int(order_idx[0])]
    have = covered[int(order_idx[0])].copy()
    for k in order_idx[1:]:
        fill = covered[int(k)] & ~have
        if fill.any():
            w = warps[int(k)]
            out.image[fill] = w.image[fill]
            out.variance[fill] = w.variance[fill]
            out.mask.array[fill] = w.mask.array[fill]
            have |= fill
    out.mask.set("NO_DATA", ~have)
    _log.info("template for %s: %d patches in %d tracts, %.1f%% of the detector covered", science.bbox,
              len(same), len(warps), 100.0 * have.mean())
    return out


class DiffimTask(Task):
    """``calexp - template`` PSF-matched and decorrelated (see the module docstring)."""

    dimensions = _DETECTOR
    inputs = {"calexp": Input("calexp", _DETECTOR, "Exposure", doc="calibrated science exposure")}
    prerequisites = {
        "templates": PrerequisiteInput("template_coadd", _PATCH, "Exposure", multiple=True, lookup="region",
                                       missing="fail", doc="template patches overlapping the exposure"),
    }
    outputs = {
        "difference": Output("difference_exp", _DETECTOR, "Exposure", doc="decorrelated difference image"),
        "template_detector": Output("template_detector", _DETECTOR, "Exposure",
                                    doc="template warped onto the detector"),
    }
    config_class = DiffimTaskConfig

    def run(self, calexp: Exposure, templates: list[Exposure]) -> dict[str, Any]:
        """Warp the templates onto the calexp and subtract."""
        template = warp_template(list(templates), calexp, order=self.config.warp_order)
        result = subtract_images(calexp, template, self.config.diffim)
        diff = result.difference
        diff.metadata["DIFFALG"] = self.config.diffim.algorithm
        diff.metadata["DIFFMODE"] = result.mode
        if result.kernel is not None:
            diff.metadata["KERNPSF"] = bool(getattr(result.kernel, "from_psf", False))
        return {"difference": diff, "template_detector": template}

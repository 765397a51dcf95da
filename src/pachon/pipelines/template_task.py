"""Template coadds per sky-map patch and band, from the best-seeing calibrated exposures.

:class:`TemplateTask` runs once per ``(skymap, tract, patch, band)``.  The framework has no
spatial join of inputs, so the calexps are found by a *region* prerequisite: every ``calexp``
of the input collections whose exposure region overlaps the patch region (all bands: the
task keeps those of the quantum's band, read from each calexp's ``VisitInfo``).  Patches that
no calexp overlaps are left out of the graph.  Which epochs feed the template is chosen by
the input collections (build templates from a template-epoch collection, as Rubin does) and
by ``n_best`` / ``max_sigma`` (best seeing first).

The coadd is written as ``template_coadd`` on the part of the patch's outer box that the
calexps cover (their footprints grown by a margin), in the tract's pixel frame; its header
carries ``BAND``, ``SKYMAP``, ``TRACT``, ``PATCH`` and ``NINPUTS`` so a reader can check what
it holds (the difference-imaging task filters templates on ``BAND``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from pachon.core.errors import ConfigError, NoWorkFound
from pachon.core.exposure import Exposure
from pachon.core.geom import Box
from pachon.core.skymap import SkyMap, SkyMapConfig
from pachon.pipe.task import Output, PrerequisiteInput, Task

__all__ = ["TemplateConfig", "TemplateTask", "build_patch_template", "skymap_from_config"]

_log = logging.getLogger(__name__)

_PATCH = ("skymap", "tract", "patch", "band")
_DETECTOR = ("instrument", "exposure", "detector")


@dataclass
class TemplateConfig:
    """Settings of :class:`TemplateTask`.

    The sky-map geometry fields must equal those the repository's sky map was registered
    with (``repo.register_skymap``); the task checks the name against the data ID.
    """

    skymap_name: str = "pachon_rings"
    num_rings: int = 120
    pixel_scale: float = 0.2
    patch_inner_dimensions: tuple[int, int] = (4000, 4000)
    patch_border: int = 100
    tract_overlap: float = 1.0 / 60.0
    #: Keep at most this many exposures (best seeing first); all when None.
    n_best: int | None = None
    #: Leave out exposures whose PSF Gaussian sigma (pixels) exceeds this.
    max_sigma: float | None = None
    #: Lanczos order of the warp to the patch grid.
    warp_order: int = 3
    #: Outlier rejection threshold of the coadd (sigma).
    clip_sigma: float = 4.0


def skymap_from_config(config: TemplateConfig) -> SkyMap:
    """The :class:`SkyMap` described by a template configuration."""
    return SkyMap(SkyMapConfig(
        name=config.skymap_name, num_rings=config.num_rings, pixel_scale=config.pixel_scale,
        patch_inner_dimensions=tuple(config.patch_inner_dimensions), patch_border=config.patch_border,
        tract_overlap=config.tract_overlap,
    ))  # fmt: skip


def _footprint_box(calexps: list[Exposure], wcs: Any, outer: Box, margin: int) -> Box | None:
    """The part of ``outer`` (tract pixels) that the calexps' footprints, grown by ``margin``, cover.

    Coadding onto it rather than the whole patch outer box (4200 x 4200 pixels by default) keeps
    the stacks small when a few detectors cover a corner of the patch (``pachon demo``'s four
    512 x 512 detectors: a ~1100 pixel square).
    """
    xs, ys = [], []
    for c in calexps:
        b = c.bbox
        cx = np.array([b.x0 - 0.5, b.x1 - 0.5, b.x0 - 0.5, b.x1 - 0.5])
        cy = np.array([b.y0 - 0.5, b.y0 - 0.5, b.y1 - 0.5, b.y1 - 0.5])
        ra, dec = c.pixel_to_sky(cx, cy)
        tx, ty = wcs.all_world2pix(ra, dec, 0)
        xs.append(tx)
        ys.append(ty)
    x, y = np.concatenate(xs), np.concatenate(ys)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return outer
    box = Box.from_corners(int(np.floor(x.min())) - margin, int(np.floor(y.min())) - margin,
                           int(np.ceil(x.max())) + margin + 1, int(np.ceil(y.max())) + margin + 1)
    return outer.intersection(box)


def build_patch_template(
    calexps: list[Exposure], skymap: SkyMap, tract: int, patch: int, band: str, config: TemplateConfig
) -> Exposure:
    """Coadd the ``band`` calexps onto the outer box of ``(tract, patch)``.

    Raises
    ------
    NoWorkFound
        No calexp of this band covers the patch (the message names tract, patch and band).
    """
    from pachon.algorithms.coadd import make_template

    chosen = [c for c in calexps if c.visit_info is None or c.visit_info.band in (None, band)]
    where = f"tract {tract} patch {patch} band {band!r}"
    if not chosen:
        raise NoWorkFound(f"template {where}: none of {len(calexps)} overlapping calexps is in this band")
    t = skymap.tract(tract)
    p = t.patch(patch)
    box = _footprint_box(chosen, t.wcs, p.outer_bbox, margin=config.warp_order + 8)
    if box is None:
        raise NoWorkFound(f"template {where}: none of the {len(chosen)} calexps covers the patch")
    try:
        coadd = make_template(chosen, t.wcs, box, n_best=config.n_best, max_sigma=config.max_sigma,
                              order=config.warp_order, clip_sigma=config.clip_sigma)
    except NoWorkFound as exc:
        raise NoWorkFound(f"template {where}: {exc}") from exc
    n_in = len(chosen) if config.n_best is None else min(config.n_best, len(chosen))
    coadd.metadata["BAND"] = band
    coadd.metadata["SKYMAP"] = skymap.name
    coadd.metadata["TRACT"] = int(tract)
    coadd.metadata["PATCH"] = int(patch)
    coadd.metadata["NINPUTS"] = n_in
    _log.info("template %s: coadd of up to %d of %d calexps", where, n_in, len(chosen))
    return coadd


class TemplateTask(Task):
    """Template coadd of one sky-map patch in one band (see the module docstring)."""

    dimensions = _PATCH
    prerequisites = {
        "calexps": PrerequisiteInput("calexp", _DETECTOR, "Exposure", multiple=True, lookup="region",
                                     doc="calibrated exposures whose region overlaps the patch"),
    }
    outputs = {"template": Output("template_coadd", _PATCH, "Exposure", doc="template coadd of the patch")}
    config_class = TemplateConfig

    def __init__(self, config: TemplateConfig | None = None) -> None:
        super().__init__(config)
        self._skymap = skymap_from_config(self.config)

    def run(self, calexps: list[Exposure], skymap: str = "", tract: int = 0, patch: int = 0,
            band: str = "") -> dict[str, Any]:
        """Coadd ``calexps`` onto the patch (the data-ID values come from `run_quantum`)."""
        if skymap and skymap != self._skymap.name:
            raise ConfigError(f"TemplateTask: the data ID's skymap {skymap!r} is not the configured "
                              f"skymap_name {self._skymap.name!r}; set template.skymap_name and geometry")
        coadd = build_patch_template(list(calexps), self._skymap, tract, patch, band, self.config)
        return {"template": coadd}

    def run_quantum(self, inputs: dict[str, Any], data_id: dict[str, Any]) -> dict[str, Any]:
        """Pass the patch's data ID to `run`."""
        return self.run(inputs["calexps"], skymap=data_id["skymap"], tract=int(data_id["tract"]),
                        patch=int(data_id["patch"]), band=str(data_id["band"]))

"""Optical ghost model task: the ``ghost`` calibration of one detector from bright-star exposures.

Rubin's layout: ``cpGhostProc`` (an :class:`~pachon.pipelines.isr_task.IsrTask` of the
bright-star exposures with bias, dark, flat and defects; saturated pixels are kept, not
interpolated, so the charge of the core and bleed trail is still there) and ``cpGhost`` per
detector.  Bright stars are found as groups of saturated pixels
(:func:`pachon.algorithms.isr.ghosts.saturated_stars`, as ISR finds them to mask their ghosts);
each star's flux is the charge summed over a wide aperture and its bleed trail
(:func:`pachon.algorithms.cp.ghosts.star_flux`); the star itself is removed by its point
symmetry and the model fitted to every star at once
(:mod:`pachon.algorithms.cp.ghost_joint`).  The output is the ``ghost`` calibration (Json of
:meth:`~pachon.algorithms.isr.GhostModel.to_dict` plus the number of stars), certified like the
other products and read by ISR's ghost masking.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pachon.algorithms.cp.ghost_joint import fit_ghost_model_joint, prepare_star
from pachon.algorithms.cp.ghosts import star_flux
from pachon.algorithms.isr import GhostModel, IsrConfig
from pachon.algorithms.isr.ghosts import saturated_stars
from pachon.core.errors import ConfigError
from pachon.pipe.task import Input, Output, Task
from pachon.pipelines.isr_task import DET, EXP_DET, IsrTask, IsrTaskConfig

__all__ = ["CpGhostProcConfig", "CpGhostProcTask", "CpGhostConfig", "CpGhostTask"]

_log = logging.getLogger(__name__)


@dataclass
class CpGhostProcConfig(IsrTaskConfig):
    """Per-exposure ISR of the bright-star exposures: flat-fielded, saturated pixels kept."""

    isr: IsrConfig = field(default_factory=lambda: IsrConfig(do_brighter_fatter=False, do_ghosts=False,
                                                             interpolate_planes=("BAD",)))
    raw_where: str | None = "exposure.observation_type = 'ghost'"


class CpGhostProcTask(IsrTask):
    """ISR of one bright-star exposure for the ghost model."""

    outputs = {"proc": Output("cpGhostProc", EXP_DET, "Exposure")}
    config_class = CpGhostProcConfig
    output_name = "proc"


@dataclass
class CpGhostConfig:
    """Star selection and starting point of the ghost fit.

    Attributes
    ----------
    min_saturated
        A star is a group of at least this many saturated pixels.
    aperture_radius
        Radius (pixels) of the flux aperture; the sky is taken from 1.3 to 1.8 times it.
    core_radius
        Pixels this close to the star are left out of the fit (the core is not symmetric
        enough once saturated and bled).
    half_size
        The fit uses the square of this half size (pixels) about each star; it must hold the
        ghost (offset plus outer radius).
    initial
        Starting model (`GhostModel` fields): its radius and inner fraction start the fit.
    scale_range, radius_range
        Searched scales, and radii in units of the starting radius.
    min_stars
        Fewer usable stars fail the quantum.
    """

    min_saturated: int = 25
    aperture_radius: float = 100.0
    core_radius: float = 12.0
    half_size: int = 80
    initial: dict[str, float] = field(default_factory=lambda: GhostModel().to_dict())
    scale_range: tuple[float, float] = (0.9, 1.1)
    radius_range: tuple[float, float] = (0.5, 1.6)
    min_stars: int = 2


class CpGhostTask(Task):
    """The optical ghost model of one detector from the saturated stars of its exposures."""

    dimensions = DET
    inputs = {"procs": Input("cpGhostProc", EXP_DET, "Exposure", multiple=True)}
    outputs = {"ghost": Output("ghost", DET, "Json", is_calibration=True, doc="optical ghost model")}
    config_class = CpGhostConfig

    def _stars(self, exp: Any, detector: Any) -> list[Any]:
        cfg = self.config
        img = np.asarray(exp.image, float)
        sat = exp.mask.get("SAT")
        bad = exp.mask.any("BAD", "SAT")
        ny, nx = img.shape
        yy, xx = np.indices(img.shape)
        out = []
        for x, y, _, c0, c1 in saturated_stars(sat, min_pixels=cfg.min_saturated):
            rows = np.flatnonzero(sat[:, int(c0) : int(c1)].any(axis=1))
            if rows.min() == 0 or rows.max() == ny - 1:
                _log.info("ghost: star at (%.0f, %.0f) bleeds off the detector; its flux is unknown", x, y)
                continue
            try:
                flux = star_flux(img, x, y, radius=cfg.aperture_radius, saturated=sat, bleed_columns=(c0, c1),
                                 bad=bad)
            except ConfigError as exc:
                _log.info("ghost: %s", exc)
                continue
            sky = float(np.median(img[~bad]))
            skip = bad | ((xx - x) ** 2 + (yy - y) ** 2 < cfg.core_radius**2)
            skip[:, max(int(c0) - 2, 0) : int(c1) + 2] = True  # the bleed trail's columns
            cut = prepare_star(img - sky, np.asarray(exp.variance, float), skip, detector, x, y, flux,
                               half_size=cfg.half_size)
            if cut is None:
                _log.info("ghost: star at (%.0f, %.0f) is too near the edge for the fit", x, y)
                continue
            out.append(cut)
        return out

    def run_quantum(self, inputs: dict[str, Any], data_id: dict[str, Any]) -> dict[str, Any]:
        """Find the stars of every exposure and fit the model to all of them."""
        from pachon.instruments import get_instrument

        detector = get_instrument(str(data_id["instrument"])).detector(int(data_id["detector"]))
        cutouts = [c for exp in inputs["procs"] for c in self._stars(exp, detector)]
        if len(cutouts) < self.config.min_stars:
            raise ConfigError(f"ghost {data_id}: {len(cutouts)} usable saturated star(s) in "
                              f"{len(inputs['procs'])} exposure(s), need {self.config.min_stars}; take "
                              f"exposures of bright stars away from the detector edges")
        model, measured = fit_ghost_model_joint(
            cutouts, detector, initial=GhostModel.from_dict(self.config.initial),
            scale_range=tuple(self.config.scale_range), radius_range=tuple(self.config.radius_range))
        _log.info("ghost %s: %s from %d stars", data_id, model, len(measured))
        return {"ghost": {**model.to_dict(), "n_stars": len(measured), "detector": detector.id}}

    def run(self, **inputs: Any) -> dict[str, Any]:
        """Not used: the task needs the data ID (see `run_quantum`)."""
        raise NotImplementedError("CpGhostTask runs through run_quantum(inputs, data_id)")

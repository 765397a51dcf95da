"""Calibration products: combined frames, photon transfer curve, crosstalk, linearity,
brighter-fatter kernel, defects and the optical ghost model.  Pure functions on arrays."""

from __future__ import annotations

from pachon.algorithms.cp.bf_kernel import kernel_from_area_coefficients
from pachon.algorithms.cp.brighter_fatter import fit_bf_strength, star_sizes
from pachon.algorithms.cp.combine import CombineConfig, combine_frames
from pachon.algorithms.cp.covariances import fit_area_coefficients, linearize_covariances, pair_covariances
from pachon.algorithms.cp.crosstalk import measure_crosstalk
from pachon.algorithms.cp.defects import DefectConfig, find_defects
from pachon.algorithms.cp.ghosts import GhostMeasurement, fit_ghost_model, measure_ghost
from pachon.algorithms.cp.linearity import LinearityFit, fit_linearity, fit_linearity_curve
from pachon.algorithms.cp.ptc import PtcResult, fit_ptc, pair_statistics, read_noise_from_bias_pair

__all__ = ["CombineConfig", "combine_frames", "PtcResult", "fit_ptc", "pair_statistics",
           "read_noise_from_bias_pair", "measure_crosstalk", "fit_linearity",
           "fit_linearity_curve", "LinearityFit", "DefectConfig",
           "find_defects", "fit_bf_strength", "star_sizes", "GhostMeasurement", "measure_ghost",
           "fit_ghost_model", "pair_covariances", "linearize_covariances", "fit_area_coefficients",
           "kernel_from_area_coefficients"]

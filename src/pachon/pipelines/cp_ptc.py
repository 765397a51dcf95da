"""Photon transfer curve task: per-amplifier gain and read noise, and linearity, from raw flat pairs.

:class:`CpPtcTask` gathers the raws of one detector selected by its ``where`` (default: every
flat and bias; narrow it in the pipeline YAML or with the run's ``where``, e.g.
``exposure.day_obs = 20240331``): flat pairs at several levels, and two or more biases for the
read noise.  Flats are paired by exposure time (consecutive exposures of one time); each pair
gives the mean and temporal variance per amplifier (overscan-subtracted, ADU; the lag-0
flat-pair covariance below, one pass over the pixels for both).  Outputs (the
calibration types, certified as written): ``ptc`` (Json: gains, read noise, the curve) and
``linearity`` (Numpy ``(n_amp, 1)``: quadratic non-linearity in electrons, from the mean signal
against exposure time with a constant term for the bias residual and shutter offset, see
:mod:`pachon.algorithms.cp.linearity`; the ``ptc`` Json also holds its errors and offsets).
The ``ptc`` Json also holds, per amplifier and pair, the covariances of the flat-pair
difference out to ``covariance_max_lag`` (:func:`pachon.algorithms.cp.pair_covariances`), in
electrons with the fitted gain and undone non-linearity, with their errors and pixel counts:
the input of the brighter-fatter kernel (:mod:`pachon.pipelines.cp_bfk`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pachon.algorithms.cp import fit_linearity_curve, fit_ptc, pair_statistics, read_noise_from_bias_pair
from pachon.algorithms.cp.covariances import linearize_covariances, pair_covariances
from pachon.algorithms.isr.assemble import amplifier_arrays, data_segment
from pachon.algorithms.isr.overscan import OverscanConfig, subtract_overscan
from pachon.core.errors import ConfigError
from pachon.pipe.task import Input, Output, Task
from pachon.pipelines.isr_task import DET, EXP_DET, raw_context

__all__ = ["CpPtcConfig", "CpPtcTask"]

_log = logging.getLogger(__name__)


@dataclass
class CpPtcConfig:
    """Settings of the photon transfer curve.

    Attributes
    ----------
    overscan
        Overscan subtraction of the flats (``do_overscan: false`` for cameras without one).
    do_overscan
        Subtract the overscan (else the bias pair's mean level is subtracted).
    max_mean
        Ignore pairs above this mean (ADU), e.g. near saturation.
    fit_linearity
        Also fit the quadratic non-linearity from mean signal against exposure time.
    where
        Per-input filter selecting the raws.
    covariance_max_lag
        Largest row/column lag of the flat-pair covariances stored for the brighter-fatter
        kernel (0: none stored).
    """

    overscan: OverscanConfig = field(default_factory=OverscanConfig)
    do_overscan: bool = True
    max_mean: float | None = None
    fit_linearity: bool = True
    where: str = "exposure.observation_type IN ('flat', 'bias')"
    covariance_max_lag: int = 5


class CpPtcTask(Task):
    """Gains and read noise of every amplifier of one detector from flat pairs and biases."""

    dimensions = DET
    inputs = {"raws": Input("raw", EXP_DET, "RawFits", multiple=True, doc="flat pairs and biases",
                            where=CpPtcConfig.where)}
    outputs = {"ptc": Output("ptc", DET, "Json", is_calibration=True),
               "linearity": Output("linearity", DET, "Numpy", is_calibration=True)}
    config_class = CpPtcConfig

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.inputs = {"raws": Input("raw", EXP_DET, "RawFits", multiple=True, doc="flat pairs and biases",
                                     where=self.config.where)}

    def _segments(self, raw: Any, det: Any, did: dict[str, Any], overscan: bool) -> list[np.ndarray]:
        arrays = amplifier_arrays(raw, det, data_id=did, dtype=None)  # converted once, below
        out = []
        for amp, arr in zip(det.amplifiers, arrays, strict=True):
            if not np.all(np.isfinite(arr)):
                raise ConfigError(f"raw {did}: amplifier {amp.name} holds NaN pixels; remove this exposure")
            if overscan:
                arr = subtract_overscan(arr, amp, self.config.overscan)[0]
            out.append(data_segment(arr, amp))
        return out

    def run_quantum(self, inputs: dict[str, Any], data_id: dict[str, Any]) -> dict[str, Any]:
        """Sort the raws into biases and flat pairs, measure each pair, fit each amplifier."""
        flats: dict[float, list[list[np.ndarray]]] = defaultdict(list)
        biases: list[list[np.ndarray]] = []
        det = None
        for raw in inputs["raws"]:
            _, det, info = raw_context(raw, data_id)
            did = {**data_id, "exposure": info.exposure_id}
            if info.observation_type == "bias":
                biases.append(self._segments(raw, det, did, overscan=False))
            elif info.observation_type == "flat":
                flats[round(float(info.exposure_time), 3)].append(
                    self._segments(raw, det, did, overscan=self.config.do_overscan))
        pairs = [(t, g[i], g[i + 1]) for t, g in sorted(flats.items()) for i in range(0, len(g) - 1, 2)]
        if det is None or len(pairs) < 3:
            raise ConfigError(f"ptc {data_id}: {len(pairs)} flat pair(s) found, need 3 or more levels; "
                              f"take flat pairs at several exposure times (config 'where': "
                              f"{self.config.where!r})")
        amps = det.amplifiers
        times = np.array([t for t, _, _ in pairs])
        n_lag = self.config.covariance_max_lag
        # the covariances at lag 0 are the pair variances: one pass over the pixels gives both
        pcs = [[pair_covariances(a[k], b[k], n_lag) for k in range(len(amps))] for _, a, b in pairs] \
            if n_lag > 0 else None
        stats = np.array([[(p.mean, p.cov[0, 0]) for p in row] for row in pcs]) if pcs is not None else \
            np.array([[pair_statistics(a[k], b[k]) for k in range(len(amps))] for _, a, b in pairs])
        result: dict[str, Any] = {"detector": det.id, "amplifiers": [a.name for a in amps], "gain": [],
                                  "read_noise": [], "quadratic": [], "exposure_times": times.tolist(),
                                  "means": stats[:, :, 0].T.tolist(), "variances": stats[:, :, 1].T.tolist(),
                                  "linearity_error": [], "linearity_offset": []}
        lin = []
        for k, amp in enumerate(amps):
            rn_adu = read_noise_from_bias_pair(biases[0][k], biases[1][k]) if len(biases) >= 2 else None
            fit = fit_ptc(stats[:, k, 0], stats[:, k, 1], read_noise_adu=rn_adu,
                          max_mean=self.config.max_mean)
            result["gain"].append(fit.gain)
            result["read_noise"].append(fit.read_noise)
            result["quadratic"].append(fit.quadratic)
            _log.info("ptc %s %s: gain %.4f e-/ADU, read noise %.3f e-", data_id, amp.name, fit.gain,
                      fit.read_noise)
            if self.config.fit_linearity:
                curve = fit_linearity_curve(times, stats[:, k, 0] * fit.gain, order=2)
                lin.append(curve.coefficients)
                result["linearity_error"].append(curve.errors.tolist())
                result["linearity_offset"].append(curve.offset)
                _log.info("linearity %s %s: c2 %.4g +- %.2g /e-, offset %.2f e-", data_id, amp.name,
                          curve.coefficients[0], curve.errors[0], curve.offset)
        if pcs is not None:
            result.update(self._covariances(pcs, result, lin))
        if len(biases) < 2:
            _log.warning("ptc %s: fewer than two biases; read noise from the curve's intercept", data_id)
        linearity = np.asarray(lin, float).reshape(len(amps), -1) if lin else None
        return {"ptc": result, "linearity": linearity}

    def _covariances(self, pair_covs: list[list[Any]], result: dict[str, Any],
                     lin: list[Any]) -> dict[str, Any]:
        """Flat-pair covariances per amplifier and pair, in electrons with non-linearity undone."""
        n = self.config.covariance_max_lag
        means, covs, errs, npix = [], [], [], []
        for k, gain in enumerate(result["gain"]):
            pcs = [row[k] for row in pair_covs]
            c2 = float(lin[k][0]) if lin else 0.0
            m, c = linearize_covariances(np.array([p.mean for p in pcs]) * gain,
                                         np.stack([p.cov for p in pcs]) * gain * gain, c2)
            counts = np.array([p.n_pixels for p in pcs], float)
            means.append(m.tolist())
            covs.append(c.tolist())
            npix.append(counts.astype(int).tolist())
            # scatter of a covariance estimate: C_00 / sqrt(N) (sqrt(2) more at lag 0)
            e = np.repeat((c[:, 0, 0] / np.sqrt(counts))[:, None, None], n + 1, 1).repeat(n + 1, 2)
            e[:, 0, 0] *= np.sqrt(2.0)
            errs.append(e.tolist())
        return {"cov_max_lag": n, "cov_means": means, "covariances": covs, "covariance_errors": errs,
                "cov_n_pixels": npix}

    def run(self, **inputs: Any) -> dict[str, Any]:
        """Not used: the task needs the data ID (see `run_quantum`)."""
        raise NotImplementedError("CpPtcTask runs through run_quantum(inputs, data_id)")

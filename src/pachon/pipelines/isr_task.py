"""The ISR task: one raw detector in, a calibrated ``post_isr`` Exposure out.

:class:`IsrTask` wires :func:`pachon.algorithms.isr.run_isr` to the repository.  Its
calibrations are prerequisite inputs found in CALIBRATION collections by validity range at the
exposure mid-time (``lookup="calibration"``), one per ISR step switched on in its configuration
(``isr.do_bias`` → ``bias`` ...; ``use_ptc`` → ``ptc`` gains and read noise).  They are
*optional* prerequisites except those named in ``required_calibrations`` (default: bias, flat):
a step whose calibration is absent is switched off for that exposure (a log line, ``False`` in
the ``ISR_<NAME>`` header flag and the name in ``ISR_OFF``), while a missing required
calibration fails the quantum with a record naming the data ID and the dataset.

Errors (a missing amplifier, a calibration of the wrong shape or detector, NaN pixels) are
raised by the algorithm with the data ID in the message; the framework records them as a
failed quantum and writes no output for it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pachon.algorithms.isr import IsrCalibs, IsrConfig, run_isr
from pachon.core.errors import ConfigError, FormatError
from pachon.pipe.task import Input, Output, PrerequisiteInput, Task

__all__ = ["IsrTask", "IsrTaskConfig", "CALIBRATION_TYPES", "STEP_CALIBRATIONS", "raw_context",
           "visit_info_from", "isr_calibs_from", "match_calibration_gains", "record_gains", "recorded_gains"]

_log = logging.getLogger(__name__)

EXP_DET = ("instrument", "exposure", "detector")
DET = ("instrument", "detector")

#: Calibration name → (dataset type, dimensions, storage class); ``is_calibration`` types.
CALIBRATION_TYPES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "bias": ("bias", DET, "Exposure"),
    "dark": ("dark", DET, "Exposure"),
    "flat": ("flat", (*DET, "physical_filter"), "Exposure"),
    "ptc": ("ptc", DET, "Json"),
    "crosstalk": ("crosstalk", DET, "Numpy"),
    "linearity": ("linearity", DET, "Numpy"),
    "bfk": ("bfk", DET, "Numpy"),
    "defects": ("defects", DET, "Numpy"),
    "ghost": ("ghost", DET, "Json"),
}

#: Calibration name → the `IsrConfig` flag of the step that needs it.
STEP_CALIBRATIONS = {"bias": "do_bias", "dark": "do_dark", "flat": "do_flat", "crosstalk": "do_crosstalk",
                     "linearity": "do_linearity", "bfk": "do_brighter_fatter", "defects": "do_defects",
                     "ghost": "do_ghosts"}


def header_wcs(header: Any) -> Any:
    """The celestial WCS of a FITS header (astropy), or None when it has none.

    Pixel-only or otherwise non-celestial WCS keywords (some cameras write ``CTYPE1 = 'PIXEL'``)
    count as none.
    """
    if header is None or "CRVAL1" not in header:
        return None
    if not str(header.get("CTYPE1", "")).upper().startswith(("RA-", "DEC-", "GLON", "GLAT", "ELON", "ELAT")):
        return None
    from pachon.core.wcs import wcs_from_header

    return wcs_from_header(header, name="raw primary header")


@dataclass
class IsrTaskConfig:
    """Configuration of :class:`IsrTask`.

    Attributes
    ----------
    isr
        The ISR steps; a step that is on makes its calibration a prerequisite (optional unless
        listed in ``required_calibrations``: the step is switched off when it is absent).
    use_ptc
        Take per-amplifier gains and read noise from the ``ptc`` calibration (else the
        camera's nominal values).
    required_calibrations
        Calibrations (keys of `CALIBRATION_TYPES`) whose absence fails the quantum instead of
        switching their step off.
    raw_where
        Filter on the raws this task reads, e.g. ``"exposure.observation_type = 'science'"``.
    """

    isr: IsrConfig = field(default_factory=IsrConfig)
    use_ptc: bool = False
    required_calibrations: list[str] = field(default_factory=lambda: ["bias", "flat"])
    raw_where: str | None = None


def calibration_prerequisites(config: IsrTaskConfig) -> dict[str, PrerequisiteInput]:
    """The calibrations the configured steps need, as calibration-lookup prerequisites.

    Raises
    ------
    ConfigError
        ``required_calibrations`` names an unknown calibration.
    """
    unknown = sorted(set(config.required_calibrations) - set(CALIBRATION_TYPES))
    if unknown:
        raise ConfigError(f"IsrTaskConfig.required_calibrations: unknown calibration {unknown[0]!r}; "
                          f"known: {', '.join(CALIBRATION_TYPES)}")
    names = [n for n, flag in STEP_CALIBRATIONS.items() if getattr(config.isr, flag)]
    if config.use_ptc:
        names.append("ptc")
    out = {}
    for name in names:
        dtype, dims, storage = CALIBRATION_TYPES[name]
        out[name] = PrerequisiteInput(dtype, dims, storage, lookup="calibration", doc=f"{name} calibration",
                                      optional=name not in config.required_calibrations)
    return out


def raw_context(raw: Any, data_id: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The instrument, detector and translated header (`ObservationInfo`) of a raw HDUList.

    Raises
    ------
    FormatError
        The raw has no header to translate (names the data ID).
    """
    from pachon.instruments import get_instrument

    inst = get_instrument(str(data_id["instrument"]))
    det = inst.detector(int(data_id["detector"]))
    try:
        header = raw[0].header
    except (TypeError, IndexError, AttributeError) as exc:
        raise FormatError(f"raw {data_id}: not a FITS HDUList with a primary header ({exc}); "
                          f"re-ingest the file") from None
    return inst, det, inst.translate_header(header)


def visit_info_from(info: Any) -> Any:
    """A `VisitInfo` from a translated header (the values the exposure record was made from)."""
    from pachon.core.visit_info import VisitInfo

    begin, end = info.datetime_begin, info.datetime_end
    mid = None
    if begin is not None:
        mid = float(begin.tai.mjd) if end is None else 0.5 * float(begin.tai.mjd + end.tai.mjd)
    return VisitInfo(exposure_time=float(info.exposure_time or 0.0), dark_time=info.dark_time,
                     mjd_tai_mid=mid, physical_filter=info.physical_filter, band=info.band,
                     airmass=info.airmass, boresight_ra=info.tracking_ra, boresight_dec=info.tracking_dec,
                     rotation_angle=info.sky_angle, instrument=info.instrument, exposure_id=info.exposure_id,
                     visit_id=info.visit_id, detector=info.detector)


def isr_calibs_from(inputs: dict[str, Any], detector: Any, data_id: dict[str, Any]) -> IsrCalibs:
    """Build `IsrCalibs` from prerequisite objects read from the repository.

    Raises
    ------
    ConfigError
        A ``ptc`` calibration for another number of amplifiers.

    Notes
    -----
    A ``ghost`` calibration (Json of `GhostModel.to_dict`) becomes ``calibs.ghost_model``; ISR
    masks the ghosts of the saturated stars it finds in the exposure (``isr.ghost_min_saturated``).
    """
    calibs = IsrCalibs(bias=inputs.get("bias"), dark=inputs.get("dark"), flat=inputs.get("flat"),
                       defects=inputs.get("defects"), bf_kernel=inputs.get("bfk"),
                       crosstalk=inputs.get("crosstalk"), linearity=inputs.get("linearity"))
    ptc = inputs.get("ptc")
    if ptc is not None:
        n = len(detector.amplifiers)
        if len(ptc["gain"]) != n:
            raise ConfigError(f"raw {data_id}: the ptc calibration has {len(ptc['gain'])} gains, detector "
                              f"{detector.name} has {n} amplifiers; certify this detector's ptc")
        calibs.gains = np.asarray(ptc["gain"], float)
        calibs.read_noise = np.asarray(ptc["read_noise"], float)
    ghost = inputs.get("ghost")
    if ghost is not None:
        from pachon.algorithms.isr import GhostModel

        calibs.ghost_model = ghost if isinstance(ghost, GhostModel) else GhostModel.from_dict(ghost)
    return calibs


GAIN_KEY = "ISR_GAIN_{}"


def record_gains(metadata: Any, detector: Any, gains: np.ndarray) -> None:
    """Write the gain (e-/ADU) each amplifier was converted with (``ISR_GAIN_<amp>`` cards)."""
    for amp, g in zip(detector.amplifiers, gains, strict=True):
        metadata[f"HIERARCH {GAIN_KEY.format(amp.name)}"] = (float(g), "gain applied, e-/ADU")


def recorded_gains(metadata: Any, detector: Any) -> np.ndarray | None:
    """The gains recorded by :func:`record_gains`, or None when any amplifier lacks one."""
    if metadata is None or not hasattr(metadata, "get"):
        return None
    values = [metadata.get(GAIN_KEY.format(amp.name)) for amp in detector.amplifiers]
    return None if any(v is None for v in values) else np.asarray(values, float)


def match_calibration_gains(calibs: IsrCalibs, detector: Any, data_id: dict[str, Any]) -> IsrCalibs:
    """Bias, dark and flat rescaled, amplifier by amplifier, to the gains this ISR applies.

    The cp pipeline converts its bias, dark and flat frames with the camera's nominal gains;
    ISR with ``use_ptc`` converts the science frame with the photon-transfer gains.  A flat made
    with gains ``g_c`` and applied to an image converted with ``g`` leaves each amplifier off
    by ``g / g_c`` (the flat only cancels the gains it was made with); bias and dark (electrons)
    are off by the same factor.  Calibrations that record their gains (``ISR_GAIN_<amp>``) are
    rescaled by ``g / g_c``; others are used as they are.
    """
    gains = np.asarray(calibs.gains if calibs.gains is not None else [a.gain for a in detector.amplifiers],
                       float)
    for name in ("bias", "dark", "flat"):
        calib = getattr(calibs, name)
        made = recorded_gains(getattr(calib, "metadata", None), detector)
        if made is None or np.allclose(made, gains, rtol=1e-7, atol=0.0):
            continue
        ratio = gains / made
        scaled = calib.copy()
        for amp, r in zip(detector.amplifiers, ratio, strict=True):
            box = amp.bbox.slices()
            scaled.image[box] *= np.float32(r)
            scaled.variance[box] *= np.float32(r * r)
        record_gains(scaled.metadata, detector, gains)
        _log.info("isr %s: %s rescaled to the applied gains (ratio %.4f .. %.4f)", data_id, name,
                  ratio.min(), ratio.max())
        setattr(calibs, name, scaled)
    return calibs


class IsrTask(Task):
    """Instrument signature removal of one raw detector with certified calibrations."""

    dimensions = EXP_DET
    inputs = {"raw": Input("raw", EXP_DET, "RawFits", doc="raw detector frame")}
    outputs = {"post_isr": Output("post_isr", EXP_DET, "Exposure", doc="calibrated detector image")}
    config_class = IsrTaskConfig
    #: Name of the output connection holding the result.
    output_name = "post_isr"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.prerequisites = calibration_prerequisites(self.config)
        if self.config.raw_where:
            self.inputs = {"raw": Input("raw", EXP_DET, "RawFits", doc="raw detector frame",
                                        where=self.config.raw_where)}

    def _steps_available(self, inputs: dict[str, Any],
                         data_id: dict[str, Any]) -> tuple[IsrConfig, list[str]]:
        """The ISR config with the steps whose optional calibration is absent switched off."""
        off = [n for n, flag in STEP_CALIBRATIONS.items()
               if getattr(self.config.isr, flag) and inputs.get(n) is None]
        for name in off:
            _log.info("isr %s: no %s calibration; %s switched off", data_id, name, STEP_CALIBRATIONS[name])
        cfg = dataclasses.replace(self.config.isr, **{STEP_CALIBRATIONS[n]: False for n in off})
        if self.config.use_ptc and inputs.get("ptc") is None:
            _log.info("isr %s: no ptc calibration; nominal gains and read noise used", data_id)
            off.append("ptc")
        return cfg, off

    def run_quantum(self, inputs: dict[str, Any], data_id: dict[str, Any]) -> dict[str, Any]:
        """Read the exposure times from the raw's header, apply the calibrations, tag the result.

        The raw's primary-header WCS, when it has one, becomes the initial WCS of ``post_isr``.
        """
        raw = inputs["raw"]
        _, det, info = raw_context(raw, data_id)
        calibs = isr_calibs_from(inputs, det, data_id)
        if self.config.isr.do_gain:
            calibs = match_calibration_gains(calibs, det, data_id)
        cfg, off = self._steps_available(inputs, data_id)
        exp = run_isr(raw, det, calibs, cfg, exposure_time=float(info.exposure_time or 0.0),
                      dark_time=info.dark_time, data_id=data_id)
        bad = ~np.isfinite(exp.image)
        if bad.any():
            raise FormatError(f"raw {data_id}: ISR produced {int(bad.sum())} NaN pixels; check the "
                              f"calibrations (a flat with zeros?)")
        exp.visit_info = visit_info_from(info)
        if exp.wcs is None:
            # the camera's approximate pointing WCS (simulated and many real raws carry one in the
            # primary header): calibration refines it against the reference catalog
            exp.wcs = header_wcs(raw[0].header)
            if exp.wcs is None:
                _log.info("isr %s: the raw has no header WCS; calibration needs a blind solve", data_id)
        md = exp.metadata
        md["OBSTYPE"] = (str(info.observation_type), "observation type of the raw")
        md["EXPTIME"] = (float(info.exposure_time or 0.0), "exposure time, s")
        md["DARKTIME"] = (float(info.dark_time if info.dark_time is not None else 0.0), "dark time, s")
        md["FILTER"] = (str(info.physical_filter), "physical filter")
        for name in (*STEP_CALIBRATIONS, "ptc"):
            on = name == "ptc" or getattr(cfg, STEP_CALIBRATIONS[name])
            applied = inputs.get(name) is not None and on
            md[f"HIERARCH ISR_{name.upper()}"] = (bool(applied), f"{name} calibration applied")
        md["HIERARCH ISR_OFF"] = (",".join(off), "steps switched off: calibration absent")
        md["HIERARCH ISR_DATA_ID"] = str({k: data_id[k] for k in EXP_DET})
        if cfg.do_gain:
            record_gains(md, det, np.asarray(calibs.gains if calibs.gains is not None else
                                             [a.gain for a in det.amplifiers], float))
        return {self.output_name: exp}

    def run(self, **inputs: Any) -> dict[str, Any]:
        """Not used: the task needs the data ID (see `run_quantum`)."""
        raise NotImplementedError("IsrTask runs through run_quantum(inputs, data_id)")


def with_isr(config: IsrTaskConfig, **flags: Any) -> IsrTaskConfig:
    """A copy of ``config`` with ISR flags replaced (helper for task subclasses)."""
    return dataclasses.replace(config, isr=dataclasses.replace(config.isr, **flags))

"""Small example tasks: documentation, tests and the framework benchmark use them.

They work on ``Json`` datasets holding ``{"value": float}`` so runs are fast and results can
be checked by hand.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pachon.core.errors import NoWorkFound
from pachon.pipe.task import Input, Output, PrerequisiteInput, Task

__all__ = ["ScaleConfig", "ScaleTask", "SumTask", "NoOpTask", "DebiasConfig", "DebiasTask", "GatherConfig",
           "GatherTask"]

_DETECTOR = ("instrument", "exposure", "detector")


@dataclass
class ScaleConfig:
    """Configuration of `ScaleTask`."""

    #: Multiply the input value by this.
    factor: float = 2.0
    #: Input values that make the task raise ``ValueError`` (to exercise failure handling).
    fail_on: list[float] = field(default_factory=list)
    #: Seconds to sleep per quantum (to exercise interruption).
    sleep_s: float = 0.0


class ScaleTask(Task):
    """``scaled = factor * toy_input`` per exposure and detector."""

    dimensions = _DETECTOR
    inputs = {"data": Input("toy_input", _DETECTOR, "Json")}
    outputs = {"scaled": Output("toy_scaled", _DETECTOR, "Json")}
    config_class = ScaleConfig

    def run(self, data: dict[str, Any]) -> dict[str, Any]:
        """Scale ``data["value"]``."""
        if self.config.sleep_s:
            time.sleep(self.config.sleep_s)
        if data["value"] in self.config.fail_on:
            raise ValueError(f"value {data['value']} is configured to fail")
        return {"scaled": {"value": self.config.factor * data["value"]}}


class SumTask(Task):
    """Sum of the scaled values of every detector of an exposure (a gather)."""

    dimensions = ("instrument", "exposure")
    inputs = {"scaled": Input("toy_scaled", _DETECTOR, "Json", multiple=True)}
    outputs = {"total": Output("toy_total", ("instrument", "exposure"), "Json")}

    def run(self, scaled: list[dict[str, Any]]) -> dict[str, Any]:
        """Add the values up."""
        return {"total": {"value": sum(s["value"] for s in scaled), "n": len(scaled)}}


class NoOpTask(Task):
    """Writes an empty record per exposure and detector (framework overhead benchmark)."""

    dimensions = _DETECTOR
    outputs = {"out": Output("toy_noop", _DETECTOR, "Json")}

    def run(self) -> dict[str, Any]:
        """Nothing to compute."""
        return {"out": {}}


@dataclass
class DebiasConfig:
    """Configuration of `DebiasTask`: how its bias prerequisite is declared."""

    #: Dataset type of the bias (a calibration type with dimensions instrument, detector).
    bias_type: str = "toy_bias"
    #: Run without a bias (the task then subtracts nothing) instead of failing.
    optional: bool = False
    #: Policy for a missing bias when not optional: "fail" (default for calibrations) or "drop".
    missing: str | None = None


class DebiasTask(Task):
    """``toy_input - bias`` with the bias found as a calibration valid at the exposure time."""

    dimensions = _DETECTOR
    inputs = {"data": Input("toy_input", _DETECTOR, "Json")}
    prerequisites = {"bias": PrerequisiteInput("toy_bias", ("instrument", "detector"), "Json",
                                               lookup="calibration")}
    outputs = {"debiased": Output("toy_debiased", _DETECTOR, "Json")}
    config_class = DebiasConfig

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        self.prerequisites = {"bias": PrerequisiteInput(c.bias_type, ("instrument", "detector"), "Json",
                                                        lookup="calibration", optional=c.optional,
                                                        missing=c.missing)}

    def run(self, data: dict[str, Any], bias: dict[str, Any] | None) -> dict[str, Any]:
        """Subtract the bias value (nothing when an optional bias is absent)."""
        return {"debiased": {"value": data["value"] - (bias["value"] if bias is not None else 0.0),
                             "bias_applied": bias is not None}}


@dataclass
class GatherConfig:
    """Configuration of `GatherTask`."""

    #: Per-input filter on the gathered ``toy_input`` (e.g. ``exposure.observation_type = 'flat'``).
    where: str | None = None
    #: Dataset type written.
    output_type: str = "toy_gathered"
    #: Register the output as a calibration type (certifiable as written).
    is_calibration: bool = False
    #: Time rule of an optional ``toy_bias`` calibration subtracted from each value (None: no bias).
    bias_time: str | None = None
    #: Detectors for which the task finds no work (raises `NoWorkFound`; to exercise that path).
    no_work_detectors: list[int] = field(default_factory=list)


class GatherTask(Task):
    """Per detector: sum of the selected ``toy_input`` values (minus a bias) and their count."""

    dimensions = ("instrument", "detector")
    config_class = GatherConfig

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        self.inputs = {"data": Input("toy_input", _DETECTOR, "Json", multiple=True, where=c.where)}
        self.outputs = {"total": Output(c.output_type, self.dimensions, "Json",
                                        is_calibration=c.is_calibration)}
        self.prerequisites = {} if c.bias_time is None else {
            "bias": PrerequisiteInput("toy_bias", ("instrument", "detector"), "Json", lookup="calibration",
                                      time=c.bias_time)}

    def run_quantum(self, inputs: dict[str, Any], data_id: dict[str, Any]) -> dict[str, Any]:
        """Raise `NoWorkFound` for the configured detectors, else `run`."""
        if data_id.get("detector") in self.config.no_work_detectors:
            raise NoWorkFound(f"detector {data_id['detector']} configured to have no work")
        return super().run_quantum(inputs, data_id)

    def run(self, data: list[dict[str, Any]], bias: dict[str, Any] | None = None) -> dict[str, Any]:
        """Sum the values."""
        b = bias["value"] if bias is not None else 0.0
        return {"total": {"value": sum(d["value"] - b for d in data), "n": len(data)}}

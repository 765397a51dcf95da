"""Pipeline YAML loading, validation, subsets and the dataset-type graph."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from pachon.core.errors import ConfigError
from pachon.pipe import Input, Output, Pipeline, Task
from pachon.pipe.config import config_hash, make_config
from pachon.pipe.examples import ScaleConfig, ScaleTask, SumTask
from pachon.pipe.show import format_pipeline


def test_load_order_config_and_graph(pipeline_file: Path) -> None:
    pipe = Pipeline.from_yaml(pipeline_file)
    assert [t.label for t in pipe.ordered()] == ["scale", "total"]
    assert pipe.task_defs["scale"].config.factor == 3.0
    assert pipe.task_defs["total"].task_class is SumTask
    assert pipe.overall_inputs() == ["toy_input"]
    assert pipe.producers["toy_scaled"] == "scale" and pipe.consumers["toy_scaled"] == ["total"]
    assert {s.name for s in pipe.output_types()} == {"toy_scaled", "toy_total", "scale_metadata",
                                                     "scale_failure", "total_metadata", "total_failure"}
    text = format_pipeline(pipe)
    assert re.search(r"toy_scaled +\{instrument, detector, exposure\}  Json  scale -> total", text)
    assert "in   scaled: toy_scaled [gather]" in text


def test_subset(pipeline_file: Path) -> None:
    pipe = Pipeline.from_yaml(f"{pipeline_file}#first")
    assert list(pipe.task_defs) == ["scale"]
    with pytest.raises(ConfigError, match="no subset or task named 'nope'"):
        Pipeline.from_yaml(f"{pipeline_file}#nope")


def test_errors_name_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  scale:\n    class: pachon.pipe.examples.ScaleTask\n    config: {factr: 2}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: tasks.scale.config: unknown config key 'factr'"):
        Pipeline.from_yaml(bad)
    bad.write_text("tasks:\n  scale:\n    class: pachon.pipe.examples.ScaleTask\n    config: {factor: abc}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: tasks.scale.config: invalid value for 'factor'"):
        Pipeline.from_yaml(bad)
    bad.write_text("tasks:\n  x:\n    class: pachon.pipe.examples.Nope\n")
    with pytest.raises(ConfigError, match=r"tasks.x.class: 'pachon.pipe.examples.Nope' is not a"):
        Pipeline.from_yaml(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        Pipeline.from_yaml(tmp_path / "missing.yaml")


class _Loop(Task):
    dimensions = ("instrument", "exposure")
    inputs = {"a": Input("loop_b", ("instrument", "exposure"), "Json")}
    outputs = {"b": Output("loop_a", ("instrument", "exposure"), "Json")}

    def run(self, a: dict) -> dict:
        return {"b": a}


class _Loop2(_Loop):
    inputs = {"a": Input("loop_a", ("instrument", "exposure"), "Json")}
    outputs = {"b": Output("loop_b", ("instrument", "exposure"), "Json")}


class _BadArg(Task):
    dimensions = ("instrument", "exposure")
    inputs = {"dta": Input("toy_input", ("instrument", "exposure"), "Json")}

    def run(self, data: dict) -> dict:
        return {}


def test_cycle_and_declaration_errors() -> None:
    with pytest.raises(ConfigError, match="cycle"):
        Pipeline.from_dict({"tasks": {"a": f"{__name__}._Loop", "b": f"{__name__}._Loop2"}})
    with pytest.raises(ConfigError, match="input 'dta' is not an argument of run"):
        Pipeline.from_dict({"tasks": {"a": f"{__name__}._BadArg"}})
    with pytest.raises(ConfigError, match="written by both"):
        Pipeline.from_dict({"tasks": {"a": "pachon.pipe.examples.ScaleTask",
                                      "b": "pachon.pipe.examples.ScaleTask"}})


@dataclass
class _Nested:
    inner: ScaleConfig
    name: str = "x"


def test_config_overrides_and_hash() -> None:
    cfg = make_config(ScaleConfig, {"factor": 5, "fail_on": [1.0]})
    assert cfg == ScaleConfig(factor=5.0, fail_on=[1.0])
    assert config_hash("a.B", cfg) == config_hash("a.B", ScaleConfig(factor=5.0, fail_on=[1.0]))
    assert config_hash("a.B", cfg) != config_hash("a.B", ScaleConfig())
    assert ScaleTask(cfg).run({"value": 2.0}) == {"scaled": {"value": 10.0}}
    with pytest.raises(ConfigError, match="unknown config key 'nope'"):
        make_config(ScaleConfig, {"nope": 1})

"""Pipelines: a YAML list of labelled tasks with config overrides and named subsets.

Format::

    description: Toy pipeline
    tasks:
      scale:
        class: pachon.pipe.examples.ScaleTask
        config: {factor: 3.0}
      total: pachon.pipe.examples.SumTask      # short form, default config
    subsets:
      first: [scale]                            # or {subset: [scale], description: ...}

``Pipeline.from_yaml("pipe.yaml#first")`` loads a subset.  Every task also writes a
``<label>_metadata`` record per quantum (and ``<label>_failure`` when it fails).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pachon.core.errors import ConfigError
from pachon.pipe.config import config_hash, make_config
from pachon.pipe.task import Input, Output, PrerequisiteInput, Task, import_task_class
from pachon.repo.dimensions import implied_dimensions, normalize_dimensions

__all__ = ["TaskDef", "Pipeline", "DatasetTypeSpec", "metadata_type", "failure_type"]

_log = logging.getLogger(__name__)


def metadata_type(label: str) -> str:
    """Name of the per-quantum metadata dataset type of task ``label``."""
    return f"{label}_metadata"


def failure_type(label: str) -> str:
    """Name of the per-quantum failure record dataset type of task ``label``."""
    return f"{label}_failure"


@dataclass(frozen=True)
class DatasetTypeSpec:
    """A dataset type as the pipeline declares it."""

    name: str
    dimensions: tuple[str, ...]
    storage_class: str
    #: Registered as a calibration type (an `Output` with ``is_calibration=True`` or a dataset
    #: made here and read by a ``lookup="calibration"`` prerequisite).
    is_calibration: bool = False


@dataclass
class TaskDef:
    """One labelled task of a pipeline with its validated configuration."""

    label: str
    class_path: str
    task_class: type[Task]
    config: Any
    config_hash: str
    task: Task = field(repr=False)

    @property
    def dimensions(self) -> tuple[str, ...]:
        """Normalized quantum dimensions."""
        return normalize_dimensions(tuple(self.task.dimensions))

    @property
    def quantum_keys(self) -> set[str]:
        """Data-ID keys known for a quantum: its dimensions and those they imply."""
        dims = self.dimensions
        return set(dims) | set(implied_dimensions(dims))

    def connections(self) -> dict[str, Input | Output]:
        """Every declared connection by name."""
        return {**self.task.inputs, **self.task.prerequisites, **self.task.outputs}


def _task_def(label: str, entry: Any, where: str) -> TaskDef:
    if isinstance(entry, str):
        entry = {"class": entry}
    if not isinstance(entry, dict) or "class" not in entry:
        raise ConfigError(f"{where}: tasks.{label} needs a 'class' key with the task's import path")
    unknown = set(entry) - {"class", "config", "description"}
    if unknown:
        raise ConfigError(f"{where}: tasks.{label} has unknown key {sorted(unknown)[0]!r}; allowed: class, "
                          f"config, description")
    cls = import_task_class(str(entry["class"]), source=f"{where}: tasks.{label}.class")
    config = make_config(cls.config_class, entry.get("config") or {}, where=f"{where}: tasks.{label}.config")
    task = cls(config)
    cls.check_declarations(label, task)
    return TaskDef(label, str(entry["class"]), cls, config, config_hash(str(entry["class"]), config), task)


class Pipeline:
    """An ordered set of labelled tasks.

    Parameters
    ----------
    task_defs
        The tasks (any order; `ordered` sorts them by data flow).
    description
        Free text.
    subsets
        Subset name → labels.
    source
        File it came from, for messages.

    Raises
    ------
    ConfigError
        Inconsistent dataset type definitions, a dataset type made twice, a cycle, or an
        input/output whose dimensions do not fit the task's quanta.
    """

    def __init__(self, task_defs: list[TaskDef], *, description: str = "",
                 subsets: dict[str, list[str]] | None = None, source: str = "pipeline") -> None:
        self.description = description
        self.source = source
        self.task_defs = {t.label: t for t in task_defs}
        self.subsets = dict(subsets or {})
        for name, labels in self.subsets.items():
            bad = [lb for lb in labels if lb not in self.task_defs]
            if bad:
                raise ConfigError(f"{source}: subsets.{name} names unknown task {bad[0]!r}; tasks: "
                                  f"{', '.join(self.task_defs)}")
        self.dataset_types: dict[str, DatasetTypeSpec] = {}
        self.producers: dict[str, str] = {}
        self.consumers: dict[str, list[str]] = {}
        self._analyse()
        self._order = self._toposort()

    # -- loading --------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | Path) -> Pipeline:
        """Load ``file.yaml`` or ``file.yaml#subset``.

        Raises
        ------
        ConfigError
            Missing file, bad YAML or any problem of `from_dict`.
        """
        import yaml

        text_path, _, subset = str(path).partition("#")
        p = Path(text_path)
        if not p.is_file():
            raise ConfigError(f"pipeline file {p} does not exist")
        try:
            data = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
        pipe = cls.from_dict(data, source=str(p))
        return pipe.subset(subset) if subset else pipe

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "pipeline") -> Pipeline:
        """Build a pipeline from the parsed YAML mapping (see the module docstring)."""
        if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict) or not data["tasks"]:
            raise ConfigError(f"{source}: a pipeline needs a 'tasks' mapping of label -> class")
        unknown = set(data) - {"description", "tasks", "subsets", "instrument"}
        if unknown:
            raise ConfigError(f"{source}: unknown top-level key {sorted(unknown)[0]!r}; allowed: "
                              f"description, "
                              f"tasks, subsets, instrument")
        defs = [_task_def(str(label), entry, source) for label, entry in data["tasks"].items()]
        subsets: dict[str, list[str]] = {}
        for name, entry in (data.get("subsets") or {}).items():
            labels = entry.get("subset") if isinstance(entry, dict) else entry
            if not isinstance(labels, list):
                raise ConfigError(f"{source}: subsets.{name} must be a list of task labels")
            subsets[str(name)] = [str(x) for x in labels]
        return cls(defs, description=str(data.get("description") or ""), subsets=subsets, source=source)

    def subset(self, name: str) -> Pipeline:
        """The pipeline restricted to subset ``name`` (a task label works too)."""
        if name in self.subsets:
            labels = self.subsets[name]
        elif name in self.task_defs:
            labels = [name]
        else:
            raise ConfigError(f"{self.source}: no subset or task named {name!r}; subsets: "
                              f"{', '.join(self.subsets) or '(none)'}")
        return Pipeline([self.task_defs[lb] for lb in labels], description=self.description,
                        source=f"{self.source}#{name}")

    # -- analysis -------------------------------------------------------------------------
    def _declare(self, label: str, conn_name: str, conn: Input | Output) -> None:
        calib = bool(getattr(conn, "is_calibration", False)) or getattr(conn, "lookup", None) == "calibration"
        spec = DatasetTypeSpec(conn.dataset_type, normalize_dimensions(tuple(conn.dimensions)),
                               conn.storage_class, calib)
        old = self.dataset_types.setdefault(spec.name, spec)
        if calib and not old.is_calibration:
            old = self.dataset_types[spec.name] = DatasetTypeSpec(old.name, old.dimensions, old.storage_class,
                                                                  True)
        if (old.dimensions, old.storage_class) != (spec.dimensions, spec.storage_class):
            raise ConfigError(f"{self.source}: task {label!r} ({conn_name}) declares dataset type "
                              f"{spec.name!r} "
                              f"as {spec.dimensions}/{spec.storage_class} but it is {old.dimensions}/"
                              f"{old.storage_class} elsewhere; make the declarations agree")

    def _analyse(self) -> None:
        for label, tdef in self.task_defs.items():
            keys = tdef.quantum_keys
            for name, out in tdef.task.outputs.items():
                self._declare(label, name, out)
                if out.dataset_type in self.producers:
                    raise ConfigError(f"{self.source}: dataset type {out.dataset_type!r} is written by both "
                                      f"{self.producers[out.dataset_type]!r} and {label!r}")
                self.producers[out.dataset_type] = label
                extra = set(self.dataset_types[out.dataset_type].dimensions) - keys
                if extra:
                    dims = ", ".join(tdef.dimensions)
                    raise ConfigError(f"{self.source}: task {label!r} output {name!r} has dimension "
                                      f"{sorted(extra)[0]!r} that its quanta ({dims}) lack")
            for kind in (metadata_type(label), failure_type(label)):
                self._declare(label, kind, Output(kind, tdef.dimensions, "Json"))
            for name, inp in {**tdef.task.inputs, **tdef.task.prerequisites}.items():
                self._declare(label, name, inp)
                extra = set(self.dataset_types[inp.dataset_type].dimensions) - keys
                lookup = getattr(inp, "lookup", "data_id")
                if extra and not inp.multiple and lookup != "region":
                    raise ConfigError(f"{self.source}: task {label!r} input {name!r} has dimension "
                                      f"{sorted(extra)[0]!r} beyond its quanta; set multiple=True to gather")
                if not isinstance(inp, PrerequisiteInput):
                    self.consumers.setdefault(inp.dataset_type, []).append(label)
        for label, tdef in self.task_defs.items():
            for pre in tdef.task.prerequisites.values():
                if pre.dataset_type in self.producers:
                    # made in this pipeline: taken from the producing quantum (see PrerequisiteInput)
                    self.consumers.setdefault(pre.dataset_type, []).append(label)

    def _dependencies(self, tdef: TaskDef) -> set[str]:
        conns = [*tdef.task.inputs.values(), *tdef.task.prerequisites.values()]
        return {self.producers[c.dataset_type] for c in conns if c.dataset_type in self.producers}

    def _toposort(self) -> list[str]:
        deps = {lb: self._dependencies(t) for lb, t in self.task_defs.items()}
        order: list[str] = []
        pending = dict(deps)
        while pending:
            ready = [lb for lb, d in pending.items() if not (d - set(order))]
            if not ready:
                raise ConfigError(f"{self.source}: tasks {', '.join(sorted(pending))} form a cycle of inputs "
                                  f"and outputs")
            for lb in ready:
                order.append(lb)
                del pending[lb]
        return order

    def ordered(self) -> list[TaskDef]:
        """Tasks in data-flow order (producers before consumers)."""
        return [self.task_defs[lb] for lb in self._order]

    def upstream_labels(self, label: str) -> set[str]:
        """Labels of the tasks whose outputs ``label`` reads (as inputs or prerequisites)."""
        return self._dependencies(self.task_defs[label])

    def overall_inputs(self) -> list[str]:
        """Dataset types read but not made by the pipeline (they must be in the input collections)."""
        return sorted(n for n in self.consumers if n not in self.producers)

    def prerequisite_types(self) -> list[str]:
        """Dataset types declared as prerequisites."""
        return sorted({p.dataset_type for t in self.task_defs.values()
                       for p in t.task.prerequisites.values()})

    def output_types(self) -> list[DatasetTypeSpec]:
        """Dataset types written by the pipeline (outputs, metadata and failure records)."""
        made = set(self.producers) | {f(lb) for lb in self.task_defs for f in (metadata_type, failure_type)}
        return [self.dataset_types[n] for n in sorted(made)]

    def __len__(self) -> int:
        return len(self.task_defs)

"""The `Task` base class and its declared inputs and outputs.

A task declares, in plain typed class attributes, the dimensions of its quanta, the datasets it
reads (`Input`), the datasets that must already exist such as calibrations or reference catalogs
(`PrerequisiteInput`) and the datasets it writes (`Output`).  The keys of ``inputs``,
``prerequisites`` and ``outputs`` are the keyword arguments of `Task.run` and the keys of the
mapping it returns; `pachon.pipe.pipeline.Pipeline` checks them against the signature of ``run``
when the pipeline is loaded, so a typo fails early with the task label and the name.

``run`` does no I/O: the framework (`pachon.pipe.quantum`) reads the inputs, calls ``run`` and
writes what it returns, so tests call ``run`` on plain objects.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pachon.core.errors import ConfigError

__all__ = ["Input", "PrerequisiteInput", "Output", "Task", "EmptyConfig", "TimeRule", "import_task_class"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Input:
    """A dataset a task reads, produced upstream in the pipeline or found in the input collections.

    Attributes
    ----------
    dataset_type
        Dataset type name.
    dimensions
        Dimensions of the dataset type.
    storage_class
        Storage class (``Json``, ``Numpy``, ``Exposure``, ``ArrowTable``...).
    multiple
        Pass a list of every matching dataset (a *gather*: e.g. all detectors of a visit to a
        per-visit task).  Needed when ``dimensions`` are not all dimensions of the quantum.
    doc
        One line for ``pachon pipeline show``.
    where
        Per-input filter over the dataset's data ID and dimension records, e.g.
        ``"exposure.observation_type = 'flat'"``: only matching datasets feed this input (on top
        of the run's ``where``), so one run can give bias frames to one task and flats to another.
    """

    dataset_type: str
    dimensions: tuple[str, ...]
    storage_class: str
    multiple: bool = False
    doc: str = ""
    where: str | None = None


#: How the validity time of a calibration lookup is chosen (see `PrerequisiteInput`).
TimeRule = Literal["quantum", "latest", "earliest", "midpoint", "any"]


@dataclass(frozen=True)
class PrerequisiteInput(Input):
    """A dataset that must exist in the input collections before the run starts.

    ``lookup`` says how it is found for a quantum: ``"data_id"`` (same values of its dimensions
    as the quantum), ``"calibration"`` (the certification valid at the quantum's exposure/visit
    time in CALIBRATION collections) or ``"region"`` (every dataset whose sky region overlaps
    the quantum's visit/exposure/tract/patch region, e.g. reference catalog shards; always a
    list).  When a task of the same pipeline writes the dataset type, the dataset predicted for
    the producing quantum is used instead (found by shared data-ID values), so a pipeline can
    make a calibration and use it in the same run; the input collections are searched when no
    quantum makes one for this data ID.

    Attributes
    ----------
    optional
        When not found, the task receives None (an empty list for ``multiple``/region
        prerequisites) and the quantum's metadata record lists it under ``missing_optional``.
    missing
        Policy for a required prerequisite that is not found: ``"fail"`` (the quantum runs and
        fails with a ``<label>_failure`` record naming the data ID and the missing dataset) or
        ``"drop"`` (the quantum is left out of the graph, logged).  None: ``"fail"`` for
        ``lookup="calibration"`` (an operator must see that a bias is missing), ``"drop"``
        otherwise.
    time
        Validity time of a calibration lookup: ``"quantum"`` (the quantum's exposure/visit
        mid-time), ``"latest"``, ``"earliest"`` or ``"midpoint"`` of the mid-times of the
        exposures/visits of the quantum's gathered inputs (for per-detector quanta), or
        ``"any"`` (the one certification of that data ID whatever its validity; ambiguous
        when several, which fails the quantum).
    """

    lookup: Literal["data_id", "calibration", "region"] = "data_id"
    optional: bool = False
    missing: Literal["fail", "drop"] | None = None
    time: TimeRule = "quantum"

    @property
    def on_missing(self) -> str:
        """``"none"`` (optional), ``"fail"`` or ``"drop"``: what happens when it is not found."""
        if self.optional:
            return "none"
        if self.missing is not None:
            return self.missing
        return "fail" if self.lookup == "calibration" else "drop"


@dataclass(frozen=True)
class Output:
    """A dataset a task writes; its dimensions must be among the quantum's (or implied by them).

    ``is_calibration`` registers the dataset type as a calibration type, so the datasets can be
    certified into a CALIBRATION collection as written (no copy).
    """

    dataset_type: str
    dimensions: tuple[str, ...]
    storage_class: str
    doc: str = ""
    is_calibration: bool = False


@dataclass(frozen=True)
class EmptyConfig:
    """Configuration of a task with nothing to configure."""


class Task:
    """Base class of pipeline tasks.

    Subclasses set the class attributes below and implement `run`.  Instances may replace
    ``inputs``/``outputs`` in ``__init__`` when they depend on the configuration.

    Parameters
    ----------
    config
        Instance of ``config_class``; its defaults when None.
    """

    #: Dimensions of one quantum (one call of ``run``), e.g. ``("instrument", "visit", "detector")``.
    dimensions: ClassVar[tuple[str, ...]] = ()
    inputs: Mapping[str, Input] = {}
    prerequisites: Mapping[str, PrerequisiteInput] = {}
    outputs: Mapping[str, Output] = {}
    #: A dataclass or pydantic model whose defaults work.
    config_class: ClassVar[type] = EmptyConfig

    def __init__(self, config: Any = None) -> None:
        self.config = self.config_class() if config is None else config
        if not isinstance(self.config, self.config_class):
            raise ConfigError(f"{type(self).__name__} needs a {self.config_class.__name__} config, "
                              f"got {type(self.config).__name__}")

    def run(self, **inputs: Any) -> Mapping[str, Any]:
        """Compute the outputs from the inputs (no I/O).

        Returns
        -------
        outputs
            Output name → object; None (or a missing name) for an output not made this time.
            Raise `pachon.core.errors.NoWorkFound` when there is nothing to do.
        """
        raise NotImplementedError(f"{type(self).__name__}.run is not implemented")

    def run_quantum(self, inputs: dict[str, Any], data_id: dict[str, Any]) -> Mapping[str, Any]:
        """Hook called by the framework: ``run(**inputs)`` unless a task needs the data ID too."""
        return self.run(**inputs)

    @classmethod
    def check_declarations(cls, label: str, instance: Task | None = None) -> None:
        """Check the declarations against ``run``'s signature (names the label and argument).

        Raises
        ------
        ConfigError
            An input is not an argument of ``run``, or a declaration is malformed.
        """
        me = instance if instance is not None else cls
        params = inspect.signature(cls.run).parameters
        var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        names = {**me.inputs, **me.prerequisites}
        for name, conn in names.items():
            if not isinstance(conn, Input):
                raise ConfigError(f"task {label!r}: input {name!r} must be an Input, got {conn!r}")
            _check_connection(label, name, conn)
            if not var_kw and name not in params and cls.run_quantum is Task.run_quantum:
                raise ConfigError(f"task {label!r} ({cls.__name__}): input {name!r} is not an argument of "
                                  f"run(); rename the input or the argument")
        for name, conn in me.outputs.items():
            if not isinstance(conn, Output):
                raise ConfigError(f"task {label!r}: output {name!r} must be an Output, got {conn!r}")
        required = [p.name for p in list(params.values())[1:] if p.default is inspect.Parameter.empty
                    and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
        missing = [r for r in required if r not in names]
        if missing and cls.run_quantum is Task.run_quantum:
            raise ConfigError(f"task {label!r} ({cls.__name__}): run() argument {missing[0]!r} is not a "
                              f"declared input; declare it or give it a default")


def _check_connection(label: str, name: str, conn: Input) -> None:
    if conn.where is not None and (not isinstance(conn.where, str) or not conn.where.strip()):
        raise ConfigError(f"task {label!r} input {name!r}: where must be a non-empty expression string, "
                          f"got {conn.where!r}")
    if not isinstance(conn, PrerequisiteInput):
        return
    if conn.where is not None and conn.lookup != "data_id":
        raise ConfigError(f"task {label!r} prerequisite {name!r}: where= is supported for Inputs and "
                          f"lookup='data_id' prerequisites only, not lookup={conn.lookup!r}")
    if conn.missing not in (None, "fail", "drop"):
        raise ConfigError(f"task {label!r} prerequisite {name!r}: missing must be 'fail' or 'drop', "
                          f"got {conn.missing!r}")
    if conn.time not in ("quantum", "latest", "earliest", "midpoint", "any"):
        raise ConfigError(f"task {label!r} prerequisite {name!r}: time must be one of quantum, latest, "
                          f"earliest, midpoint, any; got {conn.time!r}")
    if conn.time != "quantum" and conn.lookup != "calibration":
        raise ConfigError(f"task {label!r} prerequisite {name!r}: time={conn.time!r} needs "
                          f"lookup='calibration'")


def import_task_class(path: str, *, source: str = "pipeline") -> type[Task]:
    """Import ``package.module.ClassName`` and check it is a `Task` subclass.

    Raises
    ------
    ConfigError
        The path cannot be imported or is not a Task (the message names ``source``).
    """
    import importlib

    module_name, _, cls_name = path.rpartition(".")
    if not module_name:
        raise ConfigError(f"{source}: task class {path!r} must be a full import path such as "
                          f"'pachon.pipe.examples.ScaleTask'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{source}: cannot import module {module_name!r} of task class {path!r}: "
                          f"{exc}") from exc
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ConfigError(f"{source}: {path!r} is not a pachon.pipe.Task subclass")
    return cls


"""The pipeline framework: tasks with declared I/O, YAML pipelines, quantum graphs, executors.

Import the names below from here; executors live in `pachon.pipe.executors`.
"""

from __future__ import annotations

from pachon.pipe.graph import Quantum, QuantumGraph, build_quantum_graph
from pachon.pipe.pipeline import Pipeline, TaskDef
from pachon.pipe.report import RunReport
from pachon.pipe.runner import run_pipeline
from pachon.pipe.task import Input, Output, PrerequisiteInput, Task

__all__ = ["Task", "Input", "PrerequisiteInput", "Output", "Pipeline", "TaskDef", "Quantum", "QuantumGraph",
           "build_quantum_graph", "RunReport", "run_pipeline"]

"""Executors of quantum graphs: serial, local process pool and Dask distributed."""

from __future__ import annotations

from pachon.pipe.executors.base import Executor
from pachon.pipe.executors.pool import ProcessPoolExecutor
from pachon.pipe.executors.serial import SerialExecutor

__all__ = ["Executor", "SerialExecutor", "ProcessPoolExecutor", "DaskExecutor"]


def __getattr__(name: str) -> type:
    if name == "DaskExecutor":  # imported lazily: dask is an optional extra
        from pachon.pipe.executors.dask import DaskExecutor

        return DaskExecutor
    raise AttributeError(name)

"""The ``pachon`` command: a thin layer that parses arguments and calls the library."""

from __future__ import annotations

import importlib
import logging

import click

from pachon import __version__

__all__ = ["cli", "main"]

# Sub-command modules; each defines click commands/groups and a ``register(cli)`` function.
_COMMAND_MODULES = [
    "pachon.cli.repo_cmds",
    "pachon.cli.demo_cmd",
    "pachon.cli.sim_cmds",
    "pachon.cli.pipe_cmds",
    "pachon.cli.broker_cmds",
    "pachon.cli.serve_cmds",
    "pachon.cli.cp_cmds",
    "pachon.cli.prompt_cmds",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pachon")
@click.option("-v", "--verbose", count=True, help="More log output (-v INFO, -vv DEBUG).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def cli(verbose: int, quiet: bool) -> None:
    """Pachón: survey-telescope data management from raw frames to alerts and catalogs."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(cli)


_register_all()


def main() -> None:
    """Entry point of the console script."""
    cli(prog_name="pachon")

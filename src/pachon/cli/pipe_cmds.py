"""``pachon run`` and ``pachon pipeline show|list``: thin wrappers over `pachon.pipe`.

A pipeline is named by a YAML file path or by the name of a pipeline shipped with Pachón
(``ap``, ``cp``, ``diffim``, ``isr``), either optionally followed by ``#subset``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from pachon.cli.errors import handle_errors

__all__ = ["register", "run_cmd", "pipeline_group"]


def _split(values: tuple[str, ...]) -> list[str]:
    return [c for v in values for c in v.split(",") if c]


def shipped_pipelines() -> dict[str, Path]:
    """The pipeline definitions installed with Pachón, by name (file stem)."""
    folder = resources.files("pachon.pipelines")
    return {Path(e.name).stem: Path(str(e)) for e in folder.iterdir()
            if e.name.endswith(".yaml") and e.is_file()}


def resolve_pipeline(spec: str) -> str:
    """Turn ``NAME[#subset]`` of a shipped pipeline into its file path; paths pass unchanged.

    Parameters
    ----------
    spec : `str`
        ``FILE.yaml[#subset]`` or ``NAME[#subset]`` (a shipped pipeline).

    Returns
    -------
    spec : `str`
        The specification with a file path, for `pachon.pipe.Pipeline.from_yaml`.

    Raises
    ------
    click.BadParameter
        Neither an existing file nor a shipped pipeline's name.
    """
    name, sep, subset = spec.partition("#")
    if Path(name).is_file():
        return spec
    shipped = shipped_pipelines()
    if name in shipped:
        return f"{shipped[name]}{sep}{subset}"
    raise click.BadParameter(f"{name!r} is neither a pipeline file nor a shipped pipeline "
                             f"({', '.join(sorted(shipped))})", param_hint="PIPELINE")


@click.command("run")
@click.option("-p", "--pipeline", "pipeline", required=True, help="Pipeline YAML or shipped "
              "pipeline name (ap, cp, diffim, isr), optionally followed by #subset.")
@click.option("-b", "--butler", "--repo", "repo", required=True, type=click.Path(exists=True,
                                                                                 file_okay=False),
              help="Repository root.")
@click.option("-i", "--input", "inputs", multiple=True, required=True,
              help="Input collection(s), comma-separated or repeated, searched in order.")
@click.option("-o", "--output", default=None, help="CHAINED output collection: [new run, inputs...].")
@click.option("--output-run", default=None, help="Write into this RUN collection instead of a new one.")
@click.option("-d", "--where", default=None, help="Data selection, e.g. \"instrument='LSSTComCam' "
                                                  "AND visit > 100\".")
@click.option("-j", "--processes", default=1, show_default=True, type=int,
              help="Worker processes (1: in-process serial executor).")
@click.option("--dask", "dask_address", default=None,
              help="Run on Dask: a scheduler address (tcp://host:8786) or 'local' for a "
                   "LocalCluster of -j workers.")
@click.option("--skip-existing", is_flag=True, help="Resume: skip quanta already complete in the output run.")
@click.option("--clobber-failures", is_flag=True,
              help="Remove records of failed or interrupted quanta and run them again.")
@handle_errors
def run_cmd(pipeline: str, repo: str, inputs: tuple[str, ...], output: str | None, output_run: str | None,
            where: str | None, processes: int, dask_address: str | None, skip_existing: bool,
            clobber_failures: bool) -> None:
    """Build the quantum graph of PIPELINE over the selected data and execute it.

    Exits with status 1 when a quantum failed (failed and skipped quanta are listed).
    """
    from pachon.pipe import run_pipeline
    from pachon.pipe.executors import DaskExecutor, ProcessPoolExecutor, SerialExecutor

    if dask_address:
        executor = DaskExecutor(None if dask_address == "local" else dask_address,
                                n_workers=max(processes, 1))
    elif processes > 1:
        executor = ProcessPoolExecutor(processes)
    else:
        executor = SerialExecutor()
    report = run_pipeline(repo, resolve_pipeline(pipeline), inputs=_split(inputs), output=output,
                          output_run=output_run, where=where, executor=executor, skip_existing=skip_existing,
                          clobber_failures=clobber_failures)
    click.echo(report.summary())
    if not report.ok:
        raise click.exceptions.Exit(1)


@click.group("pipeline")
def pipeline_group() -> None:
    """Inspect pipeline definitions."""


@pipeline_group.command("show")
@click.argument("pipeline")
@handle_errors
def pipeline_show(pipeline: str) -> None:
    """Print the tasks and dataset-type graph of PIPELINE (FILE.yaml or NAME, optionally #subset)."""
    from pachon.pipe import Pipeline
    from pachon.pipe.show import format_pipeline

    click.echo(format_pipeline(Pipeline.from_yaml(resolve_pipeline(pipeline))))


@pipeline_group.command("list")
@handle_errors
def pipeline_list() -> None:
    """List the pipelines shipped with Pachón: name, subsets and description."""
    import yaml

    for name, path in sorted(shipped_pipelines().items()):
        data = yaml.safe_load(path.read_text()) or {}
        subsets = ", ".join(data.get("subsets") or {}) or "-"
        desc = " ".join(str(data.get("description") or "").split())
        click.echo(f"{name:8s} subsets: {subsets}\n         {desc}")


def register(cli: click.Group) -> None:
    """Add the pipeline commands to the ``pachon`` group."""
    cli.add_command(run_cmd)
    cli.add_command(pipeline_group)

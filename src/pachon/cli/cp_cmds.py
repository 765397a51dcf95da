"""``pachon cp certify``: promote calibration products of a cp run into a CALIBRATION collection."""

from __future__ import annotations

import click

from pachon.cli.errors import handle_errors

__all__ = ["register", "cp_group", "certify_cmd"]


@click.group("cp")
def cp_group() -> None:
    """Calibration products (run the cp pipeline with `pachon run -p cp.yaml#bias ...`)."""


@cp_group.command("certify")
@click.argument("repo", type=click.Path(exists=True, file_okay=False))
@click.argument("run")
@click.argument("calib_collection")
@click.option("--begin", default=None, help="Start of validity (ISO time, TAI); unbounded when absent.")
@click.option("--end", default=None, help="End of validity (ISO time, TAI); unbounded when absent.")
@handle_errors
def certify_cmd(repo: str, run: str, calib_collection: str, begin: str | None, end: str | None) -> None:
    """Certify the cp products of RUN (cpBias, cpDark, cpFlat, cpPtc...) into CALIB_COLLECTION."""
    from pachon.pipelines.cp_certify import certify_calibrations
    from pachon.repo import Repository

    with Repository(repo) as r:
        refs = certify_calibrations(r, run, calib_collection, begin, end)
    for ref in refs:
        click.echo(f"{ref.dataset_type} {ref.data_id}")
    click.echo(f"certified {len(refs)} calibrations into {calib_collection}")


def register(cli: click.Group) -> None:
    """Add the ``cp`` group to the ``pachon`` command."""
    cli.add_command(cp_group)

"""``pachon demo``: the main job on a laptop, with no downloads."""

from __future__ import annotations

from pathlib import Path

import click

from pachon.cli.errors import handle_errors

__all__ = ["demo", "register"]

_DEFAULT_REAL_DATA = Path("..") / "shared" / "data"


def _table(rows: list[dict], indent: str = "  ") -> None:
    if not rows:
        click.echo(f"{indent}(none)")
        return
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    click.echo(indent + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        click.echo(indent + "  ".join(str(r[c]).ljust(w) for c, w in zip(columns, widths, strict=True)))


@click.command("demo")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-out"),
    show_default=True,
    help="Output folder (replaced if an earlier demo made it).",
)
@click.option(
    "--visits", type=click.IntRange(min=1), default=6, show_default=True, help="Simulated science visits."
)
@click.option("--nights", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--real-data",
    type=click.Path(path_type=Path),
    default=_DEFAULT_REAL_DATA,
    show_default=True,
    help="Folder of real telescope data to ingest too (skipped when absent).",
)
@click.option("--registry-url", default=None, help="Registry URL (default: SQLite in the repository).")
@handle_errors
def demo(out: Path, visits: int, nights: int, seed: int, real_data: Path, registry_url: str | None) -> None:
    """Simulate a small night, ingest it (and real frames) into a repository, and report."""
    from pachon.pipelines.demo import DemoConfig, run_demo

    config = DemoConfig(
        out=out,
        visits=visits,
        nights=nights,
        seed=seed,
        real_data=real_data if real_data.is_dir() else None,
        registry_url=registry_url,
    )
    if config.real_data is None:
        click.echo(f"real data folder {real_data} not found: simulated data only")
    report = run_demo(config)
    click.echo(f"\nrepository: {report.repo_root}")
    click.echo("ingest:")
    for what, summary in report.ingest_summaries.items():
        click.echo(f"  {what}: {summary}")
    for path, reason in report.failures:
        click.echo(f"  FAILED {path}: {reason}")
    click.echo("exposures:")
    _table(report.exposures)
    click.echo("datasets:")
    _table(report.datasets)
    click.echo("check: " + ("every file matches its checksum" if report.check_ok else "PROBLEMS FOUND"))
    click.echo("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in report.timings.items()))
    click.echo(f"\nnext: pachon query datasets {report.repo_root} raw --where \"band = 'r'\"")
    if not report.check_ok or report.failures:
        raise click.exceptions.Exit(1)


def register(cli: click.Group) -> None:
    """Add ``demo`` to the root ``pachon`` group."""
    cli.add_command(demo)

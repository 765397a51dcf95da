"""``pachon demo``: the main job on a laptop, with no downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
@click.option("--detectors", default=None,
              help="Simulated detectors, e.g. 0,1 (default: all 4 of the test camera).")
@click.option("--ap/--no-ap", default=True, show_default=True,
              help="Run calibrations, templates (first night) and the AP chain on the later nights.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Detectors processed at once by the prompt service.")
@handle_errors
def demo(out: Path, visits: int, nights: int, seed: int, real_data: Path, registry_url: str | None,
         detectors: str | None, ap: bool, jobs: int) -> None:
    """Simulate a small survey, ingest it (and real frames), run the AP chain to alerts, and report."""
    from pachon.pipelines.demo import DemoConfig, run_demo

    alerts_dir = out.resolve() / "alerts"
    config = DemoConfig(
        out=out,
        visits=visits,
        nights=nights,
        seed=seed,
        real_data=real_data if real_data.is_dir() else None,
        registry_url=registry_url,
        detectors=tuple(int(d) for d in detectors.split(",")) if detectors else None,
        process=_prompt_step(alerts_dir, out.resolve() / "stream", jobs) if ap else None,
    )
    if ap and nights < 2:
        click.echo("AP skipped: it needs --nights 2 or more (the first night makes the templates)")
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
    if report.processed is not None:
        _print_prompt(report.processed, alerts_dir, out.resolve() / "stream")
    click.echo("check: " + ("every file matches its checksum" if report.check_ok else "PROBLEMS FOUND"))
    click.echo("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in report.timings.items()))
    click.echo(f"\nnext: pachon query datasets {report.repo_root} raw --where \"band = 'r'\"")
    if not report.check_ok or report.failures:
        raise click.exceptions.Exit(1)


def _prompt_step(alerts_dir: Path, stream: Path, jobs: int) -> Any:
    def process(repo: Any, since_ns: int) -> dict[str, Any]:
        from pachon.pipelines.demo import AP_OVERRIDES
        from pachon.services.prompt import PromptConfig, PromptService, export_alerts

        service = PromptService(PromptConfig(repo.root, stream_url=str(stream), workers=jobs, poll_s=0.5,
                                             overrides=AP_OVERRIDES, since_ns=since_ns))
        try:
            rows = service.run(once=True)
        finally:
            service.close()
        return {"rows": rows, "files": export_alerts(repo, rows, alerts_dir)}

    return process


def _print_prompt(processed: dict[str, Any], alerts_dir: Path, stream: Path) -> None:
    from pachon.cli.prompt_cmds import latency_lines
    from pachon.services.prompt import alert_summary, latency_path

    rows, files = processed["rows"], processed["files"]
    alerts = alert_summary(files)
    click.echo(f"alerts: {len(alerts)} packets from {len(rows)} detector-visits "
               f"({sum(r['status'] != 'succeeded' for r in rows)} failed)")
    shown = [{k: (f"{v:.6f}" if k in ("ra", "dec") else f"{v:.1f}" if isinstance(v, float) else v)
              for k, v in a.items()} for a in alerts[:5]]
    _table(shown)
    if len(alerts) > len(shown):
        click.echo(f"  ... and {len(alerts) - len(shown)} more")
    click.echo("latency per detector:")
    for line in latency_lines(rows):
        click.echo("  " + line)
    root = alerts_dir.parent
    click.echo(f"outputs: alert packets (Avro files) {alerts_dir}, alert stream (file log) {stream}, "
               f"latency table {latency_path(root / 'repo')}, APDB {root / 'repo' / 'apdb.sqlite3'}")


def register(cli: click.Group) -> None:
    """Add ``demo`` to the root ``pachon`` group."""
    cli.add_command(demo)

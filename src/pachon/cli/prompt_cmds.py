"""``pachon prompt``: the prompt-processing service (AP on each detector as its raw arrives)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pachon.cli.errors import handle_errors

if TYPE_CHECKING:
    from pachon.services.prompt import PromptConfig

__all__ = ["prompt", "register", "latency_lines"]


def latency_lines(rows: list[dict]) -> list[str]:
    """One line per detector: status, alerts, per-step and total latency."""
    from pachon.services.prompt import STEPS

    head = (f"{'exposure':>14} {'det':>4} {'status':>9} {'alerts':>6} "
            + " ".join(f"{s[:6]:>6}" for s in STEPS) + f" {'queue':>6} {'total':>6}  (seconds)")
    lines = [head]
    for r in sorted(rows, key=lambda r: (r["exposure"], r["detector"])):
        steps = " ".join(f"{r.get(f'{s}_s', float('nan')):6.2f}" for s in STEPS)
        line = (f"{r['exposure']:>14} {r['detector']:>4} {r['status']:>9} {r['n_alerts']:>6} {steps} "
                f"{r.get('queue_s', float('nan')):6.2f} {r.get('total_s', float('nan')):6.2f}")
        if r["status"] != "succeeded":
            line += f"  {r.get('failed_step')}: {r.get('error')}"
        lines.append(line)
    return lines


def _since_ns(since: str | None) -> int | None:
    from pachon.repo.butler import now_ns

    if since is None:
        return None
    if since == "now":
        return now_ns()
    from astropy.time import Time

    from pachon.core.errors import ConfigError

    try:
        # registry times are Unix ns + (TAI - UTC) (pachon.repo.butler.now_ns)
        return int(round(Time(since, scale="utc").unix * 1e9)) + (now_ns() - time.time_ns())
    except ValueError as exc:
        raise ConfigError(f"--since {since!r}: not an ISO-8601 time nor 'now' ({exc})") from None


@click.command("prompt")
@click.option("--repo", "repo", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Repository to watch.")
@click.option("--apdb", "apdb_url", default=None, help="APDB URL (default: SQLite REPO/apdb.sqlite3).")
@click.option("--stream", "stream_url", default=None,
              help="Alert stream: file-log folder or kafka://host:port (default: alerts as datasets only).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Detectors processed at once (worker processes when > 1).")
@click.option("--poll", "poll_s", type=float, default=2.0, show_default=True, help="Seconds between polls.")
@click.option("--once", is_flag=True, help="Process the raws present now, then exit.")
@click.option("--since", default=None,
              help="Only raws ingested at or after this time: ISO-8601 UTC, or 'now' (default: all).")
@click.option("--listen", default=None, metavar="HOST:PORT",
              help="Instead of watching, serve the 'next visit' endpoints (/prompt) at HOST:PORT.")
@click.option("--raw-timeout", "raw_timeout_s", type=float, default=600.0, show_default=True,
              help="With --listen: seconds after an announced exposure's end to give up waiting for a raw.")
@handle_errors
def prompt(repo: Path, apdb_url: str | None, stream_url: str | None, jobs: int, poll_s: float,
           once: bool, since: str | None, listen: str | None, raw_timeout_s: float) -> None:
    """Run the AP pipeline on each new science raw; latency to REPO/prompt/latency.parquet."""
    from pachon.services.prompt import PromptConfig, PromptService, latency_path

    if listen is not None:
        _listen(PromptConfig(repo, apdb_url=apdb_url, stream_url=stream_url, workers=jobs, poll_s=poll_s),
                listen, raw_timeout_s)
        return
    service = PromptService(PromptConfig(repo, apdb_url=apdb_url, stream_url=stream_url, workers=jobs,
                                         poll_s=poll_s, since_ns=_since_ns(since)))
    try:
        rows = service.run(once=once)
    except KeyboardInterrupt:
        service.stop()
        rows = []
    finally:
        service.close()
    failed = sum(r["status"] != "succeeded" for r in rows)
    click.echo(f"{len(rows)} detectors processed ({failed} failed), "
               f"{sum(r['n_alerts'] for r in rows)} alerts; latency table {latency_path(repo)}")
    if rows:
        click.echo("\n".join(latency_lines(rows)))


def _listen(config: PromptConfig, listen: str, raw_timeout_s: float) -> None:
    """Serve the application with the /prompt endpoints configured by ``config``."""
    import uvicorn

    from pachon.core.errors import ConfigError
    from pachon.services.app import create_app
    from pachon.services.prompt.routes import configure
    from pachon.services.settings import ServiceSettings

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--listen {listen!r}: give HOST:PORT, e.g. 127.0.0.1:8090")
    app = create_app(ServiceSettings(repo=config.repo, apdb_url=config.apdb_url))
    configure(app, config, raw_timeout_s=raw_timeout_s)
    click.echo(f"prompt service for {config.repo}: POST http://{listen}/prompt/next-visit")
    uvicorn.run(app, host=host, port=int(port), log_level="info")


def register(cli: click.Group) -> None:
    """Add ``prompt`` to the root ``pachon`` group."""
    cli.add_command(prompt)

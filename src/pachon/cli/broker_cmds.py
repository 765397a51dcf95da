"""``pachon broker replay|live`` and ``pachon stream publish``: thin wrappers."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

__all__ = ["broker", "stream", "register"]

log = logging.getLogger(__name__)


def _filter_options(func):  # noqa: ANN001, ANN202 - click decorator plumbing
    func = click.option("--where", default=None,
                        help="SQL WHERE over the alert, e.g. 'diaSource.snr > 10'.")(func)
    func = click.option("--function", "functions", multiple=True,
                        help="Python filter 'module:func' or 'file.py:func' (repeatable).")(func)
    func = click.option("--catalog", type=click.Path(exists=True, dir_okay=False), default=None,
                        help="CSV/Parquet catalog with ra, dec (deg) to cross-match.")(func)
    func = click.option("--radius", default=1.0, show_default=True, help="Cross-match radius, arcsec.")(func)
    func = click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
                        help="Output folder (alerts/, summary.parquet, quarantine/).")(func)
    return func


def _make_broker(out_dir: str, where: str | None, functions: tuple[str, ...], catalog: str | None,
                 radius: float, **kwargs: object):  # noqa: ANN202
    from pachon.alerts.broker import Broker, load_python_filter
    from pachon.core.errors import PachonError

    try:
        funcs = [load_python_filter(spec) for spec in functions]
        return Broker(out_dir, where=where, functions=funcs, catalog=catalog, radius_arcsec=radius, **kwargs)
    except PachonError as exc:
        raise click.UsageError(str(exc)) from None


def _report(stats: object, out_dir: str) -> None:
    summary = stats.as_dict()  # type: ignore[attr-defined]
    click.echo(json.dumps(summary))
    if summary["quarantined"]:
        click.echo(f"{summary['quarantined']} bad packets quarantined in {Path(out_dir) / 'quarantine'} "
                   "(reasons.jsonl says why)", err=True)


@click.group()
def broker() -> None:
    """Mini alert broker: filter a live stream or replay alert files."""


@broker.command("replay")
@click.argument("source", type=click.Path(exists=True))
@_filter_options
@click.option("--speedup", type=float, default=None,
              help="Replay at the original cadence divided by this (default: as fast as possible).")
def replay_cmd(source: str, where: str | None, functions: tuple[str, ...], catalog: str | None,
               radius: float, out_dir: str, speedup: float | None) -> None:
    """Replay SOURCE (an alert file, a folder of them, or a file log) through a filter."""
    from pachon.alerts.broker import replay

    brk = _make_broker(out_dir, where, functions, catalog, radius)
    _report(replay(source, brk, speedup=speedup), out_dir)


@broker.command("live")
@click.argument("source")
@_filter_options
@click.option("--group", default="pachon-broker", show_default=True, help="Consumer group.")
@click.option("--topic", "topics", multiple=True, help="Topic to follow (required for Kafka).")
@click.option("--max-messages", type=int, default=None, help="Stop after this many packets.")
@click.option("--idle-timeout", type=float, default=None, help="Stop after this many idle seconds.")
@click.option("--output-stream", default=None, help="File log folder or kafka://host:port to re-publish to.")
@click.option("--output-topic", default="filtered", show_default=True)
@click.option("--membership", type=click.Choice(["group", "all"]), default="group", show_default=True,
              help="Kafka: 'group' shares the topics' partitions with the other members of GROUP "
                   "(a stopped member's partitions go to the others); 'all' reads every partition "
                   "in this one process.")
def live_cmd(source: str, where: str | None, functions: tuple[str, ...], catalog: str | None, radius: float,
             out_dir: str, group: str, topics: tuple[str, ...], max_messages: int | None,
             idle_timeout: float | None, output_stream: str | None, output_topic: str,
             membership: str) -> None:
    """Follow SOURCE (a file log folder or kafka://host:port) as a member of consumer group GROUP."""
    from pachon.alerts.broker import follow
    from pachon.alerts.stream import Deduplicator, open_consumer, open_publisher
    from pachon.core.errors import PachonError

    publisher = open_publisher(output_stream) if output_stream else None
    dedup = Deduplicator(Path(out_dir) / "seen_keys.txt")
    brk = _make_broker(out_dir, where, functions, catalog, radius, publisher=publisher,
                       out_topic=output_topic, dedup=dedup)
    try:
        consumer = open_consumer(source, group, list(topics) or None, membership=membership)
    except PachonError as exc:
        raise click.UsageError(str(exc)) from None
    _report(follow(consumer, brk, max_messages=max_messages, idle_timeout=idle_timeout), out_dir)


@click.group()
def stream() -> None:
    """Alert stream helpers (file log or Kafka)."""


@stream.command("publish")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.option("--to", "url", required=True, help="File log folder or kafka://host:port.")
@click.option("--topic", default="lsst-alerts", show_default=True)
def publish_cmd(files: tuple[str, ...], url: str, topic: str) -> None:
    """Publish Rubin alert FILES to a stream, one batch per file (wire format, keyed)."""
    from pachon.alerts import read_alert_file, serialize_alert
    from pachon.alerts.serialize import dia_source_id
    from pachon.alerts.stream import open_publisher, publish_batch

    pub = open_publisher(url)
    total = 0
    for file in files:
        items = [(str(dia_source_id(a)), serialize_alert(a, version=v, wire=True))
                 for a, v in read_alert_file(file)]
        total += publish_batch(pub, topic, Path(file).stem, items)
    pub.close()
    click.echo(f"published {total} alerts to {url} topic {topic}")


def register(cli: click.Group) -> None:
    """Add the ``broker`` and ``stream`` groups to the ``pachon`` command."""
    cli.add_command(broker)
    cli.add_command(stream)

"""``pachon repo``, ``pachon ingest``, ``pachon query`` and ``pachon collection`` commands."""

from __future__ import annotations

import click

from pachon.cli.errors import handle_errors

__all__ = ["register", "repo_group", "ingest", "query_group", "collection_group", "refcat_group"]


def _open(root: str):  # noqa: ANN202 - Repository, imported lazily
    from pachon.repo import Repository

    return Repository(root)


@click.group("repo")
def repo_group() -> None:
    """Create and check data repositories."""


@repo_group.command("create")
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--registry-url", default=None, help="SQLAlchemy URL (default: SQLite file in ROOT).")
@handle_errors
def repo_create(root: str, registry_url: str | None) -> None:
    """Create a repository in ROOT."""
    from pachon.repo import Repository

    repo = Repository.create(root, registry_url=registry_url)
    click.echo(f"created repository {repo.root} (registry {repo.config.registry_url})")


@repo_group.command("check")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.option("--fix", is_flag=True, help="Delete orphan files (unregistered, e.g. left by a crash).")
@handle_errors
def repo_check(root: str, fix: bool) -> None:
    """Verify every file of the repository at ROOT against its checksum."""
    report = _open(root).check(fix=fix)
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        raise click.exceptions.Exit(1)


@click.command("ingest")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--instrument", default=None, help="Instrument name or YAML definition (default: from headers)."
)
@click.option(
    "--transfer",
    default="copy",
    show_default=True,
    type=click.Choice(["copy", "hardlink", "symlink", "move", "direct"]),
)
@click.option("--run", default=None, help="RUN collection (default: <instrument>/raw/all).")
@handle_errors
def ingest(root: str, files: tuple[str, ...], instrument: str | None, transfer: str, run: str | None) -> None:
    """Ingest raw FITS FILES into the repository at ROOT."""
    report = _open(root).ingest_raws(files, instrument=instrument, transfer=transfer, run=run)
    for path, reason in report.failed:
        click.echo(f"FAILED {path}: {reason}", err=True)
    click.echo(report.summary())
    if report.failed:
        raise click.exceptions.Exit(1)


@click.group("query")
def query_group() -> None:
    """Query datasets, dimension records and collections."""


def _cell(column: str, value: object) -> str:
    """Show registry times (int ns TAI in ``datetime_*`` and ``timespan_*`` columns) as ISO TAI."""
    if isinstance(value, int) and column.startswith(("datetime_", "timespan_")):
        from pachon.repo.times import from_ns

        return from_ns(value).isot
    return "" if value is None else str(value)


def _table(rows: list[dict], columns: list[str]) -> None:
    if not rows:
        click.echo("(no results)")
        return
    cells = [[_cell(c, r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def _parse_bind(values: tuple[str, ...]) -> dict[str, object]:
    """``NAME=VALUE`` pairs; values that read as int or float become numbers."""
    out: dict[str, object] = {}
    for item in values:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--bind")
        value: object = text
        for kind in (int, float):
            try:
                value = kind(text)
                break
            except ValueError:
                continue
        out[name.strip()] = value
    return out


@query_group.command("datasets")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.argument("dataset_type")
@click.option("--collections", "-c", multiple=True, help="Collections to search (default: all RUNs).")
@click.option("--where", default=None, help="Expression over dimension values.")
@click.option(
    "--bind", multiple=True, metavar="NAME=VALUE", help="Value of :NAME in --where (repeatable)."
)
@handle_errors
def query_datasets(
    root: str, dataset_type: str, collections: tuple[str, ...], where: str | None, bind: tuple[str, ...]
) -> None:
    """List datasets of DATASET_TYPE."""
    repo = _open(root)
    colls = list(collections) or [n for n, _ in repo.registry.list_collections(types=["RUN"])]
    refs = repo.query_datasets(dataset_type, colls, where=where, bind=_parse_bind(bind) or None)
    dims = list(dict.fromkeys(k for r in refs for k in r.data_id))
    _table(
        [{"type": r.dataset_type, "run": r.run, "id": str(r.id), **r.data_id} for r in refs],
        ["type", "run", *dims, "id"],
    )


@query_group.command("dimensions")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.argument("element")
@click.option("--where", default=None, help="Expression over dimension values.")
@handle_errors
def query_dimensions(root: str, element: str, where: str | None) -> None:
    """List records of a dimension ELEMENT (exposure, detector, ...)."""
    rows = _open(root).query_dimension_records(element, where=where)
    columns = [c for c in (rows[0] if rows else {}) if c != "region"]
    _table(rows, columns)


@query_group.command("collections")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.argument("pattern", required=False)
@handle_errors
def query_collections(root: str, pattern: str | None) -> None:
    """List collections (optionally matching a glob PATTERN)."""
    _list_collections(root, pattern)


def _list_collections(root: str, pattern: str | None) -> None:
    repo = _open(root)
    rows = []
    for name, ctype in repo.registry.list_collections(pattern):
        extra = ", ".join(repo.registry.get_chain(name)) if ctype.value == "CHAINED" else ""
        rows.append({"name": name, "type": ctype.value, "children": extra})
    _table(rows, ["name", "type", "children"])


@click.group("collection")
def collection_group() -> None:
    """Create, chain, list and remove collections."""


@collection_group.command("create")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.option(
    "--type",
    "ctype",
    default="RUN",
    show_default=True,
    type=click.Choice(["RUN", "TAGGED", "CHAINED", "CALIBRATION"], case_sensitive=False),
)
@click.option("--doc", default=None)
@handle_errors
def collection_create(root: str, name: str, ctype: str, doc: str | None) -> None:
    """Create collection NAME."""
    created = _open(root).register_collection(name, ctype, doc)
    click.echo(f"{'created' if created else 'exists:'} {ctype.upper()} collection {name}")


@collection_group.command("chain")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.argument("parent")
@click.argument("children", nargs=-1, required=True)
@handle_errors
def collection_chain(root: str, parent: str, children: tuple[str, ...]) -> None:
    """Make PARENT a CHAINED collection searching CHILDREN in order."""
    _open(root).set_chain(parent, list(children))
    click.echo(f"{parent} -> {', '.join(children)}")


@collection_group.command("list")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.argument("pattern", required=False)
@handle_errors
def collection_list(root: str, pattern: str | None) -> None:
    """List collections (same as `pachon query collections`)."""
    _list_collections(root, pattern)


@collection_group.command("remove")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@handle_errors
def collection_remove(root: str, name: str) -> None:
    """Remove collection NAME; a RUN is pruned with all its datasets and files."""
    n = _open(root).prune_collection(name)
    click.echo(f"removed {name} ({n} datasets deleted)")


@collection_group.command("certify")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.argument("calib_collection")
@click.argument("dataset_type")
@click.option("--run", required=True, help="RUN collection holding the datasets to certify.")
@click.option("--where", default=None, help="Expression selecting the datasets.")
@click.option("--begin", default=None, help="Start of validity, ISO TAI (default: unbounded).")
@click.option("--end", default=None, help="End of validity, ISO TAI, exclusive (default: unbounded).")
@handle_errors
def collection_certify(
    root: str, calib_collection: str, dataset_type: str, run: str, where: str | None,
    begin: str | None, end: str | None,
) -> None:
    """Certify DATASET_TYPE datasets of RUN in CALIB_COLLECTION over [BEGIN, END)."""
    repo = _open(root)
    refs = repo.query_datasets(dataset_type, run, where=where, find_first=False)
    if not refs:
        click.echo(f"no {dataset_type} datasets in {run} match; nothing certified", err=True)
        raise click.exceptions.Exit(1)
    repo.register_collection(calib_collection, "CALIBRATION")
    repo.certify(calib_collection, refs, begin, end)
    click.echo(f"certified {len(refs)} {dataset_type} dataset(s) in {calib_collection} "
               f"over [{begin or '-inf'}, {end or '+inf'})")


@collection_group.command("decertify")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.argument("calib_collection")
@click.argument("dataset_type")
@click.option("--begin", default=None, help="Start of the range to remove, ISO TAI.")
@click.option("--end", default=None, help="End of the range to remove, ISO TAI, exclusive.")
@handle_errors
def collection_decertify(
    root: str, calib_collection: str, dataset_type: str, begin: str | None, end: str | None
) -> None:
    """Remove validity of DATASET_TYPE in CALIB_COLLECTION over [BEGIN, END)."""
    n = _open(root).decertify(calib_collection, dataset_type, begin, end)
    click.echo(f"decertified {n} certification(s) of {dataset_type} in {calib_collection}")


def _tag_refs(repo, dataset_type: str, collections: tuple[str, ...], where: str | None) -> list:  # noqa: ANN001
    refs = repo.query_datasets(dataset_type, list(collections), where=where)
    if not refs:
        click.echo(f"no {dataset_type} datasets match in {', '.join(collections)}", err=True)
        raise click.exceptions.Exit(1)
    return refs


@collection_group.command("tag")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.argument("tag")
@click.argument("dataset_type")
@click.option("--collections", "-c", multiple=True, required=True, help="Where to find the datasets.")
@click.option("--where", default=None, help="Expression selecting the datasets.")
@handle_errors
def collection_tag(
    root: str, tag: str, dataset_type: str, collections: tuple[str, ...], where: str | None
) -> None:
    """Add DATASET_TYPE datasets found in COLLECTIONS to TAGGED collection TAG."""
    repo = _open(root)
    refs = _tag_refs(repo, dataset_type, collections, where)
    repo.register_collection(tag, "TAGGED")
    repo.associate(tag, refs)
    click.echo(f"tagged {len(refs)} {dataset_type} dataset(s) in {tag}")


@collection_group.command("untag")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.argument("tag")
@click.argument("dataset_type")
@click.option("--where", default=None, help="Expression selecting the datasets (default: all).")
@handle_errors
def collection_untag(root: str, tag: str, dataset_type: str, where: str | None) -> None:
    """Remove DATASET_TYPE datasets from TAGGED collection TAG."""
    repo = _open(root)
    refs = _tag_refs(repo, dataset_type, (tag,), where)
    repo.disassociate(tag, refs)
    click.echo(f"untagged {len(refs)} {dataset_type} dataset(s) from {tag}")


@click.group("refcat")
def refcat_group() -> None:
    """Reference catalogs sharded by HEALPix pixel."""


@refcat_group.command("ingest")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.argument("name")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--transfer",
    default="copy",
    show_default=True,
    type=click.Choice(["copy", "hardlink", "symlink", "move", "direct"]),
)
@handle_errors
def refcat_ingest(root: str, name: str, files: tuple[str, ...], transfer: str) -> None:
    """Ingest reference-catalog shards FILES (``<pixel>.parquet``) as catalog NAME."""
    from pachon.repo.refcat import ingest_refcat

    report = ingest_refcat(_open(root), name, files, transfer=transfer)
    for path, reason in report.failed:
        click.echo(f"FAILED {path}: {reason}", err=True)
    click.echo(report.summary())
    if report.failed:
        raise click.exceptions.Exit(1)


def register(cli: click.Group) -> None:
    """Add the repository commands to the root ``pachon`` group."""
    for command in (repo_group, ingest, query_group, collection_group, refcat_group):
        cli.add_command(command)

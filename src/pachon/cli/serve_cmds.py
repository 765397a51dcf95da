"""``pachon serve``, ``pachon token ...`` and ``pachon access ...``: the data access service."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import click

__all__ = ["register", "serve", "token", "access"]

_log = logging.getLogger(__name__)
_REPO = click.option(
    "--repo",
    "repo",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Repository folder.",
)
_DATA = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Service data folder (default <repo>/services).",
)


def _store(repo: Path, data_dir: Path | None):  # noqa: ANN202 - AuthStore imported lazily
    from pachon.services.auth import AuthStore

    if not (repo / "pachon.yaml").exists():
        raise click.ClickException(
            f"{repo} is not a repository (no pachon.yaml); create it with `pachon repo create`"
        )
    return AuthStore((data_dir or repo / "services") / "auth.sqlite3")


@click.command()
@_REPO
@_DATA
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="TCP port.")
@click.option("--base-url", default=None, help="Public URL of the service root, for absolute links.")
@click.option("--no-anonymous", is_flag=True, help="Require a token for every service.")
@click.option("--max-rows", default=100_000, show_default=True, type=int, help="Cap on MAXREC.")
@click.option("--query-timeout", default=60.0, show_default=True, type=float, help="Sync query limit (s).")
@click.option(
    "--apdb-url",
    default=None,
    help="APDB to serve under the TAP schema 'apdb' (default: REPO/apdb.sqlite3 if present; '' for none).",
)
@click.option(
    "--tap-backend",
    type=click.Choice(["duckdb", "postgresql"]),
    default="duckdb",
    show_default=True,
    help="Database the TAP service queries.",
)
@click.option("--tap-database-url", default=None, help="PostgreSQL URL for --tap-backend postgresql.")
def serve(
    repo: Path,
    data_dir: Path | None,
    host: str,
    port: int,
    base_url: str | None,
    no_anonymous: bool,
    max_rows: int,
    query_timeout: float,
    apdb_url: str | None,
    tap_backend: str,
    tap_database_url: str | None,
) -> None:
    """Serve REPO over HTTP: TAP at /tap, SIAv2 at /sia, SODA at /soda, DataLink at /datalink."""
    import uvicorn

    from pachon.services.app import create_app
    from pachon.services.settings import ServiceSettings

    settings = ServiceSettings(
        repo=repo,
        data_dir=data_dir,
        base_url=base_url,
        max_rows=max_rows,
        query_timeout_s=query_timeout,
        apdb_url=apdb_url,
        tap_backend=tap_backend,
        tap_database_url=tap_database_url,
        **({"anonymous_scopes": {}} if no_anonymous else {}),
    )
    app = create_app(settings)
    click.echo(f"serving {repo} at http://{host}:{port}/ (TAP: /tap)")
    uvicorn.run(app, host=host, port=port, log_level="info")


@click.group()
def token() -> None:
    """Create, list and revoke bearer tokens."""


@token.command("create")
@_REPO
@_DATA
@click.option("--user", required=True, help="User name the token authenticates.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(["read:tap", "read:image", "exec:admin"]),
    help="Scope (repeatable).",
)
@click.option("--group", "groups", multiple=True, help="Add the user to this group (repeatable).")
@click.option("--expires", default=None, help="Lifetime such as 30d, 12h (default: never).")
@click.option("--note", default=None, help="Free text kept with the token.")
def token_create(
    repo: Path,
    data_dir: Path | None,
    user: str,
    scopes: tuple[str, ...],
    groups: tuple[str, ...],
    expires: str | None,
    note: str | None,
) -> None:
    """Create a token and print it (it is shown only once)."""
    from pachon.services.auth import parse_duration

    store = _store(repo, data_dir)
    try:
        click.echo(
            store.create_token(
                user,
                scopes,
                groups=groups,
                expires_in_s=parse_duration(expires) if expires else None,
                note=note,
            )
        )
    finally:
        store.close()


@token.command("list")
@_REPO
@_DATA
@click.option("--user", default=None, help="Only this user's tokens.")
def token_list(repo: Path, data_dir: Path | None, user: str | None) -> None:
    """List tokens (key, user, scopes, expiry; never the secret)."""
    store = _store(repo, data_dir)
    try:
        for t in store.list_tokens(user):
            exp = "never" if t.expires is None else dt.datetime.fromtimestamp(t.expires, dt.UTC).isoformat()
            groups = ",".join(sorted(store.groups_of(t.user)))
            click.echo(f"{t.key}\t{t.user}\t{' '.join(t.scopes)}\tgroups={groups}\texpires={exp}")
    finally:
        store.close()


@token.command("revoke")
@_REPO
@_DATA
@click.argument("key")
def token_revoke(repo: Path, data_dir: Path | None, key: str) -> None:
    """Revoke the token KEY (as listed, or the whole token)."""
    store = _store(repo, data_dir)
    try:
        if not store.revoke_token(key):
            raise click.ClickException(f"no token {key!r}; see `pachon token list`")
        click.echo(f"revoked {key}")
    finally:
        store.close()


@click.group()
def access() -> None:
    """Collection access rules (e.g. embargoed runs visible to one group)."""


@access.command("set")
@_REPO
@_DATA
@click.argument("collection_glob")
@click.option("--group", "groups", multiple=True, required=True, help="Group allowed (repeatable).")
def access_set(repo: Path, data_dir: Path | None, collection_glob: str, groups: tuple[str, ...]) -> None:
    """Make collections matching COLLECTION_GLOB visible only to the groups."""
    store = _store(repo, data_dir)
    try:
        store.set_rule(collection_glob, groups)
        click.echo(f"{collection_glob}: {', '.join(sorted(groups))}")
    finally:
        store.close()


@access.command("list")
@_REPO
@_DATA
def access_list(repo: Path, data_dir: Path | None) -> None:
    """List access rules."""
    store = _store(repo, data_dir)
    try:
        for pattern, groups in store.rules():
            click.echo(f"{pattern}\t{','.join(sorted(groups))}")
    finally:
        store.close()


@access.command("remove")
@_REPO
@_DATA
@click.argument("collection_glob")
def access_remove(repo: Path, data_dir: Path | None, collection_glob: str) -> None:
    """Remove the rule of COLLECTION_GLOB."""
    store = _store(repo, data_dir)
    try:
        if not store.remove_rule(collection_glob):
            raise click.ClickException(f"no access rule {collection_glob!r}; see `pachon access list`")
        click.echo(f"removed {collection_glob}")
    finally:
        store.close()


def register(cli: click.Group) -> None:
    """Add the service commands to the ``pachon`` command."""
    cli.add_command(serve)
    cli.add_command(token)
    cli.add_command(access)

"""`addendum serve`: the editor's workspace and the public endpoints (one-click unsubscribe, API, archive) over HTTP."""

from __future__ import annotations

import click

from addendum.cli.common import database_option, with_repo
from addendum.config import Repo


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, metavar="HOST",
              help="Address to listen on; the workspace only on a loopback address (127.0.0.1, ::1).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65_535), metavar="PORT",
              help="Port to listen on (0: any free port).")
@click.option("--public", "public_only", is_flag=True,
              help="Serve only the public endpoints, never the workspace: for deployment behind a reverse proxy.")
@click.option("--no-watch", is_flag=True, help="Do not watch the policy files: pages offer a Reload link instead of refreshing.")
@database_option
@with_repo
def serve_command(repo: Repo, host: str, port: int, public_only: bool, no_watch: bool, database_url: str | None) -> None:
    """Serve the editor's workspace and the public endpoints over HTTP, until interrupted.

    The workspace (policies, versions, status, check findings, the draft redline of the working tree, downloads,
    publishing) listens on 127.0.0.1 only; it prints a login URL that works once and sets a session cookie.
    The public endpoints: the RFC 8058 one-click unsubscribe behind notify.unsubscribe_url
    (https://…/unsubscribe/{token}), GET /api/policies, /api/policies/ID/versions and
    /api/policies/ID/at/DATE?site=&lang= (the version in force; docs/api.md), and history/ as static files.

    \b
    Examples:
      addendum serve                              the workspace on http://127.0.0.1:8080
      addendum serve --public --host 0.0.0.0      public endpoints only, behind a reverse proxy
    """
    from addendum.web.app import ServerConfig
    from addendum.web.server import Listening, serve

    def ready(listening: Listening) -> None:
        if listening.login_url:
            click.echo(f"workspace: {listening.login_url}  (the login link works once)")
        click.echo("public endpoints:")
        for endpoint in listening.endpoints:
            click.echo(f"  {endpoint}")
        click.echo("press Ctrl+C to stop", err=True)

    serve(ServerConfig(repo, public_only=public_only, watch=not no_watch, database_url=database_url), host, port, ready)

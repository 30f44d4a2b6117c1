"""`addendum init`: scaffold a policy repository."""

from __future__ import annotations

from pathlib import Path

import click

from addendum.operations.setup import init_policy_repository


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
def init_command(directory: Path) -> None:
    """Create a policy repository in DIRECTORY (default: here).

    Creates a git repository (unless DIRECTORY is inside one), addendum.toml, policies/, templates/,
    history/, and a .gitignore that keeps local state (subscribers, outbox) out of git.
    """
    for item in init_policy_repository(directory):
        click.echo(f"created {item}")
    click.echo(f"next: add a policy in {directory / 'policies' / '<id>'}/ (policy.toml, en.md), then `addendum check`")

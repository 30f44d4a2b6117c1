"""`addendum init`: scaffold a policy repository, commit it, and say what to do next."""

from __future__ import annotations

import shlex
from datetime import date
from pathlib import Path

import click

from addendum.operations.setup import DEFAULT_POLICY_ID, init_policy_repository


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--policy", "policy_id", metavar="ID", default=DEFAULT_POLICY_ID, show_default=True,
              help="Id of the starter policy, which becomes its folder policies/ID/.")
def init_command(directory: Path, policy_id: str) -> None:
    """Create a policy repository in DIRECTORY (default: here).

    Creates a git repository (unless DIRECTORY is inside one); a commented addendum.toml that lists every
    setting; a starter policy in policies/ID/ (policy.toml and en.md, which `addendum check` passes), unless
    policies/ holds policies already; templates/ and history/; and a .gitignore that keeps local state
    (subscribers, outbox, keys) out of git. Then commits exactly these files, and prints the next steps.

    \b
    Examples:
      addendum init legal
      addendum init --policy terms
    """
    result = init_policy_repository(directory, policy_id)
    for item in result.created:
        click.echo(f"created {item}")
    click.echo(f"committed {result.commit[:12]}")
    click.echo("next:")
    for command, why in next_steps(directory, result.starter_policy):
        click.echo(f"  {command:<44} # {why}" if command and why else f"  {command or '# ' + why}")


def next_steps(directory: Path, policy: str | None) -> list[tuple[str, str]]:
    """(shell command, why) pairs, which paste into a shell as they are; a step without a command is a comment."""
    steps = [] if directory.resolve() == Path.cwd().resolve() else [(f"cd {shlex.quote(str(directory))}", "")]
    if policy is None:
        return [*steps, ("addendum check", "the policies already in policies/"), ("addendum help config", "every setting")]
    folder = f"policies/{policy}"
    return [
        *steps,
        ("addendum check", "every problem, with file:line and a fix; the starter policy has none"),
        ("", f"edit {folder}/policy.toml: your organisation and sites, in place of the example.org placeholders"),
        ("", f"edit {folder}/en.md: your text (`addendum help format` describes the format)"),
        (f"addendum render {policy} --format text", "the text as readers will see it"),
        (f'addendum commit {policy} -m "First text"', "checks, then commits only this policy's files"),
        (f'addendum publish {policy} --effective {date.today().isoformat()} --material --summary "First version"',
         "records the first version"),
    ]

"""`addendum commit`: check a policy, then commit its folder alone, naming the changed sections."""

from __future__ import annotations

import click

from addendum.cli.common import policy_argument, with_repo
from addendum.config import Repo
from addendum.publish.commit import commit_policy


@click.command("commit")
@policy_argument
@click.option("-m", "--message", required=True, metavar="MESSAGE", help="What changed and why.")
@click.option("--dry-run", is_flag=True, help="Show what would be committed; commit nothing.")
@with_repo
def commit_command(repo: Repo, policy_id: str, message: str, dry_run: bool) -> None:
    """Commit the changes to one policy, and nothing else.

    Runs the check first and refuses a policy with errors. Prints which sections were added, removed,
    changed or moved, per language and site, then commits only policies/POLICY/ — other changes in the
    work tree, staged or not, stay as they are. The commit message gets the trailers `Policy:` and
    `Sections:`. Plain `git commit` keeps working; this is the safe path. Git hooks do not run.

    \b
    Example:
      addendum commit privacy -m "Replace the Privacy Shield wording"
    """
    result = commit_policy(repo, policy_id, message, dry_run=dry_run)
    for change in result.changes:
        click.echo(f"  {change.describe()}")
    if dry_run:
        click.echo(f"would commit policies/{policy_id} with the message:\n\n{result.message}")
    else:
        click.echo(f"committed {result.commit[:10]}: {result.message.splitlines()[0]}")

"""`addendum log`: the published versions of a policy, and what is not yet published."""

from __future__ import annotations

import json

import click

from addendum.cli.common import lang_option, policy_argument, with_repo
from addendum.config import Repo
from addendum.operations.suggestions import version_log_with_suggestions


@click.command("log")
@policy_argument
@lang_option()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on standard output.")
@with_repo
def log_command(repo: Repo, policy_id: str, language: str | None, as_json: bool) -> None:
    """List a policy's published versions, newest first, then its unpublished changes.

    Each version shows its id, whether it is in force today, upcoming or superseded, its effective and
    published dates (in the language of --lang), its classification and summary. The unpublished changes are
    the sections added, removed, changed or moved since the latest version, per language and site. Read
    from history/ alone: a shallow clone without tags gives the same answer.

    \b
    Examples:
      addendum log privacy
      addendum log privacy --lang nl
      addendum log privacy --json
    """
    log = version_log_with_suggestions(repo, policy_id)
    if as_json:
        click.echo(json.dumps(log.as_json(), indent=2, ensure_ascii=False))
    else:
        click.echo("\n".join(log.lines(language)))

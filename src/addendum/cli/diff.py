"""`addendum diff`: what changed in a policy between two versions, per site and language, word by word."""

from __future__ import annotations

import json

import click

from addendum.cli.common import policy_argument, stdout_is_terminal, with_repo
from addendum.config import Repo
from addendum.operations.changes import classified_diff, diff_policy
from addendum.render.redline import redline_text


@click.command("diff")
@policy_argument
@click.argument("from_ref", metavar="[FROM", required=False)
@click.argument("to_ref", metavar="[TO]]", required=False)
@click.option("--site", "site_id", metavar="SITE", help="Only this site (default: every site either side has).")
@click.option("--lang", "language", metavar="LANG", help="Only this language (default: every language either side has).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON (see docs/diff-json.md).")
@click.option("--color/--no-color", default=None, help="Colour the deleted and inserted words (default: on a terminal).")
@with_repo
def diff_command(repo: Repo, policy_id: str, from_ref: str | None, to_ref: str | None, site_id: str | None,
                 language: str | None, as_json: bool, color: bool | None) -> int:
    """Show what changed in POLICY between FROM and TO.

    FROM and TO are a published version (privacy@2018-05-19), a date (the version in force that day), `latest`,
    a git revision, or `worktree`. Default: the last published version against the working tree. Every site ×
    language is compared unless --site/--lang narrow it; unchanged ones are not shown. Per changed section:
    its path, what happened to it (added, removed, moved, renamed, modified), and the words deleted [-…-] and
    inserted {+…+}. Exit 0: no changes; 1: changes; 2: error.

    \b
    Examples:
      addendum diff privacy
      addendum diff privacy privacy@2018-05-19 HEAD --site selentic --lang en --json
    """
    # Only the JSON form carries each change's suggested class: the words on a terminal do not need it classified.
    compared = classified_diff if as_json else diff_policy
    result = compared(repo, policy_id, from_ref, to_ref, site_id, language)
    if as_json:
        click.echo(json.dumps(result.as_json(repo.templates_dir), indent=2, ensure_ascii=False))
    else:
        use_color = stdout_is_terminal() if color is None else color
        click.echo(redline_text(result.changesets, result.old.label, result.new.label, color=use_color), nl=False, color=use_color)
    return 1 if result.has_changes else 0

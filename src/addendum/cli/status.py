"""`addendum status`: sections × languages (and overriding sites), and what is not yet published."""

from __future__ import annotations

import json

import click

from addendum.archive.sealing import evidence_notes
from addendum.cli.common import policy_argument, with_repo
from addendum.config import Repo
from addendum.operations.changes import policy_status, status_json
from addendum.publish.status import PolicyStatus

MARKS = {"up-to-date": "ok", "stale": "STALE", "missing": "missing", None: "·"}


def _table(status: PolicyStatus) -> list[str]:
    headers = ["section", *(c.label for c in status.columns)]
    body = [[row.ref, *(MARKS[cell] for cell in row.cells)] for row in status.rows]
    widths = [max(len(line[i]) for line in [headers, *body]) for i in range(len(headers))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in [headers, *body]]


@click.command("status")
@policy_argument
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on standard output.")
@click.option("--lang", "language", metavar="LANG",
              help="With --json: the language of each reason's sentence (default: the policy's default language).")
@with_repo
def status_command(repo: Repo, policy_id: str, as_json: bool, language: str | None) -> None:
    """Show each section's state in each language, and unpublished changes.

    \b
    ok       the text is up to date
    STALE    another language changed this section after this one did
    missing  no text in this language (readers see the default language's, marked)
    ·        the site does not override this section
    Columns `site/lang` are a site's overrides. Unpublished changes come with their suggested class. A note
    says when the archive is not signed (archive.signing_key) or not timestamped (evidence.tsa_url).

    \b
    Examples:
      addendum status privacy
      addendum status privacy --json --lang nl
    """
    status = policy_status(repo, policy_id)
    if as_json:
        click.echo(json.dumps(status_json(repo, status, language), indent=2, ensure_ascii=False))
        return
    for line in _table(status):
        click.echo(line)
    click.echo("")
    click.echo(f"{status.count('missing')} missing, {status.count('stale')} stale; "
               f"latest version: {status.latest.id if status.latest else 'none published'}")
    for note in evidence_notes(repo):
        click.echo(f"note: {note}")
    if status.unpublished is None:
        click.echo("no unpublished changes")
        return
    changed = sorted({c.ref for cs in status.unpublished.changesets for c in cs.changes})
    click.echo(f"unpublished changes in {len(changed)} section(s), suggested class: {status.unpublished.level}")
    for reason in status.unpublished.reasons[:20]:
        click.echo(f"  {reason}")

"""`addendum import-document`: an edited .docx export read back into a policy's Markdown in the working tree."""

from __future__ import annotations

from pathlib import Path

import click

from addendum.cli.common import with_repo
from addendum.config import Repo
from addendum.operations.word import import_document


@click.command("import-document")
@click.argument("source", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--into", "policy_id", required=True, metavar="POLICY", help="The policy the document was exported from.")
@click.option("--lang", "language", required=True, metavar="LANG", help="The language of the document, e.g. en.")
@click.option("--site", "site_id", metavar="SITE", help="The site it was exported for: its marked sections go to the site's override file.")
@click.option("--accept-changes", is_flag=True, help="Take the document's tracked changes as accepted (they are refused otherwise).")
@with_repo
def import_document_command(repo: Repo, source: Path, policy_id: str, language: str, site_id: str | None,
                            accept_changes: bool) -> None:
    """Import an edited copy of `addendum export-document` back into the policy's Markdown.

    Sections are matched by their bookmark, then by heading text, then by position; a new heading becomes
    a new section with an id made from its text, and a removed one is reported. Placeholders come back as
    placeholders. Unresolved tracked changes are refused unless --accept-changes; comments are listed. A
    .docx from `addendum render` is refused: its placeholders are filled in. The result is an ordinary change
    in the working tree: review it with `addendum diff`, then `addendum commit`.

    \b
    Example:
      addendum import-document privacy-cavallo.docx --into privacy --lang en --site cavallo
    """
    report = import_document(repo, source, policy_id, language, site_id, accept_changes=accept_changes)
    if report.accepted_changes:
        click.echo(f"accepted {report.accepted_changes} tracked change(s)", err=True)
    for section_id in report.new_ids:
        click.echo(f"new section: {section_id}", err=True)
    for section_id in report.deleted_ids:
        click.echo(f"removed section: {section_id}", err=True)
    for section_id in report.changed_ids:
        click.echo(f"changed section: {section_id}", err=True)
    for comment in report.comments:
        click.echo(f"comment by {comment.author or 'unknown'}: {comment.text}", err=True)
    for path in report.written:
        click.echo(f"wrote {path}", err=True)
    if not report.written:
        click.echo("nothing changed", err=True)

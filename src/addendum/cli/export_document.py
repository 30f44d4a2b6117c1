"""`addendum export-document`: one language's source of a policy as a .docx for a lawyer to edit in Word."""

from __future__ import annotations

from pathlib import Path

import click

from addendum.cli.common import policy_argument, with_repo
from addendum.config import Repo
from addendum.operations.word import export_document


@click.command("export-document")
@policy_argument
@click.option("--lang", "language", required=True, metavar="LANG", help="The language whose source is exported, e.g. en.")
@click.option("--site", "site_id", metavar="SITE", help="Put this site's overriding sections in place of the common ones, marked.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="The .docx to write (atomically).")
@with_repo
def export_document_command(repo: Repo, policy_id: str, language: str, site_id: str | None, output: Path) -> None:
    """Export one language's source of a policy as a Word document to edit and import back.

    Each section is a heading with its id as a bookmark; placeholders such as {{ site.contact.email }} are
    locked content controls that show the placeholder, not its value; with --site, that site's overriding
    sections stand in place of the common ones, marked as such. The file records the policy, language, site
    and commit it was exported from in its custom document properties. Import the edited copy with
    `addendum import-document`.

    \b
    Example:
      addendum export-document privacy --lang en --site cavallo -o privacy-cavallo.docx
    """
    export_document(repo, policy_id, language, site_id, output)
    click.echo(f"wrote {output}", err=True)

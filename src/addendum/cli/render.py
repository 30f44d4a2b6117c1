"""`addendum render`: the resolved text of a policy for one site and language."""

from __future__ import annotations

from pathlib import Path

import click

from addendum.cli.common import lang_option, output_option, policy_argument, site_option, with_repo
from addendum.config import Repo
from addendum.operations.documents import render_document
from addendum.render import Format


@click.command("render")
@policy_argument
@site_option()
@lang_option()
@click.option("--format", "fmt", type=click.Choice(["html", "md", "text"]), default="html", show_default=True,
              help="html: a self-contained page; md: Markdown; text: plain text for a terminal or an e-mail.")
@output_option
@with_repo
def render_command(repo: Repo, policy_id: str, site_id: str | None, language: str | None, fmt: Format,
                   output: Path | None) -> None:
    """Render a policy as one site's readers see it in one language.

    Site overrides and variables are applied; a section not yet translated shows the default language's
    text, marked. The "Last changed" date is the effective date of the published version with this exact
    text; unpublished text is marked as a draft. A policy with errors is not rendered.

    \b
    Example:
      addendum render privacy --site cavallo --lang nl -o cavallo-nl.html
    """
    text = render_document(repo, policy_id, site_id, language, fmt, output)
    if output is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"wrote {output}", err=True)

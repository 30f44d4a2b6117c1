"""`addendum render`: the resolved text of a policy for one site and language."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from addendum.cli.common import lang_option, output_option, policy_argument, site_option, stdout_is_terminal, with_repo
from addendum.config import Repo
from addendum.errors import UsageError
from addendum.operations.documents import DocumentFormat, render_document


def write_binary_to_stdout(data: bytes) -> None:
    """A .docx on standard output only when it goes to a file or a pipe: on a terminal it is unreadable bytes."""
    if stdout_is_terminal():
        raise UsageError("a .docx is binary and is not written to a terminal",
                         "give -o FILE.docx, or redirect standard output to a file")
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


@click.command("render")
@policy_argument
@site_option()
@lang_option()
@click.option("--format", "fmt", type=click.Choice(["html", "md", "text", "docx"]), default="html", show_default=True,
              help="html: a self-contained page; md: Markdown; text: plain text for a terminal or an e-mail; docx: a Word "
                   "document for reading and filing (binary: give -o).")
@output_option
@with_repo
def render_command(repo: Repo, policy_id: str, site_id: str | None, language: str | None, fmt: DocumentFormat,
                   output: Path | None) -> None:
    """Render a policy as one site's readers see it in one language.

    Site overrides and variables are applied; a section not yet translated shows the default language's
    text, marked. The "Last changed" date is the effective date of the published version with this exact
    text; unpublished text is marked as a draft. A policy with errors is not rendered.

    \b
    Example:
      addendum render privacy --site cavallo --lang nl -o cavallo-nl.html
      addendum render privacy --format docx -o privacy.docx
    """
    if fmt == "docx" and output is None and stdout_is_terminal():
        write_binary_to_stdout(b"")
    text = render_document(repo, policy_id, site_id, language, fmt, output)
    if output is None:
        if isinstance(text, bytes):
            write_binary_to_stdout(text)
        else:
            click.echo(text, nl=False)
    else:
        click.echo(f"wrote {output}", err=True)

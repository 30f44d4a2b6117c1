"""`addendum show`: the text of a policy as it stood on a date, at a version or at a git revision."""

from __future__ import annotations

from pathlib import Path

import click

from addendum.cli.common import lang_option, output_option, policy_argument, site_option, stdout_is_terminal, with_repo
from addendum.cli.render import write_binary_to_stdout
from addendum.config import Repo
from addendum.files import write_atomic
from addendum.ids import parse_date
from addendum.operations.documents import DocumentFormat, show_text


@click.command("show")
@policy_argument
@click.option("--at", "at", metavar="DATE", help="The version in force on this day, YYYY-MM-DD (default: today).")
@click.option("--version", "version", metavar="ID", help="A published version, e.g. privacy@2018-05-19.")
@click.option("--rev", "rev", metavar="GITREV", help="The policy as committed at a git revision (or `worktree`).")
@site_option()
@lang_option()
@click.option("--format", "fmt", type=click.Choice(["text", "md", "html", "docx"]), default="text", show_default=True,
              help="text: plain text for a terminal; md: Markdown; html: a self-contained page; docx: a Word document "
                   "for reading and filing (binary: give -o).")
@output_option
@with_repo
def show_command(repo: Repo, policy_id: str, at: str | None, version: str | None, rev: str | None,
                 site_id: str | None, language: str | None, fmt: DocumentFormat, output: Path | None) -> None:
    """Print a policy as readers of one site in one language saw it.

    With --at, the version in force on that day; a later version already announced but not yet in effect
    is named on standard error ("upcoming: …"). Before the first version took effect there is nothing to
    show: exit 1. Versions are read from history/ and checked against their recorded content hashes.

    \b
    Examples:
      addendum show privacy --at 2019-03-01 --site equihealth --lang nl
      addendum show privacy --version privacy@2018-05-19 --format html -o old.html
    """
    if fmt == "docx" and output is None and stdout_is_terminal():
        write_binary_to_stdout(b"")
    shown = show_text(repo, policy_id, at=parse_date(at, "--at") if at else None, version=version, rev=rev,
                      site_id=site_id, language=language, fmt=fmt)
    for note in shown.notes:
        click.echo(note, err=True)
    if output is None:
        if fmt == "docx":
            write_binary_to_stdout(shown.document)
        else:
            click.echo(shown.text, nl=False)
    else:
        write_atomic(output, shown.document if fmt == "docx" else shown.text)
        click.echo(f"wrote {output}", err=True)

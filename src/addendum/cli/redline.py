"""`addendum redline`: the document a reviewer signs off, as HTML, PDF or a Word document with tracked changes."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click

from addendum.cli.common import lang_option, policy_argument, site_option, with_repo
from addendum.config import Repo
from addendum.files import write_atomic
from addendum.operations.changes import make_redline
from addendum.render.redline import LAYOUTS, Layout
from addendum.render.word import FORMATTING_CHOICES, Formatting

FORMATS: dict[str, Literal["html", "pdf", "docx"]] = {"html": "html", "pdf": "pdf", "docx": "docx"}


@click.command("redline")
@policy_argument
@click.argument("from_ref", metavar="FROM")
@click.argument("to_ref", metavar="TO")
@site_option()
@lang_option()
@click.option("--format", "fmt", type=click.Choice(["html", "pdf", "docx"]), default="html", show_default=True,
              help="html: a self-contained page to review in a browser; pdf: a document to sign off and file; "
                   "docx: a Word document whose every change is a tracked change (Accept All gives TO, Reject All FROM).")
@click.option("--layout", type=click.Choice(LAYOUTS), default="inline", show_default=True,
              help="inline: one text with insertions and deletions; side-by-side: old and new columns per section.")
@click.option("--changes-only", is_flag=True, help="Only the changed sections, with their headings for context.")
@click.option("--formatting", type=click.Choice(FORMATTING_CHOICES), default="show", show_default=True,
              help="docx: show changes of whitespace, punctuation, quotes or case only as tracked changes, or hide them.")
@click.option("--author", metavar="NAME", help="docx: the revisions' author (default: who published TO; for an "
              "unpublished TO, your git identity).")
@click.option("--prepared-by", metavar="NAME", help="html, pdf: who prepared the redline, stated in its title block "
              "(default: your git identity).")
@click.option("--no-signoff", is_flag=True, help="html, pdf: leave out the sign-off block (reviewed by, date, signature).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="The file to write (atomically).")
@with_repo
def redline_command(repo: Repo, policy_id: str, from_ref: str, to_ref: str, site_id: str | None, language: str | None,
                    fmt: str, layout: Layout, changes_only: bool, formatting: Formatting, author: str | None,
                    prepared_by: str | None, no_signoff: bool, output: Path) -> None:
    """Write the redline of POLICY from FROM to TO for one site and language (default: TO's default site and language).

    FROM and TO are a published version (privacy@2018-05-19), a date (the version in force that day), `latest`,
    a git revision, or `worktree`. The document has a title block with both versions, their effective dates,
    commits and content hashes, and when (date, time, time zone), by whom and with which Addendum it was prepared,
    a summary table of changed sections (with their suggested materiality) linking into the text, a legend, and
    the text with insertions underlined and deletions struck through, moved sections marked with where they came
    from, change bars in the margin and invisible characters shown by their code point, and a sign-off block. As docx, every change
    is a Word tracked change (a moved section: deleted where it was, inserted where it is), each section's
    heading is bookmarked with its id, and the revisions are dated TO's publication date.

    \b
    Example:
      addendum redline privacy privacy@2018-05-19 latest --format pdf -o redline.pdf
      addendum redline privacy 2019-01-01 worktree --site cavallo --lang nl --layout side-by-side -o r.html
      addendum redline privacy privacy@2018-05-19 latest --format docx -o redline.docx
    """
    data = make_redline(repo, policy_id, from_ref, to_ref, site_id, language, fmt=FORMATS[fmt], layout=layout,
                        changes_only=changes_only, formatting=formatting, author=author, prepared_by=prepared_by,
                        signoff=not no_signoff)
    write_atomic(output, data)
    click.echo(f"wrote {output}", err=True)

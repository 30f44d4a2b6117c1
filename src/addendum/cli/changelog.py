"""`addendum changelog`: the published versions, newest first, as Markdown, HTML or an Atom feed."""

from __future__ import annotations

from pathlib import Path

import click

from addendum.cli.common import lang_option, output_option, policy_argument, with_repo
from addendum.config import Repo
from addendum.files import write_atomic
from addendum.render.changelog import atom_feed, changelog_document


@click.command("changelog")
@policy_argument
@lang_option()
@click.option("--format", "fmt", type=click.Choice(["md", "html", "atom"]), default="md", show_default=True,
              help="md: Markdown; html: a self-contained page; atom: an Atom feed for feed readers.")
@output_option
@with_repo
def changelog_command(repo: Repo, policy_id: str, language: str | None, fmt: str, output: Path | None) -> None:
    """Print the changelog of POLICY: per version its dates, class, summary, changed sections and reasons.

    Dates are localised for --lang (default: the policy's default language). Links point to the redlines in the archive, under
    archive.base_url when it is set. `--format atom` gives the Atom feed (stable entry ids).

    \b
    Example:
      addendum changelog privacy --lang nl --format html -o changelog-nl.html
    """
    if fmt == "atom":
        data = atom_feed(repo, policy_id, language)
    else:
        data = changelog_document(repo, policy_id, language, "html" if fmt == "html" else "md").encode("utf-8")
    if output is not None:
        write_atomic(output, data)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(data.decode("utf-8"), nl=False)

"""`addendum import-history`: turn the git history of a Markdown policy file into published versions."""

from __future__ import annotations

from pathlib import Path

import click

from addendum.cli.common import with_repo
from addendum.config import Repo
from addendum.history.importer import import_history


@click.command("import-history")
@click.option("--from", "source", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The git repository that holds the file (only read: nothing of it runs or is written).")
@click.option("--path", "paths", required=True, multiple=True, metavar="FILE",
              help="The file, relative to that repository; repeat for earlier names git does not see as renames.")
@click.option("--policy", "policy_id", required=True, metavar="ID", help="The policy to create, e.g. privacy.")
@click.option("--lang", "language", required=True, metavar="LANG", help="The language of the file, e.g. en.")
@click.option("--site", "site_id", default="main", show_default=True, metavar="SITE", help="The id of the one site created.")
@click.option("--rev", "revision", default="HEAD", show_default=True, metavar="GITREV", help="Import up to this revision.")
@click.option("--date-from-text", is_flag=True,
              help='Take each effective date from the text ("Effective date: …", "Last updated …", front matter); '
                   "the commit date where there is none.")
@click.option("--dry-run", is_flag=True, help="Show the versions that would be recorded; write nothing.")
@with_repo
def import_history_command(repo: Repo, source: Path, paths: tuple[str, ...], policy_id: str, language: str,
                           site_id: str, revision: str, date_from_text: bool, dry_run: bool) -> None:
    """Import the history of a policy kept as one Markdown file in a git repository.

    Every commit on the first-parent line of --rev that changed the file becomes a published version: a
    merged branch counts once, dated by its merge. Renames git detects are followed; commits that leave the
    text as it was are skipped. Headings become sections whose ids come from the heading text (kept when a
    heading is renamed but its text is not); YAML front matter is kept in the ledger as metadata. The policy
    is created with one site and one language; its versions are committed with their tags in one commit.

    \b
    Example:
      addendum import-history --from ../website --path legal/privacy.md --path privacy.md \\
        --policy privacy --lang en --date-from-text
    """
    result = import_history(repo, source, list(paths), policy_id, language, site_id=site_id, revision=revision,
                            date_from_text=date_from_text, dry_run=dry_run)
    for version in result.versions:
        provenance = version.extra["provenance"]
        click.echo(f"{version.id:<28} {provenance['commit'][:10]}  {provenance['path']}  {version.summaries[language]}")
    for skipped in result.skipped:
        click.echo(f"skipped {skipped.commit[:10]}: {skipped.reason} ({skipped.subject})")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    created = f"created policies/{policy_id}; " if result.created_policy else ""
    if dry_run:
        click.echo(f"would import {len(result.versions)} versions (nothing written)")
    else:
        click.echo(f"{created}imported {len(result.versions)} versions in commit {result.commit[:10]}")

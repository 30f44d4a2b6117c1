"""`addendum evidence`: one person's dossier — versions in force, notices, history and hashes — as PDF or JSON."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from addendum.cli.common import database_option, with_repo
from addendum.config import Repo
from addendum.errors import UsageError
from addendum.files import write_atomic
from addendum.i18n import has_catalogue
from addendum.notify.state import open_state
from addendum.notify.tokens import require_ignored
from addendum.operations.evidence import build_dossier, dossier_json, dossier_lines, dossier_pdf


@click.command("evidence")
@click.argument("who", metavar="EMAIL_OR_USER_REF")
@click.option("--policy", "policy_id", metavar="POLICY", help="Only this policy (default: every policy of theirs).")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), help="Start of the period (default: the first version).")
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), help="End of the period (default: today).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the dossier to this .pdf or .json file (mode 0600; git-ignored when inside the repository).")
@click.option("--lang", "language", default="en", show_default=True, metavar="LANG", help="Language of the PDF.")
@database_option
@with_repo
def evidence_command(repo: Repo, who: str, policy_id: str | None, start: datetime | None, end: datetime | None,
                     output: Path | None, language: str, database_url: str | None) -> int:
    """Show one person's evidence dossier: their audience and its legal basis, sites and languages, the history of
    their subscription (each event with its source and time), every version in force for their sites and languages
    in the period (effective dates, content hash, archived files with SHA-256, manifest entry and `verify`'s
    verdict), and every notice to them (Message-ID, times, SMTP reply, bounces, content hash, the stored message's
    SHA-256, each checked against the ledger and the stored bytes).

    EMAIL_OR_USER_REF is an address, a subscriber id, the keyed hash `subscribers forget` printed (what was kept of
    a forgotten person is shown without the address), or a site's own user reference, whose acceptance records
    (`addendum acceptances`) are shown with each content hash checked against the ledger. Exit status 1 when
    nobody has records by that name.

    \b
    Example:
      addendum evidence ann@example.org -o .addendum/ann.pdf
      addendum evidence ann@example.org --policy privacy --from 2020-01-01 -o .addendum/ann.json
    """
    if output is not None and output.suffix.lower() not in (".pdf", ".json"):
        raise UsageError(f"{output}: the dossier is written as .pdf or .json", "name the file dossier.pdf or dossier.json")
    if not has_catalogue(language, repo.root):
        raise UsageError(f"no catalogue for the language {language!r}", "use en, nl, fr or de, or add the repository's own")
    if output is not None:
        require_ignored(repo.root, output.resolve(), "dossier")
    with open_state(repo, database_url) as state:
        dossier = build_dossier(repo, state, who, policy_id, start.date() if start else None, end.date() if end else None)
    if output is not None:
        data = dossier_pdf(repo, dossier, language) if output.suffix.lower() == ".pdf" else dossier_json(dossier)
        write_atomic(output, data, mode=0o600)
    for line in dossier_lines(dossier):
        click.echo(line)
    if output is not None:
        click.echo(f"wrote {output}", err=True)
    return 0

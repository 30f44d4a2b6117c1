"""`addendum notices`: who was notified of a version, when, with which Message-ID and reply — the proof."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import click

from addendum.cli.common import database_option, policy_argument, with_repo
from addendum.config import Repo
from addendum.notify.campaign import notice_records
from addendum.operations.evidence import export_messages

STATES = ("pending", "sending", "sent", "retry", "failed", "unknown", "bounced", "cancelled")


@click.command("notices")
@policy_argument
@click.argument("version_id", metavar="VERSION")
@click.option("--email", default=None, help="Only the notices to this address.")
@click.option("--state", "only_state", type=click.Choice(STATES), default=None, help="Only notices in this state.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per notice.")
@click.option("--eml", "eml_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write each stored message, byte for byte, to DIR/MESSAGE-ID.eml (its SHA-256 is the record's).")
@database_option
@with_repo
def notices_command(repo: Repo, policy_id: str, version_id: str, email: str | None, only_state: str | None, as_json: bool,
                    eml_dir: Path | None, database_url: str | None) -> None:
    """Show the record of a version's notices: per recipient and site, the language, the content hash of the
    text they were told about, the state, when it was sent, the Message-ID and the SMTP server's reply.

    \b
    Example:
      addendum notices privacy privacy@2020-09-01 --state failed
      addendum notices privacy privacy@2020-09-01 --email ann@example.org --eml .addendum/mail
    """
    counts: Counter[str] = Counter()
    for record in notice_records(repo, policy_id, version_id, email, only_state, database_url):
        counts[record.state] += 1
        if as_json:
            click.echo(json.dumps(record.as_json(), ensure_ascii=False))
        else:
            click.echo(f"{record.state:<9} {record.sent_at or '-':<25} {record.recipient:<32} {record.site_id}/{record.language} "
                       f"{record.audience:<10} {record.message_id} {record.content_hash[:19]}… {record.reply}")
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no notices"
    click.echo(f"{version_id}: {summary}", err=True)
    if eml_dir is not None:
        written, erased = export_messages(repo, version_id, eml_dir, email, only_state, database_url)
        click.echo(f"wrote {written} stored message(s) to {eml_dir}" + (f"; {erased} erased with their recipient" if erased else ""),
                   err=True)

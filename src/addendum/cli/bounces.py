"""`addendum bounces`: what came back after notices were sent — bounces and complaints, read from a mailbox."""

from __future__ import annotations

import json
from pathlib import Path

import click

from addendum.cli.common import database_option, with_repo
from addendum.config import Repo
from addendum.notify.bounces import import_bounces
from addendum.notify.store import open_store


@click.group("bounces")
def bounces_command() -> None:
    """Record bounces and complaints against the notices they are about.

    Delivery status notifications (RFC 3464) and complaint reports (ARF, RFC 5965) are matched to their notice by the
    return path (notify.return_path: each notice goes out from bounces+TAG@…) or by the Message-ID of the returned
    headers. A hard bounce marks the notice `bounced` with the server's diagnostic (`addendum notices` shows it); an
    address with notify.bounce_limit hard bounces or complaints gets no more notices; a complaint from an optional
    subscriber unsubscribes them.
    """


@bounces_command.command("import")
@click.argument("mailbox", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print what was recorded as one JSON object.")
@database_option
@with_repo
def import_command(repo: Repo, mailbox: Path, as_json: bool, database_url: str | None) -> int:
    """Read MAILBOX (an mbox file or a Maildir folder) and record every report in it, once however often it is read.

    Exit status: 0 when every report was matched to a notice, 1 when some named none (listed), 2 on an error.

    \b
    Example:
      addendum bounces import /var/mail/bounces
    """
    store = open_store(repo, database_url)
    try:
        report = import_bounces(repo, store, mailbox)
    finally:
        store.dispose()
    if as_json:
        click.echo(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        click.echo(f"{mailbox}: {report.read} message(s), {report.reports} report(s): {report.hard} hard bounce(s), "
                   f"{report.soft} delayed or soft, {report.complaints} complaint(s)"
                   + (f"; {report.already} recorded before" if report.already else "")
                   + (f"; {report.not_reports} other message(s) skipped" if report.not_reports else ""))
        for address in report.suppressed:
            click.echo(f"suppressed: {address} (no more notices go to it)")
        for line in report.unmatched:
            click.echo(f"unmatched: {line}", err=True)
        if report.unmatched_count > len(report.unmatched):
            click.echo(f"unmatched: … and {report.unmatched_count - len(report.unmatched)} more", err=True)
    return 1 if report.unmatched_count else 0

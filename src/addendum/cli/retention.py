"""`addendum retention`: purging what erasure kept once its retention period has passed."""

from __future__ import annotations

import click

from addendum.cli.common import database_option, with_repo
from addendum.config import Repo
from addendum.notify.erasure import run_retention
from addendum.notify.state import open_state


@click.group("retention")
def retention_command() -> None:
    """Purge records kept past their retention period.

    `subscribers forget` keeps a forgotten person's notice records, pseudonymised under the keyed hash of their
    address, for retention.erased_records_days (GDPR Art. 17(3)(e): to establish, exercise or defend legal claims).
    """


@retention_command.command("run")
@click.option("--dry-run", is_flag=True, help="Count what would be purged; change nothing.")
@database_option
@with_repo
def run_command(repo: Repo, dry_run: bool, database_url: str | None) -> None:
    """Purge the pseudonymised notice records and subscription events of people forgotten more than
    retention.erased_records_days ago. Their keyed hash stays in the suppression list, so they stay suppressed.

    \b
    Example (e.g. daily, from cron):
      addendum retention run
    """
    with open_state(repo, database_url) as state:
        report = run_retention(state, dry_run=dry_run)
    verb = "would purge" if dry_run else "purged"
    click.echo(f"{verb} {report.notices} notice record(s) and {report.events} event(s) of people forgotten before "
               f"{report.cutoff:%Y-%m-%d %H:%M} UTC (retention.erased_records_days = {report.days})")

"""`addendum tick`: emit the webhook events that are due (effective dates that have come), once, and deliver them."""

from __future__ import annotations

import click

from addendum.cli.common import database_option, with_repo
from addendum.cli.webhooks import print_deliveries
from addendum.config import Repo
from addendum.ids import parse_date
from addendum.operations.webhooks import tick


@click.command("tick")
@click.option("--today", metavar="DATE", default=None, help="Act as on this day, YYYY-MM-DD (default: today).")
@click.option("--time-limit", type=click.FloatRange(min=0), metavar="SECONDS", default=None,
              help="Stop delivering after this long (default: when nothing is due).")
@database_option
@with_repo
def tick_command(repo: Repo, today: str | None, time_limit: float | None, database_url: str | None) -> None:
    """Emit the webhook events that are due and deliver what is due, for cron or a systemd timer.

    version.effective is emitted for each announced version whose effective date has come, and a version.published
    that a publish could not emit is emitted late; each event once, however often tick runs (and alongside
    `addendum serve`, whose background task does the same). Nothing from before the first endpoint was added.

    \b
    Example (crontab, every 5 minutes):
      */5 * * * *  cd /srv/policies && addendum tick
    """
    report = tick(repo, database_url, parse_date(today, "--today") if today else None, time_limit)
    for key in report.emitted:
        click.echo(f"emitted {key}")
    if report.report is not None:
        print_deliveries(report.report)
        if not report.emitted and not report.report.outcomes and not report.report.busy:
            click.echo("nothing due")
        click.echo(f"delivered {report.report.delivered}, retry {report.report.retry}, failed {report.report.failed}", err=True)

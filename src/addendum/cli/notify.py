"""`addendum notify`: e-mail the notice of a published version to everyone who must be told, each once."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from addendum.cli.common import database_option, policy_argument, progress_on_stderr, with_repo
from addendum.config import Repo
from addendum.errors import NotifyError, UsageError
from addendum.notify.campaign import Audience, NotifyOptions, NotifyReport, notify


def _ask(yes: bool) -> Any:
    def confirm(audience: Audience) -> bool:
        click.echo(f"{audience.version_id} ({audience.classification}) changed the text of: "
                   f"{', '.join(audience.affected_sites) or 'no site'}", err=True)
        click.echo(f"to send: {audience.new_recipients} new recipient(s), {audience.queued_due} queued and due"
                   + (f"; {audience.held_unknown} of unknown outcome held" if audience.held_unknown else "")
                   + (f"; {audience.already_sent} sent before" if audience.already_sent else ""), err=True)
        return yes or click.confirm(f"Send {audience.to_send} notice(s)?", err=True)

    return confirm


def _print(report: NotifyReport) -> None:
    audience = report.audience
    for address, variant, delivery in report.canaries:
        click.echo(f"canary {variant} to {address}: {delivery.reply}")
    if report.mode != "send":
        click.echo(f"{report.mode}: {report.rendered} notice(s) of {audience.version_id} rendered, nothing sent or stored")
        if report.previews:
            click.echo(f"  written to {report.previews[0].parent}/ ({len(report.previews)} .eml file(s))")
        return
    if report.declined:
        click.echo("nothing sent")
    elif report.send is None:
        click.echo(f"nothing to send for {audience.version_id}: everyone affected was notified or is held")
    else:
        s = report.send
        click.echo(f"{audience.version_id}: queued {report.queued} new notice(s); this run: sent {s.sent}, retry {s.retry}, "
                   f"failed {s.failed}, unknown {s.unknown}" + (f"; {s.recovered} interrupted earlier" if s.recovered else ""))
        if s.next_retry_at:
            click.echo(f"  next retry due {s.next_retry_at:%Y-%m-%d %H:%M} UTC: run notify again then")
    click.echo("outbox: " + (", ".join(f"{n} {state}" for state, n in sorted(report.totals.items())) or "empty"))


@click.command("notify")
@policy_argument
@click.argument("version_id", metavar="VERSION")
@click.option("--yes", is_flag=True, help="Send without asking (required when not on a terminal).")
@click.option("--force", is_flag=True, help="Notify an editorial version too.")
@click.option("--dry-run", is_flag=True, help="Render every notice; send and store nothing.")
@click.option("--preview", "preview_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the notices as .eml files into DIR; send and store nothing.")
@click.option("--canary", multiple=True, metavar="ADDR", help="Send each variant to this internal address first (repeatable).")
@click.option("--attach-redline", is_flag=True, help="Attach the redline PDF from the archive (addendum archive).")
@click.option("--unknown", type=click.Choice(["retry", "hold"]), default="retry", show_default=True,
              help="Notices whose delivery is unknown (interrupted run, dropped connection): send again, or hold.")
@click.option("--rate", type=click.FloatRange(min=0), metavar="PER_SECOND", default=None,
              help="Messages per second at most (default: notify.rate_per_second; 0: no limit).")
@click.option("--connections", type=click.IntRange(min=1), metavar="N", default=None,
              help="SMTP connections side by side (default: notify.smtp.connections).")
@database_option
@with_repo
def notify_command(repo: Repo, policy_id: str, version_id: str, yes: bool, force: bool, dry_run: bool,
                   preview_dir: Path | None, canary: tuple[str, ...], attach_redline: bool, unknown: str, rate: float | None,
                   connections: int | None, database_url: str | None) -> None:
    """E-mail the change notice of a published VERSION to the subscribers of the sites it changed.

    Each person gets one notice per site, in their language (else the site's default): what changed per section,
    in the editor's words, the likely impact, the effective date, links to the new and previous versions, the
    redline and the changelog, their rights, the supervisory authority and the controller's contact. Notices are
    stored in the outbox before the first attempt; running notify again sends only what is pending or due, so it
    is safe to re-run after any interruption, even a killed process.

    Exit status: 0 when everything due was sent; 1 when some notices wait for a retry, failed or have an unknown
    outcome (see `addendum notices`), or when too many attempts in a row failed and the run paused (the outbox is
    kept: run again later); 2 on an error (e.g. the server refused the login or could not be reached: the outbox
    is kept too).

    \b
    Example:
      addendum notify privacy privacy@2020-09-01 --canary privacy-team@example.org
    """
    if not (yes or dry_run or preview_dir) and not sys.stdin.isatty():
        raise UsageError("sending needs confirmation, and this is not a terminal", "pass --yes to send without asking")
    options = NotifyOptions(force=force, dry_run=dry_run, preview_dir=preview_dir, canary=canary,
                            attach_redline=attach_redline, unknown="hold" if unknown == "hold" else "retry",
                            rate_per_second=rate, connections=connections, database_url=database_url)
    with progress_on_stderr("notify") as progress:
        report = notify(repo, policy_id, version_id, options, _ask(yes), progress)
    _print(report)
    send = report.send
    if send is None:
        return
    if send.stopped and not send.paused:
        raise NotifyError(send.stopped, send.hint)
    if send.paused:
        click.echo(f"{send.stopped}\n  {send.hint}", err=True)
    if send.paused or send.retry or send.failed or send.unknown:
        sys.exit(1)

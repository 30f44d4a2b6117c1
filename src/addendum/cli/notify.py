"""`addendum notify`: e-mail the notice of a published version to everyone who must be told, each once."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import click

from addendum.archive.build import archive
from addendum.cli.common import database_option, policy_argument, progress_on_stderr, with_repo
from addendum.cli.webhooks import echo_announcement
from addendum.config import Repo
from addendum.errors import NotifyError, UsageError
from addendum.notify.campaign import Audience, NotifyOptions, NotifyReport, notify
from addendum.notify.content import notice_timing, plan_notice
from addendum.operations.webhooks import announce_notices


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
        click.echo(f"nothing to send for {audience.version_id} now" if report.outstanding else
                   f"nothing to send for {audience.version_id}: everyone affected was notified"
                   + (f", except {report.totals['failed']} whose notice failed for good (`addendum notices … --state failed`)"
                      if report.totals.get("failed") else ""))
    else:
        s = report.send
        click.echo(f"{audience.version_id}: queued {report.queued} new notice(s); this run: sent {s.sent}, retry {s.retry}, "
                   f"failed {s.failed}, unknown {s.unknown}" + (f"; {s.recovered} interrupted earlier" if s.recovered else "")
                   + (f" ({s.workers} workers)" if s.workers > 1 else ""))
        for died in s.died:
            click.echo(f"a sender ended early: {died}; what it held goes back to the others, its message in flight is "
                       "unknown", err=True)
    click.echo("outbox: " + (", ".join(f"{n} {state}" for state, n in sorted(report.totals.items())) or "empty"))
    if report.outstanding:
        click.echo("outstanding: " + ", ".join(f"{n} {state}{_OWED[state](report)}" for state, n in report.outstanding.items()))


# What each outstanding state waits for, after its count.
_OWED: dict[str, Callable[[NotifyReport], str]] = {
    "new": lambda report: " recipient(s), not queued",
    "pending": lambda report: _held(report, "pending", "not attempted yet: run notify again"),
    "sending": lambda report: (" (being sent by other senders)" if report.held.get("sending") == report.totals["sending"]
                               else " (interrupted: the next run records them unknown)"),
    "retry": lambda report: (f" (next due {report.next_retry_at:%Y-%m-%d %H:%M} UTC: run notify again then)"
                             if report.next_retry_at else ""),
    "unknown": lambda report: (" (may have arrived; held: `--unknown retry` sends them again)" if report.audience.held_unknown
                               else " (may have arrived; the next run sends them again, `--unknown hold` keeps them)"),
}


def _held(report: NotifyReport, state: str, otherwise: str) -> str:
    """What waits in `state`: held by senders still running elsewhere (PostgreSQL), or `otherwise`."""
    held, total = report.held.get(state, 0), report.totals[state]
    if not held:
        return f" ({otherwise})"
    return " (held by other senders)" if held == total else f" ({held} held by other senders; the rest {otherwise})"


def _exit_status(report: NotifyReport) -> int:
    """0 when nothing of the version is owed to anyone any more; 1 while something is, or this run paused or met a
    permanent failure; an error (2) when the run stopped on the server."""
    send = report.send
    if send is not None and send.stopped and not send.paused:
        raise NotifyError(send.stopped, send.hint)
    if send is not None and send.paused:
        click.echo(f"{send.stopped}\n  {send.hint}", err=True)
    return 1 if report.outstanding or (send is not None and (send.paused or send.failed)) else 0


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
              help="SMTP connections side by side, per worker (default: notify.smtp.connections).")
@click.option("--workers", type=click.IntRange(min=1, max=64), metavar="N", default=1, show_default=True,
              help="Sender processes on this machine (more than 1 needs a PostgreSQL state store).")
@click.option("--urgent", is_flag=True, help="Send inside the notice period (notice_days before the effective date); needs --reason.")
@click.option("--late", is_flag=True, help="Send on or after the effective date; the notice says the change took effect. Needs --reason.")
@click.option("--reason", default="", metavar="TEXT", help="Why the notice is --urgent or --late (recorded with each notice).")
@click.option("--site", "sites", multiple=True, metavar="SITE",
              help="Notify only the readers of this site (repeatable; default: every site the version changed).")
@click.option("--archive", "build_archive", is_flag=True,
              help="Build what is missing of the archive first (addendum archive POLICY): notices link to it.")
@database_option
@with_repo
def notify_command(repo: Repo, policy_id: str, version_id: str, yes: bool, force: bool, dry_run: bool,
                   preview_dir: Path | None, canary: tuple[str, ...], attach_redline: bool, unknown: str, rate: float | None,
                   connections: int | None, workers: int, urgent: bool, late: bool, reason: str, sites: tuple[str, ...],
                   build_archive: bool, database_url: str | None) -> int:
    """E-mail the change notice of a published VERSION to the subscribers of the sites it changed.

    Each person gets one notice per site, in their language (else the site's default): what changed per section,
    in the editor's words, the likely impact, the effective date, links to the new and previous versions, the
    redline and the changelog, their rights, the supervisory authority and the controller's contact. Notices are
    stored in the outbox before the first attempt; running notify again sends only what is pending or due, so it
    is safe to re-run after any interruption, even a killed process.

    A notice is true on the day it is sent: at least notice_days (policy.toml) before the effective date it
    announces the change; inside that period it is refused unless --urgent --reason TEXT; on or after the
    effective date it is refused unless --late --reason TEXT, and then says the change took effect on that date.
    The reason is recorded with each notice (`addendum notices --json`). A dry run or preview refuses nothing.

    A notice is refused while what it points to is not there: a page of the archive it links to (the new and
    previous versions, the redline, the changelog) that `addendum archive` has not built yet (--archive builds it
    first), or a site's text showing a "[to be provided: …]" marker for a value the site does not give yet
    ([sites.X] pending in policy.toml). The error names each site, language and section or file; --site SITE
    notifies only the readers of the sites whose text is complete.

    Many senders can share a PostgreSQL state store: --workers N starts N sender processes here, and the same
    command on other machines (one ADDENDUM_DATABASE_URL) adds theirs. Each claims notices in small batches under a
    lease of its own; the rate limit (--rate) holds for all of them together. A sender that was killed is taken over
    at once on this machine (after one heartbeat, notify.heartbeat_interval, when stopped; after three from another
    machine): what it had only claimed goes back to the others, a message it was sending is of unknown outcome.
    A SQLite store keeps one sender: a second run is refused while the first one runs, and told when it may take over.

    Exit status: 0 when nothing of the version is outstanding (every notice was sent, or failed for good in an
    earlier run); 1 while something is (notices pending, waiting for a retry or of unknown outcome, held or not:
    the last line counts them per state, `addendum notices` lists them), when this run met a permanent failure, or
    when too many attempts in a row failed and the run paused (the outbox is kept: run again later); 2 on an error
    (e.g. the server refused the login or could not be reached, or another sender holds the lease: the outbox is
    kept too). A dry run or preview exits 0.

    \b
    Example:
      addendum notify privacy privacy@2020-09-01 --canary privacy-team@example.org
    """
    if not (dry_run or preview_dir):  # whether the notice may be sent today comes before how to confirm it
        notice_timing(plan_notice(repo, policy_id, version_id, force), date.today(), urgent, late, reason)
    if not (yes or dry_run or preview_dir) and not sys.stdin.isatty():
        raise UsageError("sending needs confirmation, and this is not a terminal", "pass --yes to send without asking")
    options = NotifyOptions(force=force, dry_run=dry_run, preview_dir=preview_dir, canary=canary,
                            attach_redline=attach_redline, unknown="hold" if unknown == "hold" else "retry",
                            rate_per_second=rate, connections=connections, database_url=database_url, workers=workers,
                            urgent=urgent, late=late, reason=reason, sites=sites)
    if build_archive and not (dry_run or preview_dir):
        with progress_on_stderr("archive") as progress:
            archive(repo, (policy_id,), progress=progress)
    with progress_on_stderr("notify") as progress:
        report = notify(repo, policy_id, version_id, options, _ask(yes), progress)
    _print(report)
    if report.send is not None:
        run = {"sent": report.send.sent, "retry": report.send.retry, "failed": report.send.failed, "unknown": report.send.unknown}
        echo_announcement(announce_notices(repo, policy_id, report.audience.version_id, run, report.totals,
                                           sum(report.outstanding.values()), database_url))
    return _exit_status(report)

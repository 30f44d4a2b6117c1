"""`addendum webhooks`: receivers of signed events (Standard Webhooks), their secrets, and the record of deliveries."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import click

from addendum.cli.common import database_option, with_repo
from addendum.config import Repo
from addendum.errors import NotifyError
from addendum.notify.webhooks import (
    EVENT_TYPES,
    SECRETS_ENV,
    STATES,
    DeliverReport,
    add_endpoint,
    delivery_records,
    endpoints,
    parse_events,
    remove_endpoint,
    rotate_secret,
)
from addendum.operations.webhooks import Announcement, deliver_options, open_hooks, require_site


@click.group("webhooks")
def webhooks_command() -> None:
    """Send signed events to the company's own systems: a version published, a version taking effect, a notice run
    finished (docs/webhooks.md).

    Deliveries follow the Standard Webhooks specification: headers webhook-id, webhook-timestamp and
    webhook-signature (v1, HMAC-SHA256 of id.timestamp.body with the endpoint's whsec_ secret). Each is stored
    before its first attempt and retried with backoff until the receiver answers 2xx; `addendum tick` emits the
    effective dates that have come.
    """


@webhooks_command.command("add")
@click.argument("url")
@click.option("--events", "event_list", required=True, metavar="TYPES",
              help=f"Comma-separated event types: {', '.join(EVENT_TYPES)}.")
@click.option("--site", "site_id", metavar="SITE", default=None, help="Only events about this site (default: every site).")
@database_option
@with_repo
def add_command(repo: Repo, url: str, event_list: str, site_id: str | None, database_url: str | None) -> None:
    """Register a receiver URL and print its signing secret (shown this once; kept in webhooks.secret_file).

    \b
    Example:
      addendum webhooks add https://hooks.example.org/addendum --events version.published,version.effective
    """
    events = parse_events(event_list)
    with open_hooks(repo, database_url) as hooks:
        endpoint, secret = add_endpoint(hooks.store, hooks.secrets, url, events, require_site(repo, site_id) if site_id else None)
    click.echo(f"added {endpoint.id}: {endpoint.url} ({', '.join(endpoint.events)}; site {endpoint.site_id or 'all'})")
    click.echo(f"secret: {secret}")
    if hooks.secrets.file is None:
        click.echo(f"add it to {SECRETS_ENV}: {endpoint.id}={secret}", err=True)
    else:
        click.echo(f"  kept in {hooks.secrets.file} (mode 0600); give it to the receiver to verify signatures", err=True)


@webhooks_command.command("list")
@database_option
@with_repo
def list_command(repo: Repo, database_url: str | None) -> None:
    """List the registered receivers: id, URL, event types, site, and how many deliveries each has per state."""
    with open_hooks(repo, database_url) as hooks:
        found = endpoints(hooks.store)
        counts = Counter((record.endpoint_id, record.state) for record in delivery_records(hooks.store))
    for endpoint in found:
        states = ", ".join(f"{counts[(endpoint.id, s)]} {s}" for s in STATES if counts[(endpoint.id, s)]) or "no deliveries"
        click.echo(f"{endpoint.id}  {endpoint.url}  {','.join(endpoint.events)}  site {endpoint.site_id or 'all'}  ({states})")
    if not found:
        click.echo("no webhook endpoints: add one with `addendum webhooks add URL --events …`", err=True)


@webhooks_command.command("remove")
@click.argument("endpoint_id", metavar="ENDPOINT")
@database_option
@with_repo
def remove_command(repo: Repo, endpoint_id: str, database_url: str | None) -> None:
    """Remove a receiver and its secrets; deliveries still owed to it are cancelled (the record stays)."""
    with open_hooks(repo, database_url) as hooks:
        cancelled = remove_endpoint(hooks.store, hooks.secrets, endpoint_id)
    click.echo(f"removed {endpoint_id}" + (f"; {cancelled} outstanding delivery(ies) cancelled" if cancelled else ""))


@webhooks_command.command("rotate-secret")
@click.argument("endpoint_id", metavar="ENDPOINT")
@database_option
@with_repo
def rotate_command(repo: Repo, endpoint_id: str, database_url: str | None) -> None:
    """Give a receiver a new signing secret; for webhooks.rotation_overlap seconds every delivery carries a
    signature with the old secret and one with the new, so the receiver can switch without losing one."""
    with open_hooks(repo, database_url) as hooks:
        overlap = timedelta(seconds=float(repo.setting("webhooks.rotation_overlap")))
        secret, until = rotate_secret(hooks.store, hooks.secrets, endpoint_id, overlap)
    click.echo(f"secret: {secret}")
    click.echo(f"  the old secret signs too until {until:%Y-%m-%d %H:%M:%S} UTC", err=True)


def print_deliveries(report: DeliverReport) -> None:
    for message_id, url, answer in report.outcomes:
        click.echo(f"{answer.outcome:<9} {message_id} {url} {answer.reply}")
    if report.busy:
        click.echo(f"not delivering: {report.busy}", err=True)


def echo_announcement(announcement: Announcement) -> None:
    """What a publish or a notice run told the webhooks, on stderr: the command's own output stays as it was."""
    if announcement.problem:
        click.echo(f"webhooks: not emitted ({announcement.problem}); `addendum tick` emits it later", err=True)
        return
    if not announcement.queued:
        return
    report = announcement.report
    line = f"webhooks: {', '.join(announcement.events)} queued for {announcement.queued} endpoint(s)"
    if report is not None:
        line += f"; delivered {report.delivered}, retry {report.retry}, failed {report.failed}"
        if report.busy or report.out_of_time or report.retry:
            line += " (the rest: `addendum webhooks deliver`)"
    click.echo(line, err=True)


@webhooks_command.command("deliver")
@click.option("--time-limit", type=click.FloatRange(min=0), metavar="SECONDS", default=None,
              help="Stop after this long (default: when nothing is due).")
@database_option
@with_repo
def deliver_command(repo: Repo, time_limit: float | None, database_url: str | None) -> int:
    """Deliver every due webhook (pending, due for a retry, or interrupted earlier) once; safe to re-run at any time.

    Exit status: 0 when nothing is outstanding, 1 while deliveries wait for a retry, 2 on an error (another
    deliverer at work, a store that cannot be opened).
    """
    from addendum.notify.webhooks import deliver

    with open_hooks(repo, database_url) as hooks:
        report = deliver(hooks.store, hooks.secrets, deliver_options(repo, time_limit))
        if report.busy:
            raise NotifyError(f"not delivering: {report.busy}", "one deliverer runs at a time; it delivers what is due")
        print_deliveries(report)
        waiting = Counter(r.state for r in delivery_records(hooks.store) if r.state in ("pending", "retry", "unknown"))
    click.echo(f"delivered {report.delivered}, retry {report.retry}, failed {report.failed}"
               + (f"; {report.interrupted} interrupted earlier" if report.interrupted else "")
               + (f"; outstanding: {', '.join(f'{n} {s}' for s, n in sorted(waiting.items()))}" if waiting else ""), err=True)
    return 1 if waiting else 0


@webhooks_command.command("deliveries")
@click.option("--state", "only_state", type=click.Choice(STATES), default=None, help="Only deliveries in this state.")
@click.option("--endpoint", "endpoint_id", metavar="ENDPOINT", default=None, help="Only the deliveries to this endpoint.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per delivery.")
@database_option
@with_repo
def deliveries_command(repo: Repo, only_state: str | None, endpoint_id: str | None, as_json: bool,
                       database_url: str | None) -> None:
    """Show the record of webhook deliveries: webhook-id, event, receiver, state, attempts and the last answer."""
    with open_hooks(repo, database_url) as hooks:
        records = delivery_records(hooks.store, only_state, endpoint_id)
    for record in records:
        if as_json:
            click.echo(json.dumps(record.as_json(), ensure_ascii=False))
        else:
            when = f"{record.delivered_at:%Y-%m-%d %H:%M:%S}" if record.delivered_at else "-"
            click.echo(f"{record.state:<9} {when:<19} {record.message_id} {record.event_key} {record.endpoint_id} "
                       f"attempts {record.attempts} {record.reply[:80]}")
    summary = Counter(r.state for r in records)
    click.echo(", ".join(f"{n} {s}" for s, n in sorted(summary.items())) or "no deliveries", err=True)


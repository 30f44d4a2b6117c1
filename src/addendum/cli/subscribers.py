"""`addendum subscribers`: the people who receive change notices, kept in the local state store, never in git."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import click

from addendum.cli.common import database_option, export_records, with_repo
from addendum.config import Repo
from addendum.errors import NotifyError, UsageError
from addendum.notify.erasure import erasure_plan, forget_subscriber
from addendum.notify.state import open_state, rotate_keys
from addendum.notify.store import utcnow
from addendum.notify.subscribers import (
    add_subscriber,
    export_subscribers,
    import_subscribers,
    list_subscribers,
    remove_subscriber,
    unsubscribe,
)


@click.group("subscribers")
def subscribers_command() -> None:
    """Manage who receives change notices.

    Subscribers are personal data: they live in the state store (.addendum/state.db, mode 0600, git-ignored, or
    the database at ADDENDUM_DATABASE_URL), never in the policy repository's git history.

    \b
    Audiences:
      account     account holders: the notice is a legal notice, sent even to those who left the optional list
                  (legal basis: the contract, GDPR Art. 6(1)(b))
      subscriber  people who opted in to change notices; every notice carries a one-click unsubscribe link
                  (legal basis: their consent, GDPR Art. 6(1)(a))

    Every change (added, imported, changed, unsubscribed, bounced, removed, forgotten) is recorded with its source
    and time: `addendum evidence EMAIL` shows the history.
    """


@subscribers_command.command("add")
@click.argument("email")
@click.option("--name", default="", help="The person's name, used in the greeting.")
@click.option("--lang", "language", required=True, metavar="LANG", help="Language of their notices, e.g. en or nl.")
@click.option("--site", "sites", multiple=True, required=True, metavar="SITE", help="A site they use (repeatable).")
@click.option("--policy", "policies", multiple=True, metavar="POLICY", help="Only this policy (repeatable; default: all).")
@click.option("--audience", type=click.Choice(["account", "subscriber"]), required=True, help="Why they are told.")
@click.option("--consent-source", default="cli", show_default=True, help="Where the consent or account came from.")
@click.option("--consent-at", default="", metavar="DATE", help="When it was given (default: now).")
@click.option("--resubscribe", is_flag=True, help="Undo an earlier unsubscribe (only with new consent).")
@click.option("--allow-suppressed", is_flag=True, help="Add an address that was erased before (only with new consent).")
@database_option
@with_repo
def add_command(repo: Repo, email: str, name: str, language: str, sites: tuple[str, ...], policies: tuple[str, ...],
                audience: str, consent_source: str, consent_at: str, resubscribe: bool, allow_suppressed: bool,
                database_url: str | None) -> None:
    """Add one person (or update them, when the address is known).

    \b
    Example:
      addendum subscribers add ann@example.org --name Ann --lang en --site selentic --audience subscriber
    """
    raw = {"email": email, "name": name, "language": language, "sites": ";".join(sites), "policies": ";".join(policies),
           "audience": audience, "consent_source": consent_source, "consent_at": consent_at}
    with open_state(repo, database_url) as state:
        result = add_subscriber(state, raw, resubscribe=resubscribe, allow_suppressed=allow_suppressed)
    click.echo(f"{'added' if result.created else 'updated'} {result.subscriber.email}")
    for note in result.messages:
        click.echo(f"note: {note}", err=True)


@subscribers_command.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--skip-invalid", is_flag=True, help="Import the good rows even when some are bad.")
@click.option("--consent-source", default=None, help="Recorded source of consent (default: import:FILE).")
@database_option
@with_repo
def import_command(repo: Repo, file: Path, skip_invalid: bool, consent_source: str | None, database_url: str | None) -> None:
    """Import subscribers from a CSV file.

    The header row names the columns: email,name,language,sites,audience (required) and policies, consent_source,
    consent_at (optional). Several sites or policies are separated by ';'; no policies means all. Every bad row
    is reported with its line and reason (the first 50 in full), an unterminated quote too; if any row is bad
    nothing is imported, unless --skip-invalid. Addresses that were erased (`forget`) are recognised and left out.
    Known addresses are updated.

    \b
    Example file:
      email,name,language,sites,audience,policies,consent_at
      ann@example.org,Ann Peeters,nl,selentic;cavallo,subscriber,privacy,2024-03-01
    \b
    Example:
      addendum subscribers import people.csv --consent-source "signup form"
    """
    with open_state(repo, database_url) as state:
        report = import_subscribers(state, file, skip_invalid=skip_invalid, consent_source=consent_source)
    for problem in report.problems:
        click.echo(f"{file}:{problem.format()}", err=True)
    if report.bad_rows > len(report.problems):
        click.echo(f"{file}: … and {report.bad_rows - len(report.problems)} more bad row(s)", err=True)
    for skipped in report.suppressed:
        click.echo(f"{file}:{skipped.format()}", err=True)
    if report.suppressed_rows > len(report.suppressed):
        click.echo(f"{file}: … and {report.suppressed_rows - len(report.suppressed)} more suppressed row(s)", err=True)
    if not report.imported:
        raise NotifyError(f"{report.bad_rows} bad row(s) in {file}: nothing imported",
                          "fix them, or import the good rows with --skip-invalid")
    skipped_text = f", {report.bad_rows} bad row(s) skipped" if report.bad_rows else ""
    click.echo(f"imported {report.added + report.updated}: {report.added} added, {report.updated} updated"
               f"{skipped_text}, {report.suppressed_rows} suppressed")


@subscribers_command.command("list")
@click.option("--policy", "policy_id", metavar="POLICY", help="Only subscribers of this policy.")
@click.option("--site", "site_id", metavar="SITE", help="Only subscribers of this site.")
@database_option
@with_repo
def list_command(repo: Repo, policy_id: str | None, site_id: str | None, database_url: str | None) -> None:
    """List subscribers: address, language, sites, audience and status."""
    count = 0
    with open_state(repo, database_url) as state:
        for subscriber in list_subscribers(state, policy_id, site_id):
            row = subscriber.as_row()
            click.echo(f"{row['email']:<36} {row['language']:<5} {row['audience']:<10} {row['status']:<12} "
                       f"{row['sites']}{'  [' + row['policies'] + ']' if row['policies'] else ''}")
            count += 1
    click.echo(f"{count} subscriber(s)", err=True)


@subscribers_command.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True,
              help="csv: the import format; jsonl: one JSON object per person, with the notices sent to them.")
@click.option("--email", default=None, help="Only this person (e.g. to answer their request to see their data).")
@click.option("--policy", "policy_id", metavar="POLICY", help="Only subscribers of this policy.")
@click.option("--site", "site_id", metavar="SITE", help="Only subscribers of this site.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file (mode 0600).")
@database_option
@with_repo
def export_command(repo: Repo, fmt: str, email: str | None, policy_id: str | None, site_id: str | None,
                   output: Path | None, database_url: str | None) -> None:
    """Export subscribers (CSV that `import` reads back, or JSON lines).

    A CSV field that a spreadsheet would run as a formula (starting with =, +, - or @) gets a leading apostrophe,
    which `import` takes off again. A file inside the repository must be git-ignored.

    \b
    Example:
      addendum subscribers export --format jsonl --email ann@example.org -o .addendum/ann.jsonl
    """
    def write(out: TextIO) -> int:
        with open_state(repo, database_url) as state:
            return export_subscribers(state, out, fmt, policy_id, site_id, email)

    export_records(repo, output, "subscriber", write)


@subscribers_command.command("remove")
@click.argument("email")
@database_option
@with_repo
def remove_command(repo: Repo, email: str, database_url: str | None) -> None:
    """Take a person off the list; the record of notices already sent to them is kept (see `forget`)."""
    with open_state(repo, database_url) as state:
        cancelled = remove_subscriber(state, email)
    click.echo(f"removed {email}" + (f"; {cancelled} unsent notice(s) cancelled" if cancelled else ""))


@subscribers_command.command("forget")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Erase without asking (required when not on a terminal).")
@database_option
@with_repo
def forget_command(repo: Repo, email: str, yes: bool, database_url: str | None) -> int:
    """Erase a person: their address, name, subscriptions and stored messages. What proves they were notified is
    kept, pseudonymised under a keyed hash of the address (GDPR Art. 17(3)(e), legal claims): per notice the version,
    content hash, Message-ID, times and SMTP reply, and the history of their subscription, until `addendum retention
    run` purges it after retention.erased_records_days. The hash keeps the address suppressed: a later import leaves
    it out. Shows what it will erase and keep, and asks first. Exit status 1 when the address is not known.

    \b
    Example:
      addendum subscribers forget ann@example.org --yes
      addendum evidence HASH                   # the record kept, without the address
    """
    with open_state(repo, database_url) as state:
        plan = erasure_plan(state, email)
        if not plan.known:
            forget_subscriber(state, email)
            since = f"forgotten on {plan.suppressed_since:%Y-%m-%d} already" if plan.suppressed_since else \
                "suppressed all the same, so that an import leaves it out"
            click.echo(f"{plan.address} is not known: no subscriber and no notice record; {since}")
            return 1
        keep_until = plan.keep_until(utcnow())
        click.echo(f"forget {plan.address}:\n"
                   f"  erase: the address and name, {plan.subscriptions} subscription(s), {plan.bodies} stored message(s), "
                   f"the address in SMTP replies and bounce reports\n"
                   f"  keep until {keep_until:%Y-%m-%d} (retention.erased_records_days), under the keyed hash {plan.digest}: "
                   f"{plan.notices} notice record(s) (version, content hash, Message-ID, times, SMTP reply), "
                   f"{plan.attempts} attempt(s), {plan.bounces} bounce(s), {plan.events} subscription event(s)"
                   + (f"\n  cancel: {plan.unsent} notice(s) not sent yet" if plan.unsent else ""))
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError("erasure needs confirmation, and this is not a terminal", "pass --yes to erase without asking")
            if not click.confirm("Erase?", err=True):
                click.echo("nothing erased")
                return 1
        done = forget_subscriber(state, email)
    click.echo(f"forgot {done.address}: {done.notices} notice record(s) kept under the keyed hash {done.digest}; "
               "address suppressed")
    return 0


@subscribers_command.command("unsubscribe")
@click.argument("token")
@database_option
@with_repo
def unsubscribe_command(repo: Repo, token: str, database_url: str | None) -> None:
    """Honour an unsubscribe token (from the link or the mailto in a notice): for the endpoint behind
    notify.unsubscribe_url, which must answer the one-click POST with 200.

    \b
    Example:
      addendum subscribers unsubscribe 1.4f0c…
    """
    with open_state(repo, database_url) as state:
        result = unsubscribe(state, token, source="subscribers unsubscribe")
    state_text = "was already unsubscribed" if result.already else "unsubscribed"
    click.echo(f"{result.email} {state_text}" + (f"; {result.cancelled} unsent notice(s) cancelled" if result.cancelled else ""))


@subscribers_command.command("rotate-key")
@with_repo
def rotate_key_command(repo: Repo) -> None:
    """Add a new key for unsubscribe tokens; links already sent keep working (old keys are kept)."""
    click.echo(f"new key version {rotate_keys(repo)}: new notices are signed with it")

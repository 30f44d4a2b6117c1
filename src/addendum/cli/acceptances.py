"""`addendum acceptances`: which version of a policy each user of a site accepted, kept in the state store, never in git."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import TextIO

import click

from addendum.cli.common import database_option, export_records, policy_argument, with_repo
from addendum.config import Repo
from addendum.errors import NotifyError
from addendum.ids import parse_date
from addendum.notify.acceptances import (
    acceptance_stats,
    export_acceptances,
    forget_user,
    import_acceptances,
    list_acceptances,
    list_keys,
    needs_acceptance,
    pending_users,
    revoke_key,
)
from addendum.notify.state import open_state
from addendum.operations.acceptances import need_json, new_site_key


def _day(value: str | None) -> date | None:
    return parse_date(value, "--at") if value else None


at_option = click.option("--at", "at", metavar="DATE", help="Ask about the version in force on this day (default: today).")
upcoming_option = click.option("--upcoming", is_flag=True, help="Ask about the last announced version, not yet in force.")


@click.group("acceptances")
def acceptances_command() -> None:
    """Record which version of a policy each user accepted, and who must accept again.

    A record names the user by the site's own id (never an e-mail address), the policy, the version and its
    content hash, the site, the language, when and how (clickwrap, signup, email-link), and optionally a keyed
    hash of the client's IP address. Records are append-only and live in the state store, never in git.
    Only a material version that changed a user's text asks them again; editorial ones never do.
    """


@acceptances_command.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@database_option
@with_repo
def import_command(repo: Repo, file: Path, database_url: str | None) -> None:
    """Import acceptance records from a CSV file; when a row is wrong, nothing is imported.

    \b
    Columns: user,policy,version,site,language,accepted_at,method (optional: content_hash, ip)
      u-4821,privacy,privacy@2018-05-19,selentic,nl,2019-03-01T10:00:00Z,clickwrap
    """
    with open_state(repo, database_url) as state:
        report = import_acceptances(state, file)
    for problem in report.problems:
        click.echo(f"{file}:{problem}", err=True)
    if report.bad_rows:
        more = report.bad_rows - len(report.problems)
        raise NotifyError(f"{report.bad_rows} bad row(s) in {file}: nothing imported" + (f" ({more} not shown)" if more else ""),
                          "fix them and import the file again")
    click.echo(f"imported {report.imported} acceptance(s)")


@acceptances_command.command("list")
@click.option("--user", "user_ref", metavar="USER", help="Only this user reference.")
@click.option("--policy", "policy_id", metavar="POLICY", help="Only this policy.")
@click.option("--site", "site_id", metavar="SITE", help="Only this site.")
@database_option
@with_repo
def list_command(repo: Repo, user_ref: str | None, policy_id: str | None, site_id: str | None, database_url: str | None) -> None:
    """List acceptance records in the order they were stored."""
    count = 0
    with open_state(repo, database_url) as state:
        for record in list_acceptances(state, user_ref, policy_id, site_id):
            click.echo(f"{record.accepted_at:%Y-%m-%d %H:%M}Z  {record.user_ref:<20} {record.site_id:<12} "
                       f"{record.version_id:<24} {record.language:<5} {record.method}")
            count += 1
    click.echo(f"{count} acceptance(s)", err=True)


@acceptances_command.command("stats")
@policy_argument
@click.option("--site", "site_id", metavar="SITE", help="Only this site.")
@at_option
@upcoming_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
@with_repo
def stats_command(repo: Repo, policy_id: str, site_id: str | None, at: str | None, upcoming: bool, as_json: bool,
                  database_url: str | None) -> None:
    """Per site and version: how many users accepted it last, and how many of them must accept again."""
    with open_state(repo, database_url) as state:
        stats = acceptance_stats(state, policy_id, _day(at), upcoming, site_id)
    if as_json:
        click.echo(json.dumps(stats.as_json(), indent=2))
        return
    click.echo(f"{policy_id}: who must accept {stats.target.id}")
    click.echo(f"{'site':<14} {'accepted last':<26} {'users':>8} {'must accept':>12}")
    for row in stats.rows:
        click.echo(f"{row.site_id:<14} {row.version_id:<26} {row.accepted:>8} {row.must_accept:>12}")
    click.echo(f"{'total':<41} {sum(r.accepted for r in stats.rows):>8} {sum(r.must_accept for r in stats.rows):>12}")


@acceptances_command.command("pending")
@policy_argument
@click.option("--site", "site_id", metavar="SITE", help="Only this site.")
@at_option
@upcoming_option
@database_option
@with_repo
def pending_command(repo: Repo, policy_id: str, site_id: str | None, at: str | None, upcoming: bool,
                    database_url: str | None) -> None:
    """List the users who must accept the policy again: site, user, the version they accepted last."""
    count = 0
    with open_state(repo, database_url) as state:
        target, users = pending_users(state, policy_id, _day(at), upcoming, site_id)
        for user in users:
            click.echo(f"{user.site_id:<14} {user.user_ref:<24} {user.version_id:<26} {user.language}")
            count += 1
    click.echo(f"{count} user(s) must accept {target.id}", err=True)


@acceptances_command.command("needs")
@click.argument("user_ref", metavar="USER")
@click.option("--policy", "policy_id", metavar="POLICY", required=True, help="The policy.")
@click.option("--site", "site_id", metavar="SITE", required=True, help="The user's site.")
@click.option("--lang", "language", metavar="LANG", help="The language they read (default: the one they accepted in).")
@at_option
@upcoming_option
@click.option("--json", "as_json", is_flag=True, help="Print the answer of GET /api/needs-acceptance.")
@database_option
@with_repo
def needs_command(repo: Repo, user_ref: str, policy_id: str, site_id: str, language: str | None, at: str | None,
                  upcoming: bool, as_json: bool, database_url: str | None) -> int:
    """Say whether USER must accept the policy (again), and which material versions ask it: exit 1 when they must."""
    day = _day(at) or date.today()
    with open_state(repo, database_url) as state:
        need, standing, chosen = needs_acceptance(state, user_ref, policy_id, site_id, language, day, upcoming)
    if as_json:
        click.echo(json.dumps(need_json(user_ref, policy_id, site_id, chosen, day, need, standing), indent=2))
        return 1 if need.needed else 0
    last = standing.version_id if standing else "nothing"
    click.echo(f"{user_ref}: {'must accept' if need.needed else 'has accepted'} {need.target.id} (accepted last: {last})")
    for change in need.material_changes:
        click.echo(f"  {change.version.id} (material): {change.summary}")
    return 1 if need.needed else 0


@acceptances_command.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True,
              help="csv: the import format; jsonl: one JSON object per record.")
@click.option("--user", "user_ref", metavar="USER", help="Only this user reference (e.g. to answer their request to see their data).")
@click.option("--policy", "policy_id", metavar="POLICY", help="Only this policy.")
@click.option("--site", "site_id", metavar="SITE", help="Only this site.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file (mode 0600).")
@database_option
@with_repo
def export_command(repo: Repo, fmt: str, user_ref: str | None, policy_id: str | None, site_id: str | None,
                   output: Path | None, database_url: str | None) -> None:
    """Export acceptance records (CSV that `import` reads back, or JSON lines); a file in the repository must be git-ignored."""
    def write(out: TextIO) -> int:
        with open_state(repo, database_url) as state:
            return export_acceptances(state, out, fmt, user_ref, policy_id, site_id)

    export_records(repo, output, "acceptance", write)


@acceptances_command.command("forget")
@click.argument("user_ref", metavar="USER_REF")
@click.option("--site", "site_id", metavar="SITE", help="Only on this site (user references are the sites' own ids).")
@database_option
@with_repo
def forget_command(repo: Repo, user_ref: str, site_id: str | None, database_url: str | None) -> None:
    """Erase every acceptance record of a user reference.

    \b
    Example:
      addendum acceptances forget u-4821 --site selentic
    """
    with open_state(repo, database_url) as state:
        erased = forget_user(state, user_ref, site_id)
    click.echo(f"forgot {user_ref}: {erased} acceptance record(s) erased")


@acceptances_command.group("keys")
def keys_command() -> None:
    """The API keys of the sites that call the acceptance endpoints (stored hashed)."""


@keys_command.command("add")
@click.argument("site_id", metavar="SITE")
@database_option
@with_repo
def keys_add_command(repo: Repo, site_id: str, database_url: str | None) -> None:
    """Create an API key for SITE and print it, this once: send it as `Authorization: Bearer KEY`."""
    with open_state(repo, database_url) as state:
        key, secret = new_site_key(state, site_id)
    click.echo(secret)
    click.echo(f"key {key.key_id} for site {site_id}: keep it secret, it is not shown again", err=True)


@keys_command.command("list")
@database_option
@with_repo
def keys_list_command(repo: Repo, database_url: str | None) -> None:
    """List the API keys: id, site, created, revoked."""
    with open_state(repo, database_url) as state:
        for key in list_keys(state):
            revoked = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}Z" if key.revoked_at else "active"
            click.echo(f"{key.key_id}  {key.site_id:<14} created {key.created_at:%Y-%m-%d %H:%M}Z  {revoked}")


@keys_command.command("revoke")
@click.argument("key_id", metavar="KEY_ID")
@database_option
@with_repo
def keys_revoke_command(repo: Repo, key_id: str, database_url: str | None) -> None:
    """Revoke an API key at once."""
    with open_state(repo, database_url) as state:
        done = revoke_key(state, key_id)
    click.echo(f"revoked {key_id}" if done else f"{key_id} was revoked already")

"""`addendum publish`: record the committed policy as a dated, immutable published version."""

from __future__ import annotations

import re

import click

from addendum.cli.common import policy_argument, with_repo
from addendum.config import Repo
from addendum.errors import UsageError
from addendum.ids import parse_date
from addendum.publish.gates import publish_gated
from addendum.publish.record import DEFAULT_LANGUAGE_KEY
from addendum.publish.record import sync_tags as sync_version_tags

SUMMARY_OPTION = re.compile(r"--summary-(?P<lang>[a-z]{2,3}(?:-[A-Z]{2})?)(?:=(?P<text>.*))?", re.DOTALL)


class SummaryCommand(click.Command):
    """A command that also takes `--summary-LANG TEXT` for any language code."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest: list[str] = []
        summaries: dict[str, str] = {}
        tokens = iter(args)
        for token in tokens:
            match = SUMMARY_OPTION.fullmatch(token)
            if token == "--":
                rest.extend([token, *tokens])
                break
            if match is None:
                rest.append(token)
                continue
            text = match["text"] if match["text"] is not None else next(tokens, None)
            if text is None:
                raise click.UsageError(f"{token} needs a text", ctx)
            summaries[match["lang"]] = text
        ctx.meta["addendum.summaries"] = summaries
        return super().parse_args(ctx, rest)


@click.command("publish", cls=SummaryCommand)
@policy_argument
@click.option("--effective", metavar="DATE", help="The day the version takes effect, YYYY-MM-DD.")
@click.option("--published", metavar="DATE", help="The day it is announced, YYYY-MM-DD (default: today).")
@click.option("--summary", metavar="TEXT", help="What changed, for readers, in the default language. "
              "Other languages: --summary-nl TEXT, --summary-fr TEXT, …")
@click.option("--material", "classification", flag_value="material", help="Readers must be told before it takes effect.")
@click.option("--editorial", "classification", flag_value="editorial", help="Wording only; nothing readers rely on changed.")
@click.option("--reason", default="", metavar="TEXT", help="Why this classification (recorded).")
@click.option("--urgent", is_flag=True, help="Take effect sooner than the notice period allows (needs --reason; recorded).")
@click.option("--backdate", is_flag=True, help="Accept a --published date earlier than the commit it publishes (needs --reason; recorded).")
@click.option("--allow-stale", is_flag=True, help="Publish a material version although some translations did not change along (recorded).")
@click.option("--strict", is_flag=True, help="Refuse, instead of warning, a version some site's readers would see with a "
              "\"[to be provided: …]\" marker.")
@click.option("--dry-run", is_flag=True, help="Check everything and show the version; record nothing.")
@click.option("--sync-tags", is_flag=True, help="Publish nothing; recreate missing version tags from the ledger.")
@with_repo
def publish_command(repo: Repo, policy_id: str, effective: str | None, published: str | None, summary: str | None,
                    classification: str | None, reason: str, urgent: bool, backdate: bool, allow_stale: bool,
                    strict: bool, dry_run: bool, sync_tags: bool) -> None:
    """Publish the committed policy as a version, e.g. privacy@2018-05-19.

    Records in history/POLICY/ledger.toml the commit, the effective and published dates, your classification
    and reason, a summary per language, your git identity and the content hash of every site × language;
    copies the policy's files to history/POLICY/<date>/source/; commits only those files and creates the
    annotated tag — all in one step, or nothing. A second version on the same effective date gets `.2`.

    Refuses uncommitted changes to the policy, a policy with errors, no change since the previous version,
    and an effective date before the previous version's. The rules suggest a class with reasons (recorded
    next to yours); publishing as editorial what they find material needs --reason. A material version
    must take effect at least notice_days (policy.toml) after it is published, unless --urgent --reason;
    and every translation of a changed section must change along, unless --allow-stale. A --published date
    earlier than the day the policy's last commit was made is refused unless --backdate --reason: that date
    starts the notice period (`log` shows such a version as back-dated). A version that some site's readers
    would see with a "[to be provided: …]" marker (a value listed as pending) is published with a warning,
    recorded in the ledger; --strict refuses it.

    \b
    Example:
      addendum publish privacy --effective 2020-09-01 --published 2020-07-31 --material \\
        --summary "MailChimp transfers now rely on standard contractual clauses." \\
        --summary-nl "Doorgiften aan MailChimp steunen nu op modelcontractbepalingen."
    """
    if sync_tags:
        for version_id, state in sync_version_tags(repo, policy_id):
            click.echo(f"{version_id}  {state}")
        return
    if effective is None or classification is None:
        raise UsageError("publish needs --effective DATE and one of --material / --editorial",
                         'e.g. addendum publish privacy --effective 2020-09-01 --material --summary "…"')
    summaries = dict(click.get_current_context().meta.get("addendum.summaries", {}))
    if summary is not None:
        summaries[DEFAULT_LANGUAGE_KEY] = summary
    version, decision = publish_gated(repo, policy_id, effective=parse_date(effective, "--effective"),
                                      published=parse_date(published, "--published") if published else None,
                                      classification=classification, summaries=summaries, reason=reason, urgent=urgent,
                                      allow_stale=allow_stale, dry_run=dry_run, backdate=backdate, strict=strict)
    verb = "would publish" if dry_run else "published"
    click.echo(f"{verb} {version.id}: effective {version.effective}, published {version.published}, {version.classification}"
               f" (suggested: {decision.suggested})")
    for line in decision.reasons:
        click.echo(f"  {line}")
    if decision.placeholders:
        click.echo("warning: readers of some sites see a value that is not provided yet (recorded; --strict refuses):", err=True)
        for line in decision.placeholders:
            click.echo(f"  {line}", err=True)
    for key, value in version.hashes.items():
        click.echo(f"  {key:<24} {value}")
    if not dry_run:
        from addendum.cli.webhooks import echo_announcement  # the state store only when a version was published
        from addendum.operations.webhooks import announce_published

        echo_announcement(announce_published(repo, version))

"""`addendum import-document`: an edited .docx export read back into a policy's Markdown in the working tree."""

from __future__ import annotations

from pathlib import Path

import click

from addendum.cli.common import with_repo
from addendum.config import Repo
from addendum.errors import UsageError
from addendum.operations.word import adopt_document, import_document


@click.command("import-document")
@click.argument("source", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--into", "policy_id", metavar="POLICY", help="The policy the document was exported from.")
@click.option("--policy", "new_policy", metavar="NEW_ID", help="Adopt an existing .docx or saved .html page as a new policy with this id.")
@click.option("--select", metavar="CSS", help="With --policy and a web page: the element holding the policy, e.g. 'main' or '#privacy'.")
@click.option("--lang", "language", required=True, metavar="LANG", help="The language of the document, e.g. en.")
@click.option("--site", "site_id", metavar="SITE", help="The site it was exported for: its marked sections go to the site's override file.")
@click.option("--accept-changes", is_flag=True, help="Take the document's tracked changes as accepted (they are refused otherwise).")
@with_repo
def import_document_command(repo: Repo, source: Path, policy_id: str | None, new_policy: str | None, select: str | None,
                            language: str, site_id: str | None, accept_changes: bool) -> None:
    """Import an edited copy of `addendum export-document` back into the policy's Markdown.

    Sections are matched by their bookmark, then by heading text, then by position; a new heading becomes
    a new section with an id made from its text, and a removed one is reported. Placeholders come back as
    placeholders. Unresolved tracked changes are refused unless --accept-changes; comments are listed. A
    .docx from `addendum render` is refused: its placeholders are filled in. The result is an ordinary change
    in the working tree: review it with `addendum diff`, then `addendum commit`.

    With --policy NEW_ID instead of --into, an existing policy (a .docx, or a web page saved from the
    browser) becomes policies/NEW_ID/: headings become sections with ids made from their text; lists,
    links, emphasis and tables are kept as Markdown; scripts, styles, navigation, cookie banners and
    images are dropped (and counted); nothing is fetched. `check` is run on what was written. With --into
    and such a document in a language the policy declares but has no text for, its headings take the
    existing sections' ids by structure (same nesting and order); what could not be aligned is reported.

    \b
    Example:
      addendum import-document privacy-cavallo.docx --into privacy --lang en --site cavallo
      addendum import-document saved-page.html --policy terms --lang en --select main
    """
    if (policy_id is None) == (new_policy is None):
        raise UsageError("give either --into POLICY (an edited export) or --policy NEW_ID (adopt a document)",
                         "--into reads back an export of addendum export-document; --policy creates a new policy")
    if new_policy is not None:
        if site_id or accept_changes:
            raise UsageError("--site and --accept-changes go with --into", "adopt the document first, then edit its export")
        adopted = adopt_document(repo, source, new_policy, language, select=select)
        for path in adopted.written:
            click.echo(f"wrote {path}", err=True)
        click.echo(f"{len(adopted.section_ids)} section(s): {', '.join(adopted.section_ids)}", err=True)
        for what, count in adopted.dropped:
            click.echo(f"dropped: {count} × {what}", err=True)
        for problem in adopted.problems:
            click.echo(f"check: {problem.severity}: {problem.file}:{problem.line}: {problem.message}", err=True)
        return
    if select:
        raise UsageError("--select goes with --policy (adopting a web page)", "leave it out when importing an export")
    assert policy_id is not None
    report = import_document(repo, source, policy_id, language, site_id, accept_changes=accept_changes)
    if report.accepted_changes:
        click.echo(f"accepted {report.accepted_changes} tracked change(s)", err=True)
    for heading in report.unaligned:
        click.echo(f"could not align (given a new id): {heading}", err=True)
    for section_id in report.missing:
        click.echo(f"no text for section: {section_id}", err=True)
    for section_id in report.new_ids:
        click.echo(f"new section: {section_id}", err=True)
    for section_id in report.deleted_ids:
        click.echo(f"removed section: {section_id}", err=True)
    for section_id in report.changed_ids:
        click.echo(f"changed section: {section_id}", err=True)
    for comment in report.comments:
        click.echo(f"comment by {comment.author or 'unknown'}: {comment.text}", err=True)
    for path in report.written:
        click.echo(f"wrote {path}", err=True)
    if not report.written:
        click.echo("nothing changed", err=True)

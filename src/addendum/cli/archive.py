"""`addendum archive`: every published version as HTML, PDF/A and JSON under history/, with a manifest."""

from __future__ import annotations

from pathlib import Path

import click

from addendum.archive.build import archive
from addendum.cli.common import progress_on_stderr, with_repo
from addendum.config import Repo


def shown(path: Path) -> str:
    """A path as the user can type it: relative to the current folder when inside it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


@click.command("archive")
@click.argument("policy_ids", metavar="[POLICY]...", nargs=-1)
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Worker processes (default: archive.jobs, or one per core).")
@click.option("--dry-run", is_flag=True, help="List the files that would be written; write nothing.")
@with_repo
def archive_command(repo: Repo, policy_ids: tuple[str, ...], jobs: int | None, dry_run: bool) -> int:
    """Archive every published version not archived yet (all policies when none is named).

    For each version × site × language, under history/POLICY/VERSION/SITE/LANG/: index.html (self-contained,
    no scripts), policy.pdf (PDF/A-3u), policy.json, and redline.html + redline.pdf against the previous
    version. Per policy: index.html (and index-LANG.html), changelog-LANG.html/.md, feed-LANG.atom. All of
    them, with SHA-256 and size, in history/manifest.json.

    An archived version is never rewritten; re-running renders only what is missing, and the same version
    always renders to the same bytes. A file that is not as the manifest records it is reported and left
    alone. Exit 0: done; 1: such files were found (see `addendum verify`); 2: cannot run.

    \b
    Examples:
      addendum archive --dry-run
      addendum archive privacy --jobs 2
    """
    with progress_on_stderr("archive") as progress:
        report = archive(repo, policy_ids or None, jobs=jobs, progress=None if dry_run else progress, dry_run=dry_run)
    if dry_run:
        for path in report.written:
            click.echo(f"would write history/{path}")
    for plan in report.policies:
        if not plan.versions:
            click.echo(f"{plan.policy_id}: nothing published yet (addendum publish {plan.policy_id} --effective DATE …)")
            continue
        written = sum(1 for path in report.written if path.startswith(plan.policy_id + "/"))
        verb = "would write" if dry_run else "wrote"
        click.echo(f"{plan.policy_id}: {len(plan.versions)} version(s), {len(plan.views)} version × site × language: "
                   f"{verb} {written} file(s)")
    click.echo(f"{report.kept} file(s) already archived, left as they were; {report.jobs} worker(s), {report.seconds:.1f} s")
    for finding in report.findings:
        click.echo(finding.format())
    for page in report.index_pages():
        click.echo(f"open {shown(repo.history_dir / page)}")
    return 1 if report.findings else 0

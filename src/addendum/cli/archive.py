"""`addendum archive`: every published version as HTML, PDF/A and JSON under history/, with a manifest."""

from __future__ import annotations

from pathlib import Path

import click

from addendum.archive.build import archive, merge_shards
from addendum.archive.manifest import manifest_path
from addendum.archive.shards import parse_shard
from addendum.cli.common import progress_on_stderr, with_repo
from addendum.config import Repo


def shown(path: Path) -> str:
    """A path as the user can type it: relative to the current folder when inside it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


class ArchiveGroup(click.Group):
    """`addendum archive [POLICY]...` builds; `addendum archive merge PARTIAL...` joins the shards' manifests (a policy
    named like a subcommand is archived with `addendum archive -- NAME`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in self.commands:
            click.Command.parse_args(self, ctx, [])  # this command's own options keep their defaults
            ctx._protected_args, ctx.args = args[:1], list(args[1:])
            return ctx.args
        return click.Command.parse_args(self, ctx, args)


class PolicyArguments(click.Argument):
    """[POLICY]...: left out of a subcommand's usage line, where it does not apply."""

    def get_usage_pieces(self, ctx: click.Context) -> list[str]:
        return super().get_usage_pieces(ctx) if self in ctx.command.params else []  # ctx: the subcommand's, in its usage


@click.group("archive", cls=ArchiveGroup, invoke_without_command=True, subcommand_metavar="[merge PARTIAL...]")
@click.argument("policy_ids", metavar="[POLICY]...", nargs=-1, cls=PolicyArguments)
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Worker processes (default: archive.jobs, or one per core).")
@click.option("--dry-run", is_flag=True, help="List the files that would be written; write nothing.")
@click.option("--shard", "shard_text", metavar="K/N",
              help="Build only share K of N of the missing files, and its partial manifest history/manifest-K-of-N.json "
                   "(join them with `addendum archive merge`).")
@with_repo
def archive_command(repo: Repo, policy_ids: tuple[str, ...], jobs: int | None, dry_run: bool,
                    shard_text: str | None) -> int | None:
    """Archive every published version not archived yet (all policies when none is named).

    For each version × site × language, under history/POLICY/VERSION/SITE/LANG/: index.html (self-contained,
    no scripts), policy.pdf (PDF/A-3u), policy.json, and redline.html + redline.pdf against the previous
    version. Per policy: index.html (and index-LANG.html), changelog-LANG.html/.md, feed-LANG.atom. All of
    them, with SHA-256 and size, in history/manifest.json, signed (manifest.json.sig) with archive.signing_key
    and timestamped (manifest.json.tsr, and a token per ledger entry) by evidence.tsa_url when they are set.

    An archived version is never rewritten; re-running renders only what is missing, and the same version
    always renders to the same bytes. A file that is not as the manifest records it is reported and left
    alone. Exit 0: done; 1: such files were found (see `addendum verify`); 2: cannot run.

    On many machines: each runs `--shard K/N` from the same commit (a version's files go to the shard a hash
    of its folder's path picks, so shards balance), then `addendum archive merge` joins what they built.

    \b
    Examples:
      addendum archive --dry-run
      addendum archive privacy --jobs 2
      addendum archive --shard 2/3
    """
    if click.get_current_context().invoked_subcommand is not None:
        return None  # `archive merge`: the subcommand does the work
    shard = None if shard_text is None else parse_shard(shard_text)
    with progress_on_stderr("archive") as progress:
        report = archive(repo, policy_ids or None, jobs=jobs, progress=None if dry_run else progress, dry_run=dry_run,
                         shard=shard)
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
    for line in report.sealed:
        click.echo(line)
    for finding in report.findings:
        click.echo(finding.format())
    if shard is not None:
        if not dry_run:
            click.echo(f"shard {shard.label}: partial manifest {shown(repo.history_dir / shard.file_name)}; once every shard "
                       f"is built: addendum archive merge history/manifest-*-of-{shard.count}.json")
    else:
        for page in report.index_pages():
            click.echo(f"open {shown(repo.history_dir / page)}")
    return 1 if report.findings else 0


@archive_command.command("merge")
@click.argument("partials", metavar="PARTIAL...", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_repo
def merge_command(repo: Repo, partials: tuple[Path, ...]) -> int:
    """Join the partial manifests of every shard into history/manifest.json.

    Each PARTIAL is the history/manifest-K-of-N.json one `addendum archive --shard K/N` wrote; when it is not in
    this repository's history/, the shard's files are copied from the folder it is in (a shard's history/ as
    a CI job passed it on). Refused, before anything is written: a shard missing or given twice, shards built
    from another manifest, the same path with different bytes (naming the path), a file that is not what its
    shard recorded. Partial manifests inside history/ are removed once merged. The merged manifest is signed
    and timestamped as `addendum archive` does it.

    \b
    Examples:
      addendum archive merge history/manifest-*-of-3.json
      addendum archive merge shards/*/manifest-*-of-3.json
    """
    report, sealed = merge_shards(repo, partials)
    click.echo(f"merged {report.shards} shard(s): {report.files} file(s) recorded in {shown(manifest_path(repo.history_dir))}, "
               f"{len(report.copied)} copied into history/")
    for line in sealed:
        click.echo(line)
    return 0

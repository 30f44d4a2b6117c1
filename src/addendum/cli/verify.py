"""`addendum verify`: the archive is as the manifest and the ledger say it is."""

from __future__ import annotations

import click

from addendum.archive.verify import verify_archive
from addendum.cli.common import progress_on_stderr, with_repo
from addendum.config import Repo


@click.command("verify")
@click.argument("policy_ids", metavar="[POLICY]...", nargs=-1)
@click.option("--rebuild", is_flag=True, help="Also render every version again in a temporary folder and compare bytes.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Worker processes for --rebuild (default: one per core).")
@with_repo
def verify_command(repo: Repo, policy_ids: tuple[str, ...], rebuild: bool, jobs: int | None) -> int:
    """Check the archive (all policies when none is named).

    Re-hashes every file history/manifest.json lists and reports files missing, changed, or not in the
    manifest, and published versions not archived yet. Checks that each version's archived JSON and its
    sources under history/ still hash to the content hash the ledger records. Checks each ledger's hash chain
    (naming the entry, file:line, that breaks it), the manifest's SSH signature (manifest.json.sig, against
    archive.allowed_signers) and every RFC 3161 timestamp token (a strict profile, so that no byte outside the
    TSA's signature can change; signature against evidence.tsa_ca_file, revocation against evidence.tsa_crl,
    message imprint, time). With --rebuild, renders everything again into a temporary folder and compares
    byte for byte.

    Exit 0: intact; 1: findings, one per line; 2: cannot run (no manifest, unreadable ledger).

    \b
    Examples:
      addendum verify
      addendum verify privacy --rebuild
    """
    with progress_on_stderr("rebuild") as progress:
        report = verify_archive(repo, policy_ids or None, rebuild=rebuild, jobs=jobs, progress=progress)
    for finding in report.findings:
        click.echo(finding.format())
    for note in report.notes:
        click.echo(note)
    rebuilt = f", {report.rebuilt} rebuilt and compared" if rebuild else ""
    verdict = "intact" if report.intact else f"{len(report.findings)} finding(s)"
    click.echo(f"{', '.join(report.policies)}: {report.files} file(s) hashed, {report.views} version × site × language "
               f"text(s) checked against the ledger{rebuilt}: {verdict}")
    return 0 if report.intact else 1

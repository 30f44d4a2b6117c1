"""`addendum check`: every problem of a policy, with file:line and a fix."""

from __future__ import annotations

import json

import click

from addendum.cli.common import with_repo
from addendum.config import Repo
from addendum.errors import UsageError
from addendum.policy.check import check


@click.command("check")
@click.argument("policy_ids", metavar="[POLICY]...", nargs=-1)
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on standard output.")
@with_repo
def check_command(repo: Repo, policy_ids: tuple[str, ...], strict: bool, as_json: bool) -> int:
    """Check policies for problems (all policies when none is named).

    Each problem is printed as `file:line: section-id: what is wrong`, followed by how to fix it. Files that
    cannot be loaded (invalid TOML, a missing language file, a heading without an id) are reported the same
    way, as errors; the other rules run once they are fixed. --json always prints the report, load errors
    included ("loaded": false).

    Exit 0: no errors (warnings are printed); 1: errors, load errors included, or warnings with --strict;
    2: check cannot run (no repository, an unknown policy id, a bad option).

    \b
    Examples:
      addendum check
      addendum check privacy --strict --json
    """
    ids = list(policy_ids) or repo.policy_ids()
    if not ids:
        raise UsageError(f"no policies in {repo.policies_dir}", "create policies/<id>/policy.toml")
    results = [check(repo.root, policy_id, repo.settings) for policy_id in ids]
    if as_json:
        document = {r.policy_id: {"errors": len(r.errors), "warnings": len(r.warnings), "loaded": r.loaded,
                                  "problems": [p.as_json() for p in r.problems]} for r in results}
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        for result in results:
            for problem in sorted(result.problems, key=lambda p: (p.file, p.line)):
                click.echo(problem.format())
            unloaded = "" if result.loaded else "; its files cannot be loaded: the other rules run once these are fixed"
            click.echo(f"{result.policy_id}: {len(result.errors)} error(s), {len(result.warnings)} warning(s){unloaded}")
    failed = any(r.errors or (strict and r.warnings) for r in results)
    return 1 if failed else 0

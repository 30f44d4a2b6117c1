"""Rules every command keeps alike: a mistyped policy id gets one answer, whichever command was asked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

UNKNOWN = ("error: no policy 'term' in policies/ — known policies: terms\n"
           "  check the spelling, or create policies/term/policy.toml (see docs/format.md)\n")

COMMANDS = [
    ("check", "term"),
    ("check", "term", "--json"),
    ("render", "term"),
    ("show", "term"),
    ("show", "term", "--version", "term@2024-01-01"),
    ("show", "term", "--rev", "HEAD"),
    ("log", "term"),
    ("status", "term"),
    ("diff", "term"),
    ("diff", "term", "HEAD"),
    ("redline", "term", "terms@2024-01-01", "latest", "-o", "{out}/r.html"),
    ("changelog", "term"),
    ("changelog", "term", "--format", "atom"),
    ("commit", "term", "-m", "A change"),
    ("publish", "term", "--effective", "2024-09-01", "--material", "--summary", "Changed."),
    ("notify", "term", "term@2024-01-01", "--dry-run"),
    ("notify", "term", "terms@2024-01-01", "--dry-run"),
    ("notices", "term", "term@2024-01-01"),
    ("archive", "term"),
    ("subscribers", "list", "--policy", "term"),
]


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c[:1] + c[2:3]) for c in COMMANDS])
def test_a_mistyped_policy_gets_the_same_answer_from_every_command(run, published_terms: Callable[[int], Path],
                                                                   tmp_path: Path, args: tuple[str, ...]) -> None:
    root = published_terms(1)
    result = run("--repo", root, *(a.format(out=tmp_path) for a in args), expect=2)
    assert result.stderr == UNKNOWN
    assert result.stdout == ""
    assert not (tmp_path / "r.html").exists()


def test_a_retired_policy_known_only_by_its_ledger_is_not_unknown(run, published_terms: Callable[[int], Path]) -> None:
    root = published_terms(1)
    (root / "policies" / "terms" / "policy.toml").unlink()
    assert "These terms apply to Main." in run("--repo", root, "show", "terms", "--version", "terms@2024-01-01").stdout
    refused = run("--repo", root, "render", "terms", expect=2).stderr
    assert refused.startswith("error: no policy 'terms' in policies/ — there is none yet\n")


def test_a_repository_without_policies_says_there_is_none(run, make_repo: Callable[..., Path]) -> None:
    root = make_repo()
    for name in ("policy.toml", "en.md", "nl.md"):
        (root / "policies" / "terms" / name).unlink()
    assert run("--repo", root, "log", "terms", expect=2).stderr == (
        "error: no policy 'terms' in policies/ — there is none yet\n"
        "  create policies/terms/policy.toml (see docs/format.md)\n")

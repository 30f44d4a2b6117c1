"""The shipped policy checks clean of errors and renders for its default site."""

from pathlib import Path


def test_shipped_policy_checks_with_warnings_only(run, shipped: Path) -> None:
    result = run("--repo", shipped, "check", "privacy")
    assert "privacy: 0 error(s)" in result.stdout
    assert "policies/privacy/nl.md:69: changes: asks readers to check the page regularly" in result.stdout

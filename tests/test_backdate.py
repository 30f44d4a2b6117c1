"""A published date earlier than the commit it publishes is refused unless --backdate --reason (recorded), and `log`
shows every back-dated version, the shipped ones too."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path


def latest_entry(root: Path) -> dict:
    return tomllib.loads((root / "history" / "terms" / "ledger.toml").read_text(encoding="utf-8"))["version"][-1]


def revise(root: Path, git_at, day: str) -> None:
    path = root / "policies" / "terms" / "en.md"
    path.write_text(path.read_text(encoding="utf-8").replace("These terms apply to", "These terms now apply to"), encoding="utf-8")
    git_at(root, "commit", "-qam", "Reword", date=day)


def publish(run, root: Path, published: str, *args: str, expect: int = 0):
    return run("--repo", root, "publish", "terms", "--effective", "2026-06-01", "--published", published, "--editorial",
               "--summary", "Reworded.", "--summary-nl", "Herschreven.", *args, expect=expect)


def test_a_published_date_before_the_commit_is_refused_unless_backdated_with_a_reason(run, published_terms, git_at):
    root = published_terms(1)
    revise(root, git_at, "2025-03-10")
    refused = publish(run, root, "2025-03-01", expect=2).stderr
    assert "the published date 2025-03-01 is earlier than the commit it publishes" in refused
    assert "committed on 2025-03-10" in refused and "--backdate --reason" in refused
    assert "--backdate needs a --reason" in publish(run, root, "2025-03-01", "--backdate", expect=2).stderr
    assert len(tomllib.loads((root / "history/terms/ledger.toml").read_text())["version"]) == 1
    publish(run, root, "2025-03-01", "--backdate", "--reason", "Announced on the site on 1 March; committed later.")
    entry = latest_entry(root)
    assert entry["backdated"] is True and entry["commit_date"] == "2025-03-10"
    assert entry["reason"] == "Announced on the site on 1 March; committed later."
    log = run("--repo", root, "log", "terms").stdout
    assert "back-dated: published 2025-03-01, but its text was committed on 2025-03-10" in log
    assert "with --backdate" in log
    versions = json.loads(run("--repo", root, "log", "terms", "--json").stdout)["versions"]
    assert versions[0]["backdated"] is True and versions[0]["commit_date"] == "2025-03-10"
    assert versions[1]["backdated"] is False  # the first version was committed before it was published


def test_a_published_date_on_or_after_the_commit_needs_nothing(run, published_terms, git_at):
    root = published_terms(1)
    revise(root, git_at, "2025-03-10")
    publish(run, root, "2025-03-10")
    assert "backdated" not in latest_entry(root)
    assert "back-dated" not in run("--repo", root, "log", "terms").stdout


def test_the_shipped_versions_show_as_back_dated(run):
    project = Path(__file__).resolve().parents[1]  # the shipped ledger, in the project's own git history
    log = run("--repo", project, "log", "privacy").stdout
    assert "back-dated: published 2020-07-31, but its text was committed on" in log

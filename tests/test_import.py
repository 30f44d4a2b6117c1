"""`addendum import-history`: a Markdown file's git history becomes published versions, the source only read."""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from addendum.config import open_repo
from addendum.history.importer import convert, declared_date, heading_slug, import_history, parse_date_text, split_front_matter
from addendum.history.ledger import read_ledger
from addendum.history.versions import load_version
from addendum.policy.resolve import resolve

GitAt = Callable[..., str]

FIRST = """\
---
title: Privacy
effective: 2019-01-01
---
# Privacy Policy

Intro.

## Who we are

We are Example.

## Cookies

We use cookies.
"""

REPLACEMENT = """\
Privacy Notice
==============

Effective date: 1 June 2019

## Setext and placeholders

Write {{ like this }} or {% this %} or {# this #}.

Another heading
---------------

- # A heading inside a list
"""


def _write(root: Path, name: str, text: str) -> None:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text, encoding="utf-8")


def _edit(root: Path, name: str, old: str, new: str) -> None:
    text = (root / name).read_text(encoding="utf-8")
    assert old in text
    (root / name).write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def source(tmp_path: Path, git_at: GitAt) -> Path:
    """A website repository: the policy added, edited, moved (a rename git sees), given a front-matter-only change,
    edited on a merged branch, then deleted and re-added under another name with new text in one commit."""
    root = tmp_path / "website"
    root.mkdir()
    git_at(root, "init", "-q")
    _write(root, "privacy.md", FIRST)
    git_at(root, "add", "-A")
    git_at(root, "commit", "-q", "-m", "Add the privacy policy", date="2019-01-05")
    _edit(root, "privacy.md", "We use cookies.", "We use two cookies.")
    git_at(root, "commit", "-q", "-am", "Say how many cookies", date="2019-03-01")
    (root / "legal").mkdir()
    git_at(root, "mv", "privacy.md", "legal/privacy.md")
    git_at(root, "commit", "-q", "-m", "Move the policy", date="2019-03-05")
    _edit(root, "legal/privacy.md", "title: Privacy", "title: Privacy at Example")
    git_at(root, "commit", "-q", "-am", "Retitle the page", date="2019-03-10")
    git_at(root, "checkout", "-q", "-b", "rename-heading")
    _edit(root, "legal/privacy.md", "## Who we are", "## About us")
    git_at(root, "commit", "-q", "-am", "Rename a heading", date="2019-04-01")
    _edit(root, "legal/privacy.md", "We use two cookies.", "We use three cookies.")
    git_at(root, "commit", "-q", "-am", "Three cookies", date="2019-04-02")
    git_at(root, "checkout", "-q", "-")
    _write(root, "index.html", "<p>home</p>\n")
    git_at(root, "add", "-A")
    git_at(root, "commit", "-q", "-m", "Home page", date="2019-04-03")
    git_at(root, "merge", "-q", "--no-ff", "rename-heading", "-m", "Merge the heading work", date="2019-04-15")
    git_at(root, "rm", "-q", "legal/privacy.md")
    _write(root, "docs/privacy-notice.md", REPLACEMENT)
    git_at(root, "add", "-A")
    git_at(root, "commit", "-q", "-m", "Rewrite the notice", date="2019-05-20")
    return root


@pytest.fixture
def target(tmp_path: Path, git_at: GitAt) -> Path:
    root = tmp_path / "policies-repo"
    root.mkdir()
    (root / "addendum.toml").write_text("")
    git_at(root, "init", "-q")
    git_at(root, "add", "-A")
    git_at(root, "commit", "-q", "-m", "Start")
    return root


IMPORT = ("--path", "docs/privacy-notice.md", "--path", "legal/privacy.md", "--policy", "web", "--lang", "en")


def test_import_makes_each_change_on_the_main_line_a_version(run, source: Path, target: Path, git_at: GitAt) -> None:
    result = run("--repo", target, "import-history", "--from", source, *IMPORT)
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[:4]] == ["web@2019-01-05", "web@2019-03-01", "web@2019-04-15", "web@2019-05-20"]
    assert "skipped" in lines[4] and "(Move the policy)" in lines[4]
    assert "skipped" in lines[5] and "(Retitle the page)" in lines[5]
    assert lines[-1].startswith("created policies/web; imported 4 versions in commit ")

    versions = read_ledger(target / "history", "web")
    provenance = [(v.extra["provenance"]["path"], v.summaries["en"]) for v in versions]
    assert provenance == [("privacy.md", "Add the privacy policy"), ("privacy.md", "Say how many cookies"),
                          ("legal/privacy.md", "Merge the heading work"), ("docs/privacy-notice.md", "Rewrite the notice")]
    merge = versions[2]
    assert merge.extra["provenance"]["commit"] == git_at(source, "rev-parse", "HEAD~1").strip()
    assert merge.published == date(2019, 4, 15) and merge.commit == "" and merge.classification == "material"
    assert merge.extra["provenance"]["repository"] == str(source)
    assert merge.extra["provenance"]["front_matter"] == "title: Privacy at Example\neffective: 2019-01-01\n"

    r = open_repo(target)
    merged_text = load_version(r, merge).documents["en"].text()
    assert "We use three cookies." in merged_text  # the branch's last text; its first commit is not a version
    assert git_at(target, "tag").split() == [v.id for v in versions]
    assert git_at(target, "status", "--porcelain") == ""
    assert (target / "policies/web/en.md").read_text() == load_version(r, versions[-1]).documents["en"].text()


def test_merge_rule_only_the_first_parent_line_counts(run, source: Path, target: Path) -> None:
    run("--repo", target, "import-history", "--from", source, *IMPORT)
    subjects = [v.summaries["en"] for v in read_ledger(target / "history", "web")]
    assert "Rename a heading" not in subjects and "Three cookies" not in subjects


def test_headings_get_stable_ids_and_front_matter_is_not_text(run, source: Path, target: Path) -> None:
    run("--repo", target, "import-history", "--from", source, *IMPORT)
    r = open_repo(target)
    first, second, merged, rewritten = (load_version(r, v) for v in read_ledger(target / "history", "web"))
    assert first.documents["en"].ids == ("privacy-policy", "who-we-are", "cookies")
    assert second.documents["en"].ids == first.documents["en"].ids
    assert merged.documents["en"].ids == ("privacy-policy", "who-we-are", "cookies")  # renamed heading, same text: same id
    assert merged.documents["en"].get("who-we-are").heading == "About us"
    assert "title:" not in first.documents["en"].text()
    assert first.titles == {"en": "Privacy Notice"}
    assert rewritten.documents["en"].ids == ("privacy-notice", "setext-and-placeholders", "another-heading")


def test_converted_text_reads_back_as_written(run, source: Path, target: Path) -> None:
    run("--repo", target, "import-history", "--from", source, *IMPORT)
    r = open_repo(target)
    latest = load_version(r, read_ledger(target / "history", "web")[-1])
    resolved = resolve(latest, "main", "en")
    assert resolved.get("setext-and-placeholders").text.strip() == "Write {{ like this }} or {% this %} or {# this #}."
    assert resolved.get("another-heading").text.strip() == "- \\# A heading inside a list"
    assert run("--repo", target, "check", "web").stdout.endswith("web: 0 error(s), 0 warning(s)\n")


def test_without_the_earlier_name_the_history_starts_at_the_replacement(run, source: Path, target: Path) -> None:
    result = run("--repo", target, "import-history", "--from", source, "--path", "docs/privacy-notice.md",
                 "--policy", "web", "--lang", "en")
    assert result.stdout.splitlines()[-1].startswith("created policies/web; imported 1 versions")


def test_dates_from_the_text(run, source: Path, target: Path) -> None:
    result = run("--repo", target, "import-history", "--from", source, *IMPORT, "--date-from-text")
    versions = read_ledger(target / "history", "web")
    assert [v.id for v in versions] == ["web@2019-01-01", "web@2019-01-01.2", "web@2019-01-01.3", "web@2019-06-01"]
    assert [v.extra["provenance"]["date_source"] for v in versions] == ["front matter"] * 3 + ["text"]
    assert [v.published.isoformat() for v in versions] == ["2019-01-05", "2019-03-01", "2019-04-15", "2019-05-20"]
    assert result.stderr == ""


def test_the_source_is_only_read(run, source: Path, target: Path, tmp_path: Path, git_at: GitAt) -> None:
    marker = tmp_path / "ran"
    hook = source / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    git_at(source, "config", "core.fsmonitor", str(hook))
    before = {p.relative_to(source).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in source.rglob("*") if p.is_file()}
    run("--repo", target, "import-history", "--from", source, *IMPORT)
    after = {p.relative_to(source).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in source.rglob("*") if p.is_file()}
    assert after == before
    assert not marker.exists()


def test_dry_run_writes_nothing(run, source: Path, target: Path, git_at: GitAt) -> None:
    head = git_at(target, "rev-parse", "HEAD")
    result = run("--repo", target, "import-history", "--from", source, *IMPORT, "--dry-run")
    assert result.stdout.splitlines()[-1] == "would import 4 versions (nothing written)"
    assert git_at(target, "rev-parse", "HEAD") == head
    assert not (target / "policies").exists() and not (target / "history").exists()


def test_import_refuses_a_policy_with_versions_and_bad_input(run, source: Path, target: Path) -> None:
    run("--repo", target, "import-history", "--from", source, *IMPORT)
    again = run("--repo", target, "import-history", "--from", source, *IMPORT, expect=2)
    assert again.stderr.splitlines()[0] == "error: policy web has published versions already"
    bad_path = run("--repo", target, "import-history", "--from", source, "--path", "../../x", "--policy", "w2",
                   "--lang", "en", expect=2)
    assert bad_path.stderr.splitlines()[0] == "error: '../../x' is not a path inside the repository"
    bad_rev = run("--repo", target, "import-history", "--from", source, *IMPORT[:4], "--policy", "w2", "--lang", "en",
                  "--rev", "--output=/x", expect=2)
    assert bad_rev.stderr.splitlines()[0] == "error: '--output=/x' is not a git revision this command accepts"
    missing = run("--repo", target, "import-history", "--from", source, "--path", "nope.md", "--policy", "w2",
                  "--lang", "en", expect=2)
    assert missing.stderr.splitlines()[0] == f"error: nope.md has no history at HEAD in {source}"


def test_import_into_an_existing_policy_keeps_its_settings(run, source: Path, target: Path, git_at: GitAt) -> None:
    folder = target / "policies" / "web"
    folder.mkdir(parents=True)
    (folder / "policy.toml").write_text('id = "web"\ndefault_language = "en"\nlanguages = ["en"]\ndefault_site = "shop"\n'
                                        '[title]\nen = "Our privacy"\n[controller]\nname = "Example BV"\n'
                                        'address = "Main Street 1"\nemail = "privacy@example.org"\n[sites.shop]\nname = "Shop"\n')
    (folder / "en.md").write_text("Draft.\n")
    git_at(target, "add", "-A")
    git_at(target, "commit", "-q", "-m", "Policy settings")
    run("--repo", target, "import-history", "--from", source, *IMPORT)
    latest = load_version(open_repo(target), read_ledger(target / "history", "web")[-1])
    assert latest.titles == {"en": "Our privacy"} and list(latest.sites) == ["shop"]
    assert tomllib.loads((folder / "policy.toml").read_text())["controller"]["name"] == "Example BV"


def test_log_and_show_on_an_imported_policy(run, source: Path, target: Path) -> None:
    run("--repo", target, "import-history", "--from", source, *IMPORT)
    log = run("--repo", target, "log", "web").stdout
    assert log.startswith("web@2019-05-20  in force    effective 20 May 2019")
    document = json.loads(run("--repo", target, "log", "web", "--json").stdout)
    assert document["versions"][-1]["extra"]["provenance"]["committed"] == "2019-01-05T12:00:00+02:00"
    text = run("--repo", target, "show", "web", "--at", "2019-04-20").stdout
    assert "We use three cookies." in text and "Last changed on 15 April 2019" in text


@pytest.mark.parametrize(("text", "expected"), [
    ("2018-05-19", date(2018, 5, 19)), ("19 May 2018", date(2018, 5, 19)), ("May 19th, 2018", date(2018, 5, 19)),
    ("19 mei 2018", date(2018, 5, 19)), ("Sept. 3, 2021", date(2021, 9, 3)), ("31 February 2020", None), ("soon", None),
])
def test_dates_in_text(text: str, expected: date | None) -> None:
    assert parse_date_text(text) == expected


def test_declared_dates() -> None:
    assert declared_date("", "# Privacy\n\n**Last updated:** March 3, 2021\n") == (date(2021, 3, 3), "text")
    assert declared_date("", "Laatst gewijzigd op 19 mei 2018.\n") == (date(2018, 5, 19), "text")
    assert declared_date("date: 2020-02-02\n", "Effective date: 2021-01-01\n") == (date(2020, 2, 2), "front matter")
    assert declared_date("", "We take effective measures since 2019.\n") == (None, "")


def test_front_matter_and_slugs() -> None:
    assert split_front_matter("---\na: 1\n---\nText\n") == ("a: 1\n", "Text\n")
    assert split_front_matter("Text\n---\n") == ("", "Text\n---\n")
    assert heading_slug("Données & [cookies](https://x.example) — §3") == "donnees-cookies-3"
    assert heading_slug("!!!") == "section"
    assert len(heading_slug("word " * 40)) <= 63


def test_duplicate_headings_and_explicit_ids() -> None:
    converted = convert("## Contact\n\na\n\n## Contact\n\nb\n\n## Kept {#kept-id}\n\nc\n")
    assert [section_id for section_id, _ in converted.sections] == ["contact", "contact-2", "kept-id"]


def test_a_declared_date_that_goes_back_is_kept_in_order_with_a_warning(target: Path, tmp_path: Path, git_at: GitAt) -> None:
    source = tmp_path / "dates"
    source.mkdir()
    git_at(source, "init", "-q")
    for text, day in (("Effective date: 2020-05-01\n\nFirst.\n", "2020-04-20"), ("Effective date: 2020-03-01\n\nSecond.\n", "2020-06-01"),
                      ("No date here.\n", "2020-07-01")):
        _write(source, "policy.md", text)
        git_at(source, "add", "-A")
        git_at(source, "commit", "-q", "-m", text.splitlines()[-1], date=day)
    result = import_history(open_repo(target), source, ["policy.md"], "dated", "en", date_from_text=True, dry_run=True)
    assert [v.id for v in result.versions] == ["dated@2020-05-01", "dated@2020-05-01.2", "dated@2020-07-01"]
    assert [v.extra["provenance"]["date_source"] for v in result.versions] == ["text", "text", "commit date"]
    assert result.warnings[0].endswith("its date 2020-03-01 (text) is before that of dated@2020-05-01; recorded as 2020-05-01 "
                                       "to keep versions in order")
    assert result.warnings[1].endswith("no date in the text; used the commit date 2020-07-01")
    assert result.commit == "" and not (target / "history").exists()

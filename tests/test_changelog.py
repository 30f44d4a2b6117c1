"""`addendum changelog` and `addendum status`: golden changelogs, a feed parsed back with stable ids, the matrix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import feedparser
import pytest

from tests_support import git_in

GOLDEN = Path(__file__).parent / "golden"


def assert_golden(name: str, actual: str) -> None:
    """Compare with tests/golden/NAME; ADDENDUM_REGEN_GOLDEN=1 rewrites the file instead."""
    path = GOLDEN / name
    if os.environ.get("ADDENDUM_REGEN_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert actual == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_changelog_markdown_is_golden(run, published_terms, lang: str) -> None:
    root = published_terms(3)
    assert_golden(f"changelog-terms-{lang}.md", run("--repo", root, "changelog", "terms", "--lang", lang).stdout)


def test_changelog_html_is_golden_and_links_to_redline_anchors(run, published_terms) -> None:
    root = published_terms(2)
    html = run("--repo", root, "changelog", "terms", "--lang", "nl", "--format", "html").stdout
    assert 'href="2024-02-01/main/nl/redline.html#change-scope"' in html
    assert '<html lang="nl">' in html and "1 februari 2024" in html
    assert_golden("changelog-terms-nl.html", html)


def test_shipped_changelog_in_dutch_dates_the_first_version(run, shipped: Path) -> None:
    out = run("--repo", shipped, "changelog", "privacy", "--lang", "nl").stdout
    assert "## privacy@2018-05-19\n\n- Van kracht: 19 mei 2018" in out
    assert "wijzigt de waarborg voor doorgiften: “Privacy Shield” → “standard contractual clauses”" in out
    assert "removes" not in out and "material:" not in out  # the reasons read in Dutch


def test_feed_parses_newest_first_with_ids_stable_across_rebuilds(run, published_terms, tmp_path: Path) -> None:
    root = published_terms(2)
    first = run("--repo", root, "changelog", "terms", "--format", "atom").stdout
    feed = feedparser.parse(first)
    assert not feed.bozo, feed.bozo_exception
    assert [e.title for e in feed.entries] == ["terms@2024-02-01, effective 1 February 2024", "terms@2024-01-01, effective 1 January 2024"]
    ids = [e.id for e in feed.entries]
    from conftest import publish_terms

    publish_terms(root, 3)
    again = feedparser.parse(run("--repo", root, "changelog", "terms", "--format", "atom").stdout)
    assert [e.id for e in again.entries][1:] == ids
    assert run("--repo", root, "changelog", "terms", "--format", "atom").stdout == run("--repo", root, "changelog", "terms", "--format", "atom").stdout


def test_a_superseded_versions_feed_entry_says_until_when_it_was_in_force(run, published_terms) -> None:
    root = published_terms(2)
    english = feedparser.parse(run("--repo", root, "changelog", "terms", "--format", "atom").stdout)
    latest, superseded = (entry.summary for entry in english.entries)
    assert "In force until: 31 January 2024 (superseded by terms@2024-02-01)" in superseded
    assert "In force until" not in latest  # nothing later is published: no end date is claimed
    # The same words the changelog uses for it, in the feed's language.
    assert "- In force until: 31 January 2024 (superseded by terms@2024-02-01)" in run("--repo", root, "changelog", "terms").stdout
    dutch = feedparser.parse(run("--repo", root, "changelog", "terms", "--format", "atom", "--lang", "nl").stdout)
    assert "Van kracht tot en met: 31 januari 2024 (vervangen door terms@2024-02-01)" in dutch.entries[1].summary


def test_changelog_before_any_version_is_a_clear_error(run, make_repo) -> None:
    result = run("--repo", make_repo(), "changelog", "terms", expect=2)
    assert "error: policy terms has no published versions yet" in result.stderr


def test_status_shows_missing_dutch_sections_of_the_shipped_policy(run, shipped: Path) -> None:
    out = run("--repo", shipped, "status", "privacy").stdout
    header, *rows = out.splitlines()
    assert header.split() == ["section", "en", "nl", "cavallo/en", "cavallo/nl", "equihealth/en", "equihealth/nl"]
    assert "§collection.statistics.hotjar" in out
    hotjar = next(r for r in rows if r.startswith("§collection.statistics.hotjar "))
    assert hotjar.split()[1:3] == ["ok", "missing"]
    sharing = next(r for r in rows if r.startswith("§sharing "))
    assert sharing.split()[1:] == ["ok", "ok", "ok", "missing", "ok", "missing"]


def test_status_marks_a_translation_stale_and_reports_unpublished_changes(run, published_terms) -> None:
    root = published_terms(1)
    en = root / "policies/terms/en.md"
    en.write_text(en.read_text().replace("Write to", "Write to us at"))
    git_in(root, "commit", "-qam", "English only")
    document = json.loads(run("--repo", root, "status", "terms", "--json").stdout)
    contact = next(s for s in document["sections"] if s["id"] == "contact")
    assert contact["states"] == {"en": "up-to-date", "nl": "stale"}
    assert document["unpublished"]["changed_sections"] == ["§contact"]
    assert document["unpublished"]["suggested"] == "editorial"
    out = run("--repo", root, "status", "terms").stdout
    assert "unpublished changes in 1 section(s), suggested class: editorial" in out


def test_log_and_diff_json_carry_the_suggested_class_and_its_reasons(run, shipped: Path) -> None:
    log = run("--repo", shipped, "log", "privacy").stdout
    assert ("    suggested: material\n      material: §collection.personal-information.mailchimp is tagged recipients, transfers\n"
            in log)
    assert ('material: §collection.personal-information.mailchimp changes the transfer safeguard: '
            '"Privacy Shield" → "standard contractual clauses"') in log
    versions = json.loads(run("--repo", shipped, "log", "privacy", "--json").stdout)["versions"]
    assert versions[0]["suggested"] == "material"
    diff = json.loads(run("--repo", shipped, "diff", "privacy", "privacy@2018-05-19", "latest", "--site", "selentic",
                          "--lang", "en", "--json", expect=1).stdout)
    changeset = diff["changesets"][0]
    assert changeset["classification"] == "material"
    mailchimp = next(s for s in changeset["sections"] if s["id"] == "mailchimp")
    assert mailchimp["classification"] == "material"
    assert ('material: §collection.personal-information.mailchimp changes the transfer safeguard: '
            '"Privacy Shield" → "standard contractual clauses"') in [r["text"] for r in mailchimp["reasons"]]


def test_diff_json_gives_each_reason_as_data_with_its_sentence_in_the_language_compared(run, shipped: Path) -> None:
    diff = json.loads(run("--repo", shipped, "diff", "privacy", "privacy@2018-05-19", "latest", "--site", "selentic",
                          "--lang", "nl", "--json", expect=1).stdout)
    assert diff["format"] == "addendum-diff/2"
    [changeset] = diff["changesets"]
    assert changeset["format"] == "addendum-changeset/2" and changeset["language"] == "nl"
    mailchimp = next(s for s in changeset["sections"] if s["id"] == "mailchimp")
    safeguard = next(r for r in mailchimp["reasons"] if r["kind"] == "evidence-changed")
    assert safeguard == {
        "level": "material", "kind": "evidence-changed", "section": "mailchimp",
        "ref": "§collection.personal-information.mailchimp", "category": "transfer safeguard", "tags": [],
        "terms": ["Privacy Shield", "standard contractual clauses"], "values": ["Privacy Shield", "standard contractual clauses"],
        "text": 'material: §collection.personal-information.mailchimp changes the transfer safeguard: "Privacy Shield" → '
                '"standard contractual clauses"',
        "sentence": "inhoudelijk: §collection.personal-information.mailchimp wijzigt de waarborg voor doorgiften: "
                    "“Privacy Shield” → “standard contractual clauses”"}
    tagged = next(r for r in mailchimp["reasons"] if r["kind"] == "tagged")
    assert tagged["tags"] == ["recipients", "transfers"] and tagged["terms"] == [] and tagged["category"] is None
    assert tagged["sentence"] == "inhoudelijk: §collection.personal-information.mailchimp heeft de labels ontvangers, doorgiften"
    # The change set's own reasons are the same objects.
    assert safeguard in changeset["reasons"]
    english = json.loads(run("--repo", shipped, "diff", "privacy", "privacy@2018-05-19", "latest", "--site", "selentic",
                             "--lang", "en", "--json", expect=1).stdout)
    english_reason = next(r for r in english["changesets"][0]["reasons"] if r["kind"] == "evidence-changed")
    assert english_reason["sentence"].startswith("material: §collection.personal-information.mailchimp changes the transfer")


def test_status_json_gives_the_unpublished_reasons_as_data_in_the_language_asked(run, published_terms) -> None:
    root = published_terms(1)
    en = root / "policies/terms/en.md"
    en.write_text(en.read_text().replace("Write to", "Write to us at"))
    document = json.loads(run("--repo", root, "status", "terms", "--json", "--lang", "nl").stdout)
    [reason] = [r for r in document["unpublished"]["reasons"] if r["section"] == "contact"]
    assert reason["level"] == "editorial" and reason["kind"] == "reworded" and reason["ref"] == "§contact"
    assert reason["text"] == "editorial: §contact rewords text"
    assert reason["sentence"] != reason["text"] and "§contact" in reason["sentence"]
    default = json.loads(run("--repo", root, "status", "terms", "--json").stdout)
    assert [r["sentence"] for r in default["unpublished"]["reasons"]] == [r["text"] for r in default["unpublished"]["reasons"]]
    refused = run("--repo", root, "status", "terms", "--json", "--lang", "pl", expect=2)
    assert "policy terms has no language 'pl'" in refused.stderr

"""A second version with the same effective date (`privacy@2020-10-01.2`): publish, log, show, archive, index,
changelog and notify treat the `.1` as replaced before it took effect, and compare the `.2` with what was in force."""

from __future__ import annotations

import json
from pathlib import Path

from smtp_server import SmtpServer
from tests_support import git_in

FIRST, SECOND = "privacy@2020-10-01", "privacy@2020-10-01.2"  # notify_template's editorial typo fix, then ours
NEW_SENTENCE = "We keep these statistics for twelve months."
PEOPLE = """\
email,name,language,sites,audience,policies
ann@example.org,Ann,en,selentic,subscriber,
"""


def test_a_second_version_on_the_same_date_replaces_the_first_everywhere(run, notify_repo: Path, smtp: SmtpServer) -> None:
    root = notify_repo
    en = root / "policies" / "privacy" / "en.md"
    en.write_text(en.read_text(encoding="utf-8").replace(
        "MailChimps privacy policy can be found", f"{NEW_SENTENCE} MailChimps privacy policy can be found"), encoding="utf-8")
    git_in(root, "commit", "-q", "-am", "Say how long the statistics are kept")
    published = run("--repo", root, "publish", "privacy", "--effective", "2020-10-01", "--published", "2020-10-01", "--material",
                    "--urgent", "--reason", "The retention period was missing.", "--allow-stale",
                    "--summary", "How long statistics are kept.", "--summary-nl", "Hoe lang statistieken bewaard worden.")
    assert SECOND in published.stdout
    assert (root / "history" / "privacy" / "2020-10-01.2" / "source" / "en.md").is_file()

    # log: the .1 never took effect; the version before it was in force until the day before their date.
    log = {v["id"]: v for v in json.loads(run("--repo", root, "log", "privacy", "--json").stdout)["versions"]}
    assert log[SECOND]["status"] == "in force"
    assert log[FIRST]["status"] == "never in force" and log[FIRST]["superseded_by"] == SECOND
    assert log["privacy@2020-09-01"]["in_force_until"] == "2020-09-30" and log["privacy@2020-09-01"]["superseded_by"] == FIRST
    lines = run("--repo", root, "log", "privacy").stdout
    assert f"{FIRST}    never in force" in lines and f"    replaced by {SECOND} before it took effect\n" in lines
    assert "    in force until 30 September 2020, superseded by privacy@2020-10-01\n" in lines

    # show: on the shared date, the .2 is the text in force; the day before, the version before both.
    on_the_day = run("--repo", root, "show", "privacy", "--at", "2020-10-01", "--site", "selentic", "--lang", "en").stdout
    assert NEW_SENTENCE in on_the_day and "no longer wish to receive" in on_the_day
    before = run("--repo", root, "show", "privacy", "--at", "2020-09-30", "--site", "selentic", "--lang", "en").stdout
    assert NEW_SENTENCE not in before and "no longer which to receive" in before
    first = run("--repo", root, "show", "privacy", "--version", FIRST, "--lang", "en")
    assert f"never in force: replaced by {SECOND} before it took effect on 1 October 2020" in first.stderr
    assert "Earlier versions: in force from 1 September 2020, 19 May 2018" in on_the_day  # not the .1's date

    # archive: the .2's redline compares with the version in force before the date, so it holds both changes.
    run("--repo", root, "archive", "privacy")
    history = root / "history" / "privacy"
    redline = (history / "2020-10-01.2" / "selentic" / "en" / "redline.html").read_text(encoding="utf-8")
    assert "privacy@2020-09-01" in redline and NEW_SENTENCE in redline and "which" in redline and "wish" in redline
    index = (history / "index-en.html").read_text(encoding="utf-8")
    assert f"Replaced by {SECOND} before it took effect: never in force" in index
    assert "In force from 1 September 2020 until 30 September 2020" in index
    assert f'<a href="#v-2020-10-01.2">superseded by {SECOND}</a>' in index
    changelog = (history / "changelog-en.md").read_text(encoding="utf-8")
    assert f"- Replaced by {SECOND} before it took effect: never in force" in changelog
    assert "- In force until: 30 September 2020 (superseded by privacy@2020-10-01)" in changelog
    feed = (history / "feed-en.atom").read_text(encoding="utf-8")
    assert f"Replaced by {SECOND} before it took effect: never in force" in feed
    assert "In force until: 30 September 2020 (superseded by privacy@2020-10-01)" in feed
    dutch = (history / "index-nl.html").read_text(encoding="utf-8")
    assert "Van kracht van 1 september 2020 tot en met 30 september 2020" in dutch

    # notify: the .1 is refused (it never takes effect); the .2's notice covers both changes.
    people = root.parent / "people.csv"
    people.write_text(PEOPLE, encoding="utf-8")
    run("--repo", root, "subscribers", "import", people)
    refused = run("--repo", root, "notify", "privacy", FIRST, "--force", "--yes", expect=2)
    assert f"{FIRST} never takes effect: {SECOND} replaced it" in refused.stderr and f"notify {SECOND}" in refused.stderr
    run("--repo", root, "notify", "privacy", SECOND, "--yes", "--late", "--reason", "a test of a past version")
    [item] = smtp.handler.received
    body = item.message.get_body(("plain",))
    assert body is not None
    text = " ".join(body.get_content().split())
    # Both changes since 1 September: the .2's new sentence and the .1's typo fix, each in its own MailChimp section.
    assert text.count("- MailChimp: changed") == 2 and 'adds duration "twelve months"' in text
    assert "The previous version: https://example.org/privacy/history/privacy/2020-09-01/selentic/en/index.html" in text

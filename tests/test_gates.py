"""The gates of `addendum publish`: classification, notice period and stale translations, each refused and overridden."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests_support import git_in, leave_shop_contact_pending


def edit(root: Path, language: str, old: str, new: str) -> None:
    path = root / "policies" / "terms" / f"{language}.md"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def latest_entry(root: Path) -> dict:
    return tomllib.loads((root / "history" / "terms" / "ledger.toml").read_text(encoding="utf-8"))["version"][-1]


def publish(run, root: Path, *args: str, expect: int = 0, effective: str = "2024-06-01", published: str = "2024-03-01"):
    return run("--repo", root, "publish", "terms", "--effective", effective, "--published", published,
               "--summary", "Changed.", "--summary-nl", "Gewijzigd.", *args, expect=expect)


def new_processor(root: Path) -> None:
    edit(root, "en", "These terms apply to", "We use Hotjar. These terms apply to")
    edit(root, "nl", "Deze voorwaarden gelden", "Wij gebruiken Hotjar. Deze voorwaarden gelden")
    git_in(root, "commit", "-qam", "Hotjar")


def test_editorial_against_a_material_suggestion_needs_a_reason(run, published_terms) -> None:
    root = published_terms(1)
    new_processor(root)
    refused = publish(run, root, "--editorial", expect=2).stderr
    assert "error: the rules suggest this version is material, but it is being published as editorial" in refused
    assert 'material: §scope adds organisation "Hotjar"' in refused
    assert 'publish with --material, or keep --editorial and explain why with --reason "…"' in refused
    assert len(tomllib.loads((root / "history/terms/ledger.toml").read_text())["version"]) == 1
    publish(run, root, "--editorial", "--reason", "Hotjar was already named in our cookie notice.")
    entry = latest_entry(root)
    assert (entry["classification"], entry["suggested"]) == ("editorial", "material")
    assert entry["reason"] == "Hotjar was already named in our cookie notice."
    assert 'material: §scope adds organisation "Hotjar"' in entry["reasons"]


def test_material_change_needs_the_notice_period(run, published_terms) -> None:
    root = published_terms(1)
    new_processor(root)
    refused = publish(run, root, "--material", effective="2024-03-11", published="2024-03-01", expect=2).stderr
    assert ("error: a material change takes effect on 2024-03-11, 10 day(s) after it is published (2024-03-01); "
            "policy terms requires 30 days' notice") in refused
    assert 'set --effective 2024-03-31 or later, or publish with --urgent --reason "…" (recorded)' in refused
    assert "--urgent needs a --reason" in publish(run, root, "--material", "--urgent", effective="2024-03-11",
                                                  published="2024-03-01", expect=2).stderr
    publish(run, root, "--material", "--urgent", "--reason", "A processor breach forces an immediate switch.",
            effective="2024-03-11", published="2024-03-01")
    assert latest_entry(root)["urgent"] is True


def test_a_translation_left_behind_blocks_a_material_version(run, published_terms) -> None:
    root = published_terms(1)
    edit(root, "en", "These terms apply to", "We use Hotjar. These terms apply to")
    git_in(root, "commit", "-qam", "Hotjar, in English only")
    refused = publish(run, root, "--material", expect=2).stderr
    assert "error: a material version in which some translations did not change along:\n  - §scope changed in en but not in nl" in refused
    assert "update those translations and commit them, or publish with --allow-stale (recorded)" in refused
    publish(run, root, "--material", "--allow-stale")
    entry = latest_entry(root)
    assert entry["allow_stale"] is True and entry["stale"] == ["§scope changed in en but not in nl"]


def test_a_change_of_case_is_suggested_formatting(run, published_terms) -> None:
    root = published_terms(1)
    edit(root, "en", "These terms apply to", "These Terms apply to")
    edit(root, "nl", "Deze voorwaarden gelden", "Deze Voorwaarden gelden")
    git_in(root, "commit", "-qam", "Capitalised")
    out = publish(run, root, "--editorial").stdout
    assert "(suggested: formatting)" in out
    assert latest_entry(root)["suggested"] == "formatting"


def test_every_gate_that_refuses_is_reported_in_one_run(run, published_terms) -> None:
    root = published_terms(1)
    edit(root, "en", "These terms apply to", "We use Hotjar. These terms apply to")
    git_in(root, "commit", "-qam", "Hotjar, in English only, announced late")
    refused = publish(run, root, "--material", effective="2024-03-11", published="2024-03-01", expect=2).stderr
    assert refused == (
        "error: 2 gates refuse this version:\n"
        "  - a material change takes effect on 2024-03-11, 10 day(s) after it is published (2024-03-01); "
        "policy terms requires 30 days' notice\n"
        '    to fix: set --effective 2024-03-31 or later, or publish with --urgent --reason "…" (recorded)\n'
        "  - a material version in which some translations did not change along:\n"
        "    - §scope changed in en but not in nl\n"
        "    to fix: update those translations and commit them, or publish with --allow-stale (recorded)\n"
        "  fix each, or override it with the option named (every override is recorded in the ledger)\n")
    assert "--urgent needs a --reason" in publish(run, root, "--material", "--urgent", effective="2024-03-11",
                                                  published="2024-03-01", expect=2).stderr.splitlines()[1]
    publish(run, root, "--material", "--urgent", "--allow-stale", "--reason", "A processor breach forces an immediate switch.",
            effective="2024-03-11", published="2024-03-01")
    entry = latest_entry(root)
    assert (entry["urgent"], entry["allow_stale"]) == (True, True)


def test_a_value_a_site_has_not_provided_is_published_with_a_warning_and_refused_with_strict(run, published_terms) -> None:
    root = published_terms(1)
    leave_shop_contact_pending(root)
    edit(root, "en", "These terms apply to", "These terms only apply to")
    edit(root, "nl", "Deze voorwaarden gelden", "Deze voorwaarden gelden alleen")
    git_in(root, "commit", "-qam", "Shop contact to follow")
    refused = publish(run, root, "--material", "--strict", expect=2).stderr
    assert "readers of some sites would see a value that is not provided yet" in refused
    assert "shop/en §contact shows [to be provided: contact.email]" in refused
    assert "shop/nl §contact shows [nog aan te vullen: contact.email]" in refused
    assert "main/" not in refused
    assert len(tomllib.loads((root / "history/terms/ledger.toml").read_text())["version"]) == 1
    warned = publish(run, root, "--material").stderr
    assert "warning: readers of some sites see a value that is not provided yet (recorded; --strict refuses)" in warned
    assert latest_entry(root)["placeholders"] == ["shop/en §contact shows [to be provided: contact.email]",
                                                  "shop/nl §contact shows [nog aan te vullen: contact.email]"]

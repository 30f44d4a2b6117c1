"""The editor's notes on a version's changes ([notes] in policy.toml): in the redline's summary, the changelog and
the notice, in place of the generated reasons."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

from tests_support import git_in, publish_terms

NOTES = '''
[notes.scope]
en = { note = "The terms now name the revision they are.", impact = "Nothing changes for you." }
nl = "De voorwaarden noemen nu hun versie."
'''


def test_a_note_replaces_the_generated_reasons_in_redline_changelog_and_notice(run, published_terms, tmp_path: Path) -> None:
    root = published_terms(1)
    toml = root / "policies" / "terms" / "policy.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + NOTES, encoding="utf-8")
    git_in(root, "commit", "-q", "-am", "Notes")
    publish_terms(root, 2)
    redline = tmp_path / "redline.html"
    run("--repo", root, "redline", "terms", "terms@2024-01-01", "terms@2024-02-01", "--lang", "nl", "-o", redline)
    page = redline.read_text(encoding="utf-8")
    assert '<p class="editor-note">De voorwaarden noemen nu hun versie.</p>' in page
    assert "herformuleert tekst" not in page  # the generated reason gives way to the note
    changelog = run("--repo", root, "changelog", "terms", "--lang", "en").stdout
    assert "The terms now name the revision they are. Likely impact: Nothing changes for you." in changelog
    assert "§scope rewords text" not in changelog
    (root / "addendum.toml").write_text('[archive]\nbase_url = "https://example.org/history/"\n\n[notify]\n'
                                        'from_address = "legal@example.org"\nunsubscribe_url = "https://example.org/u"\n', encoding="utf-8")
    (tmp_path / "people.csv").write_text("email,name,language,sites,audience,consent_source\n"
                                         "ann@example.org,Ann,en,main,subscriber,test\n", encoding="utf-8")
    run("--repo", root, "subscribers", "import", tmp_path / "people.csv")
    run("--repo", root, "notify", "terms", "terms@2024-02-01", "--preview", tmp_path / "preview")
    [eml] = (tmp_path / "preview").glob("*.eml")
    text = message_from_bytes(eml.read_bytes(), policy=policy.default).get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "  - Scope: changed\n    The terms now name the revision they are. Likely impact: Nothing\n    changes for you." in text


def test_a_note_on_a_section_the_policy_lacks_is_an_error(run, make_repo) -> None:
    root = make_repo()
    toml = root / "policies" / "terms" / "policy.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + '\n[notes.nowhere]\nen = "x"\n', encoding="utf-8")
    out = run("--repo", root, "check", "terms", expect=1).stdout
    assert "notes name section 'nowhere', which no language has" in out

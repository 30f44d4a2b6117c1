"""`addendum commit` and `addendum publish`: what they record, what they leave alone, and every refusal."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from addendum.config import open_repo
from addendum.errors import HistoryError
from addendum.history.ledger import PublishedVersion, append_entries, read_ledger
from addendum.publish.record import publish

GitAt = Callable[..., str]
PUBLISH_FIRST = ("publish", "terms", "--effective", "2024-01-01", "--published", "2023-12-01", "--material",
                 "--summary", "First version.", "--summary-nl", "Eerste versie.")


@pytest.fixture
def repo(make_repo: Callable[..., Path], git_at: GitAt) -> Path:
    """The `terms` policy, committed in a fresh git repository."""
    root = make_repo()
    git_at(root, "init", "-q")
    git_at(root, "add", "-A")
    git_at(root, "commit", "-q", "-m", "Terms", date="2023-11-01")
    return root


def _edit(root: Path, name: str, old: str, new: str) -> None:
    path = root / "policies" / "terms" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _state(root: Path, git_at: GitAt) -> tuple[str, str, bool]:
    """(HEAD, tags, whether history/ exists): what a refused publish must leave as it was."""
    return git_at(root, "rev-parse", "HEAD"), git_at(root, "tag"), (root / "history").exists()


def test_publish_records_the_version_in_one_commit_with_its_tag(run, repo: Path, git_at: GitAt) -> None:
    _edit(repo, "en.md", "Intro text.", "Intro text, edited but not committed.")
    git_at(repo, "add", "policies/terms/en.md")
    (repo / "notes.txt").write_text("mine\n")
    content_commit = git_at(repo, "rev-parse", "HEAD").strip()

    result = run("--repo", repo, *PUBLISH_FIRST, expect=2)
    assert "policies/terms has uncommitted changes: en.md (modified)" in result.stderr
    git_at(repo, "reset", "-q", "--hard")

    result = run("--repo", repo, *PUBLISH_FIRST)
    assert result.stdout.startswith("published terms@2024-01-01: effective 2024-01-01, published 2023-12-01, material (suggested: material)\n")

    assert git_at(repo, "show", "--name-only", "--format=", "HEAD").split() == [
        "history/terms/2024-01-01/source/en.md", "history/terms/2024-01-01/source/nl.md",
        "history/terms/2024-01-01/source/policy.toml", "history/terms/ledger.toml"]
    assert git_at(repo, "log", "-1", "--format=%B").startswith("Publish terms@2024-01-01\n\nEffective 2024-01-01, published 2023-12-01")
    assert git_at(repo, "cat-file", "-t", "terms@2024-01-01").strip() == "tag"
    assert git_at(repo, "rev-parse", "terms@2024-01-01^{commit}") == git_at(repo, "rev-parse", "HEAD")
    assert git_at(repo, "status", "--porcelain").splitlines() == ["?? notes.txt"]
    for name in ("en.md", "nl.md", "policy.toml"):
        archived = repo / "history" / "terms" / "2024-01-01" / "source" / name
        assert archived.read_bytes() == (repo / "policies" / "terms" / name).read_bytes()

    entry = tomllib.loads((repo / "history" / "terms" / "ledger.toml").read_text())["version"][0]
    assert entry["id"] == "terms@2024-01-01"
    assert entry["effective"] == date(2024, 1, 1) and entry["published"] == date(2023, 12, 1)
    assert entry["commit"] == content_commit
    assert entry["classification"] == "material"
    assert entry["author"] == "Test Editor <editor@example.org>"
    assert entry["summary"] == {"en": "First version.", "nl": "Eerste versie."}
    assert sorted(entry["hashes"]) == ["main/en", "main/nl", "shop/en", "shop/nl"]
    assert all(value.startswith("sha256:") and len(value) == 71 for value in entry["hashes"].values())


def test_the_ledger_only_grows_and_a_second_version_on_the_same_day_gets_a_suffix(run, repo: Path, git_at: GitAt) -> None:
    run("--repo", repo, *PUBLISH_FIRST)
    ledger = repo / "history" / "terms" / "ledger.toml"
    first = ledger.read_bytes()
    _edit(repo, "en.md", "Intro text.", "Intro text, corrected.")
    run("--repo", repo, "commit", "terms", "-m", "Correct the intro")
    run("--repo", repo, "publish", "terms", "--effective", "2024-01-01", "--editorial", "--reason", "typo",
        "--summary", "Typo fixed.", "--published", "2023-12-02")
    assert ledger.read_bytes().startswith(first)
    versions = read_ledger(repo / "history", "terms")
    assert [v.id for v in versions] == ["terms@2024-01-01", "terms@2024-01-01.2"]
    assert versions[1].reason == "typo" and versions[1].summaries == {"en": "Typo fixed."}
    assert (repo / "history" / "terms" / "2024-01-01.2" / "source" / "en.md").is_file()
    assert git_at(repo, "tag").split() == ["terms@2024-01-01", "terms@2024-01-01.2"]


@pytest.mark.parametrize(("args", "message"), [
    (("--effective", "2024-02-30"), "error: --effective '2024-02-30' is not a real calendar date"),
    (("--effective", "tomorrow"), "error: --effective 'tomorrow' is not a date"),
    (("--effective", "2024-01-01", "--published", "2999-01-01"), "error: the published date 2999-01-01 is in the future"),
    (("--effective", "2024-01-01", "--summary-de", "Erste."), "error: a summary is given in 'de', which is not a language of terms"),
    (("--effective", "2024-01-01", "--summary", " "), "error: a summary in en (the default language) is required"),
])
def test_publish_refuses_bad_input(run, repo: Path, git_at: GitAt, args: tuple[str, ...], message: str) -> None:
    before = _state(repo, git_at)
    summary = () if "--summary" in args else ("--summary", "First.")
    result = run("--repo", repo, "publish", "terms", "--material", *summary, *args, expect=2)
    assert result.stderr.splitlines()[0] == message
    assert _state(repo, git_at) == before


def test_publish_refuses_without_a_classification(run, repo: Path) -> None:
    result = run("--repo", repo, "publish", "terms", "--effective", "2024-01-01", "--summary", "x", expect=2)
    assert "publish needs --effective DATE and one of --material / --editorial" in result.stderr


def test_publish_refuses_uncommitted_and_untracked_policy_files(run, repo: Path, git_at: GitAt) -> None:
    _edit(repo, "sites/shop/en.md", "", "## Scope {#scope}\n\nShop scope.\n")
    (repo / "policies" / "terms" / "nl.md").unlink()
    before = _state(repo, git_at)
    result = run("--repo", repo, *PUBLISH_FIRST, expect=2)
    assert result.stderr.splitlines()[0] == ("error: policies/terms has uncommitted changes: nl.md (deleted), "
                                             "sites/shop/en.md (untracked)")
    assert _state(repo, git_at) == before


def test_publish_refuses_an_unchanged_text(run, repo: Path, git_at: GitAt) -> None:
    run("--repo", repo, *PUBLISH_FIRST)
    _edit(repo, "policy.toml", 'default_site = "main"', 'default_site = "main"  # a comment readers never see')
    run("--repo", repo, "commit", "terms", "-m", "Comment")
    before = _state(repo, git_at)
    result = run("--repo", repo, "publish", "terms", "--effective", "2024-06-01", "--material", "--summary", "x", expect=2)
    assert result.stderr.splitlines()[0] == "error: nothing a reader sees has changed since terms@2024-01-01"
    assert _state(repo, git_at) == before


def test_publish_refuses_an_effective_date_before_the_previous_one(run, repo: Path, git_at: GitAt) -> None:
    run("--repo", repo, *PUBLISH_FIRST)
    _edit(repo, "en.md", "Intro text.", "Intro text, later.")
    run("--repo", repo, "commit", "terms", "-m", "Later")
    before = _state(repo, git_at)
    result = run("--repo", repo, "publish", "terms", "--effective", "2023-12-31", "--material", "--summary", "x", expect=2)
    assert result.stderr.splitlines()[0] == ("error: effective date 2023-12-31 is before that of the previous version, "
                                             "terms@2024-01-01 (effective 2024-01-01)")
    assert _state(repo, git_at) == before


def test_publish_refuses_a_policy_with_errors(run, repo: Path, git_at: GitAt) -> None:
    _edit(repo, "en.md", "Write to", "Write to someone@elsewhere.example or")
    git_at(repo, "commit", "-q", "-am", "An undeclared address, committed with plain git")
    before = _state(repo, git_at)
    result = run("--repo", repo, *PUBLISH_FIRST, expect=2)
    assert "e-mail address someone@elsewhere.example is not a declared contact" in result.stderr
    assert _state(repo, git_at) == before


def test_publish_refuses_a_version_id_that_exists_as_a_tag(run, repo: Path, git_at: GitAt) -> None:
    git_at(repo, "tag", "-a", "-m", "stray", "terms@2024-01-01")
    before = _state(repo, git_at)
    result = run("--repo", repo, *PUBLISH_FIRST, expect=2)
    assert result.stderr.splitlines()[0] == "error: version id terms@2024-01-01 exists already as a git tag, but not in the ledger"
    assert _state(repo, git_at) == before


def test_publish_refuses_a_hand_edited_ledger(run, repo: Path, git_at: GitAt) -> None:
    run("--repo", repo, *PUBLISH_FIRST)
    ledger = repo / "history" / "terms" / "ledger.toml"
    ledger.write_text(ledger.read_text().replace("First version.", "Another summary."))
    _edit(repo, "en.md", "Intro text.", "Intro text, later.")
    run("--repo", repo, "commit", "terms", "-m", "Later")
    before = _state(repo, git_at)
    result = run("--repo", repo, "publish", "terms", "--effective", "2024-06-01", "--material", "--summary", "x", expect=2)
    assert result.stderr.splitlines()[0] == "error: history/terms/ledger.toml differs from the last commit"
    assert _state(repo, git_at) == before


def test_publish_dry_run_records_nothing(run, repo: Path, git_at: GitAt) -> None:
    before = _state(repo, git_at)
    result = run("--repo", repo, *PUBLISH_FIRST, "--dry-run")
    assert result.stdout.startswith("would publish terms@2024-01-01")
    assert _state(repo, git_at) == before


def test_publish_as_a_library_call_records_extra_fields(repo: Path) -> None:
    version = publish(open_repo(repo), "terms", effective=date(2024, 1, 1), published=date(2023, 12, 1),
                      classification="editorial", summaries={"en": "x"}, reason="why",
                      extra={"suggested": "material", "reasons": ["§scope names Example"], "urgent": False})
    assert read_ledger(repo / "history", "terms") == [version]
    assert version.extra.pop("previous_entry").startswith("sha256:")  # the hash chain's link
    assert version.extra == {"suggested": "material", "reasons": ["§scope names Example"], "urgent": False}


def test_sync_tags_recreates_missing_tags(run, repo: Path, git_at: GitAt) -> None:
    run("--repo", repo, *PUBLISH_FIRST)
    publishing_commit = git_at(repo, "rev-parse", "HEAD").strip()
    (repo / "notes.txt").write_text("x\n")
    git_at(repo, "add", "notes.txt")
    git_at(repo, "commit", "-q", "-m", "Later commit")
    git_at(repo, "tag", "-d", "terms@2024-01-01")
    assert run("--repo", repo, "publish", "terms", "--sync-tags").stdout == "terms@2024-01-01  created\n"
    assert git_at(repo, "rev-parse", "terms@2024-01-01^{commit}").strip() == publishing_commit
    assert run("--repo", repo, "publish", "terms", "--sync-tags").stdout == "terms@2024-01-01  present\n"


def test_commit_commits_only_the_policy_and_names_the_sections(run, repo: Path, git_at: GitAt) -> None:
    _edit(repo, "en.md", "These terms apply", "These terms now apply")
    _edit(repo, "nl.md", "## Contact {#contact}\n\nSchrijf naar {{ site.contact.email }}.\n", "")
    _edit(repo, "sites/shop/en.md", "", "## Scope {#scope}\n\nOnly the shop.\n")
    (repo / "elsewhere.txt").write_text("not mine\n")
    git_at(repo, "add", "elsewhere.txt")

    result = run("--repo", repo, "commit", "terms", "-m", "Narrow the scope")

    assert result.stdout.splitlines()[:3] == ["  changed  §scope (en)", "  removed  §contact (nl)", "  added    §scope (en, site shop)"]
    assert git_at(repo, "show", "--name-status", "--format=", "HEAD").splitlines() == [
        "M\tpolicies/terms/en.md", "M\tpolicies/terms/nl.md", "A\tpolicies/terms/sites/shop/en.md"]
    assert git_at(repo, "log", "-1", "--format=%B") == "Narrow the scope\n\nPolicy: terms\nSections: scope, contact\n\n"
    assert git_at(repo, "log", "-1", "--format=%(trailers:key=Sections,valueonly)").strip() == "scope, contact"
    assert git_at(repo, "status", "--porcelain").splitlines() == ["A  elsewhere.txt"]


def test_commit_refuses_errors_and_empty_commits(run, repo: Path, git_at: GitAt) -> None:
    before = git_at(repo, "rev-parse", "HEAD")
    result = run("--repo", repo, "commit", "terms", "-m", "Nothing", expect=2)
    assert result.stderr.splitlines()[0] == "error: nothing to commit: policies/terms is as the last commit has it"
    _edit(repo, "en.md", "## Contact {#contact}", "## Contact {#Contact Us}")
    result = run("--repo", repo, "commit", "terms", "-m", "Broken", expect=2)
    assert "section id 'Contact Us' is not a valid id" in result.stderr
    assert run("--repo", repo, "commit", "terms", "-m", " ", expect=2).stderr.startswith("error:")
    assert git_at(repo, "rev-parse", "HEAD") == before


def test_commit_dry_run_shows_the_message(run, repo: Path, git_at: GitAt) -> None:
    _edit(repo, "en.md", "Intro text.", "Intro.")
    before = git_at(repo, "rev-parse", "HEAD")
    result = run("--repo", repo, "commit", "terms", "-m", "Shorter intro", "--dry-run")
    assert "  changed  §preamble (en)" in result.stdout
    assert "Policy: terms\nSections: preamble" in result.stdout
    assert git_at(repo, "rev-parse", "HEAD") == before


_summary_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=60).filter(str.strip)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(summary=_summary_text, reason=st.text(max_size=30), extra=st.dictionaries(
    st.sampled_from(["suggested", "reasons", "urgent"]), st.one_of(st.booleans(), st.text(max_size=20), st.lists(st.text(max_size=10)))))
def test_ledger_entries_read_back_exactly(summary: str, reason: str, extra: dict[str, object]) -> None:
    version = PublishedVersion("terms@2024-01-01", "terms", date(2024, 1, 1), date(2023, 12, 1), "abc", "material",
                               reason, "A <a@example.org>", {"en": summary}, {"main/en": "sha256:00"}, extra)
    text = append_entries(None, "terms", [version])
    later = PublishedVersion("terms@2024-01-01.2", "terms", date(2024, 1, 1), date(2023, 12, 1), "abc", "editorial",
                             "", "", {"en": "x"}, {"main/en": "sha256:01"})
    grown = append_entries(text, "terms", [later])
    assert grown.startswith(text)
    assert tomllib.loads(grown)["version"][0]["summary"]["en"] == summary



def _entry(**fields: str) -> str:
    """A [[version]] entry of `terms` in TOML, with `fields` given as raw TOML values replacing or adding fields."""
    values = {"id": '"terms@2024-01-01"', "effective": "2024-01-01", "published": "2023-12-01",
              "classification": '"material"', "summary": '{ en = "First version." }', "hashes": '{ "main/en" = "sha256:00" }'}
    values.update(fields)
    return "".join(f"{key} = {value}\n" for key, value in values.items() if value)


@pytest.mark.parametrize(("ledger", "message"), [
    ("version = 1\n", "'version' must be an array of [[version]] tables, got an integer"),
    ("[version]\n" + _entry(), "'version' must be an array of [[version]] tables, got a table "
                               "(write [[version]], not [version])"),
    ("version = [1]\n", "entry 1 must be a [[version]] table, got an integer"),
    ("[[version]]\n" + _entry(summary='"x"'),
     "entry 1 (terms@2024-01-01): summary must be a table of language = text, got a string"),
    ("[[version]]\n" + _entry(hashes='{ "main/en" = 3 }'),
     "entry 1 (terms@2024-01-01): hashes must be a table of \"site/lang\" = text, got an integer in it"),
    ("[[version]]\n" + _entry() + "[[version]]\n" + _entry(id="5"), "entry 2: id must be text, got an integer"),
    ("[[version]]\n" + _entry(author="[1]"), "entry 1 (terms@2024-01-01): author must be text, got an array"),
    ("[[version]]\n" + _entry(classification=""), "entry 1 (terms@2024-01-01): lacks 'classification'"),
])
def test_a_ledger_of_the_wrong_shape_is_a_history_error_naming_file_and_entry(tmp_path: Path, ledger: str,
                                                                               message: str) -> None:
    path = tmp_path / "history" / "terms" / "ledger.toml"
    path.parent.mkdir(parents=True)
    path.write_text(ledger, encoding="utf-8")
    with pytest.raises(HistoryError) as caught:
        read_ledger(tmp_path / "history", "terms")
    assert caught.value.message == f"{path}: {message}"
    assert "restore it from git" in caught.value.hint

"""Reading versions: snapshots, the version in force on a day, `log`, `show`, and the ledger standing on its own."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from addendum.config import open_repo
from addendum.errors import HistoryError, UsageError
from addendum.history.versions import NothingInForceError, in_force, load_version, published_versions, snapshot

GitAt = Callable[..., str]


@pytest.fixture
def repo(make_repo: Callable[..., Path], git_at: GitAt, run) -> Path:
    """`terms` published twice: 1 January 2024 (published 1 December 2023) and 1 July 2024 (published 1 June 2024),
    the second adding "Revised." to §scope in English only (so the Dutch text stays as it was); then an
    unpublished change to §contact in Dutch."""
    root = make_repo()
    git_at(root, "init", "-q")
    git_at(root, "add", "-A")
    git_at(root, "commit", "-q", "-m", "Terms")
    run("--repo", root, "publish", "terms", "--effective", "2024-01-01", "--published", "2023-12-01", "--material",
        "--summary", "First version.", "--summary-nl", "Eerste versie.")
    _replace(root / "policies/terms/en.md", "{{ site.name }}.", "{{ site.name }}. Revised.")
    run("--repo", root, "commit", "terms", "-m", "Revise the scope")
    run("--repo", root, "publish", "terms", "--effective", "2024-07-01", "--published", "2024-06-01", "--material",
        "--allow-stale", "--summary", "The scope is revised.", "--summary-nl", "De toepassing is herzien.")
    _replace(root / "policies/terms/nl.md", "Schrijf naar", "Mail naar")
    return root


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_in_force_and_upcoming(repo: Path) -> None:
    r = open_repo(repo)
    assert in_force(r, "terms", date(2023, 12, 31)) == (None, published_versions(r, "terms")[0])
    first, second = published_versions(r, "terms")
    assert in_force(r, "terms", date(2024, 1, 1)) == (first, second)
    assert in_force(r, "terms", date(2024, 6, 30)) == (first, second)
    assert in_force(r, "terms", date(2024, 7, 1)) == (second, None)


def test_snapshots_by_version_date_latest_revision_and_worktree(repo: Path) -> None:
    r = open_repo(repo)
    first, second = published_versions(r, "terms")
    by_id = snapshot(r, "terms", "terms@2024-01-01")
    assert (by_id.label, by_id.version, by_id.effective) == ("terms@2024-01-01", first, date(2024, 1, 1))
    assert "Revised." not in by_id.policy.documents["en"].text()
    assert snapshot(r, "terms", "2024-06-30").version == first
    assert snapshot(r, "terms", "2024-07-01").version == second
    assert snapshot(r, "terms", "latest").version == second
    at_head = snapshot(r, "terms", "HEAD")
    assert at_head.version == second and at_head.label.startswith("HEAD (")
    at_start = snapshot(r, "terms", "HEAD~3")
    assert at_start.version == first and at_start.effective == date(2024, 1, 1)
    now = snapshot(r, "terms", None)
    assert (now.label, now.version, now.effective) == ("working tree", None, None)
    assert "Mail naar" in now.policy.documents["nl"].text()
    assert snapshot(r, "terms", "worktree").policy == now.policy


@pytest.mark.parametrize(("ref", "error", "message"), [
    ("terms@2020-01-01", HistoryError, "terms has no published version terms@2020-01-01"),
    ("privacy@2024-01-01", UsageError, "version privacy@2024-01-01 belongs to policy privacy, not terms"),
    ("2024-01-01.0", UsageError, "'2024-01-01.0' is not a version id"),
    ("2024-01-01.1", UsageError, "'2024-01-01.1' is not a version id"),
    ("2024-01-01.0002", UsageError, "'2024-01-01.0002' is not a version id"),
    ("2023-12-31", HistoryError, "no version of terms was in force on 2023-12-31: the first, terms@2024-01-01, "
                                       "took effect on 2024-01-01"),
    ("2024-13-01", UsageError, "date '2024-13-01' is not a real calendar date"),
    ("2024-1-1", UsageError, "date '2024-1-1' is not a date"),
    ("no-such-branch", HistoryError, "unknown revision 'no-such-branch'"),
    ("--output=/tmp/x", UsageError, "'--output=/tmp/x' is not a git revision this command accepts"),
    ("../../x", UsageError, "'../../x' is not a git revision this command accepts"),
    ("HEAD;rm", UsageError, "'HEAD;rm' is not a git revision this command accepts"),
])
def test_snapshot_refusals(repo: Path, ref: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        snapshot(open_repo(repo), "terms", ref)
    assert str(caught.value) == message
    assert not isinstance(caught.value, NothingInForceError)  # "nothing in force" means exit 1 only to `show`


@pytest.mark.parametrize("command", [("diff",), ("redline", "--site", "main", "--lang", "en", "-o", "{repo}/redline.html")])
def test_diff_and_redline_before_the_first_version_are_errors_not_changes(run, repo: Path, command: tuple[str, ...]) -> None:
    options = [option.format(repo=repo) for option in command[1:]]
    result = run("--repo", repo, command[0], "terms", "2023-12-31", "latest", *options, expect=2)
    assert result.stderr.startswith("error: no version of terms was in force on 2023-12-31")


@pytest.mark.parametrize(("option", "value"), [("--rev", "--output={out}"), ("--rev", "../../x"), ("--rev", "HEAD;rm"),
                                               ("--version", "../../x"), ("--version", "--output={out}")])
def test_malicious_references_are_refused_before_git_sees_them(run, repo: Path, option: str, value: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    value = value.format(out=tmp_path / "x")
    monkeypatch.setenv("PATH", "/nonexistent")  # git cannot even start: a refusal here comes from validation
    result = run("--repo", repo, "show", "terms", f"{option}={value}", expect=2)
    assert result.stderr.startswith(f"error: {value!r} is not a ")
    assert not (tmp_path / "x").exists()


def test_show_at_a_date_names_an_announced_version(run, repo: Path) -> None:
    result = run("--repo", repo, "show", "terms", "--at", "2024-06-15", "--lang", "nl", "--site", "shop")
    assert "Deze voorwaarden gelden voor Shop.\n" in result.stdout
    assert "Shop · Laatst gewijzigd op 1 januari 2024" in result.stdout
    assert result.stderr.splitlines() == ["terms@2024-01-01 was in force on 15 June 2024 (effective 1 January 2024)",
                                          "upcoming: terms@2024-07-01 effective 1 July 2024 (published 1 June 2024)"]


def test_show_at_a_date_before_the_announcement_and_after(run, repo: Path) -> None:
    result = run("--repo", repo, "show", "terms", "--at", "2024-03-01")
    assert result.stderr.splitlines()[1] == "superseded by terms@2024-07-01, effective 1 July 2024"
    result = run("--repo", repo, "show", "terms", "--at", "2025-01-01", "--format", "md")
    assert "These terms apply to Main. Revised." in result.stdout
    assert len(result.stderr.splitlines()) == 1


def test_show_before_the_first_version_exits_1(run, repo: Path) -> None:
    result = run("--repo", repo, "show", "terms", "--at", "2023-06-01", expect=1)
    assert result.stderr.splitlines()[0] == ("error: no version of terms was in force on 2023-06-01: the first, "
                                             "terms@2024-01-01, took effect on 2024-01-01")
    assert result.stdout == ""


def test_show_a_version_a_revision_and_the_work_tree(run, repo: Path, tmp_path: Path) -> None:
    old = run("--repo", repo, "show", "terms", "--version", "terms@2024-01-01", "--lang", "nl").stdout
    assert "Schrijf naar" in old and "Laatst gewijzigd op 1 januari 2024" in old
    by_slug = run("--repo", repo, "show", "terms", "--version", "2024-01-01", "--lang", "nl").stdout
    assert by_slug == old
    head = run("--repo", repo, "show", "terms", "--rev", "HEAD", "--lang", "nl").stdout
    assert "Laatst gewijzigd op 1 januari 2024" in head  # the Dutch text did not change in the second version
    draft = run("--repo", repo, "show", "terms", "--rev", "worktree", "--lang", "nl").stdout
    assert "Mail naar" in draft and "Main · Ontwerp: deze tekst is nog niet gepubliceerd" in draft
    output = tmp_path / "out" / "terms.html"
    run("--repo", repo, "show", "terms", "--version", "terms@2024-07-01", "--format", "html", "-o", output)
    assert "<html" in output.read_text() and "Revised." in output.read_text()
    assert "only one of" in run("--repo", repo, "show", "terms", "--at", "2024-01-01", "--rev", "HEAD", expect=2).stderr


def test_log_lists_versions_newest_first_then_unpublished_changes(run, repo: Path) -> None:
    result = run("--repo", repo, "log", "terms")
    assert result.stdout == (
        "terms@2024-07-01  in force    effective 1 July 2024 · published 1 June 2024 · material\n"
        "    The scope is revised.\n"
        "    suggested: editorial\n"
        "      editorial: §scope rewords text\n"
        "terms@2024-01-01  superseded  effective 1 January 2024 · published 1 December 2023 · material\n"
        "    in force until 30 June 2024, superseded by terms@2024-07-01\n"
        "    First version.\n"
        "    suggested: material\n"
        "      material: first published version: all of its text is new to readers\n"
        "\n"
        "Unpublished changes since terms@2024-07-01:\n"
        "  changed  §contact (nl)\n")
    dutch = run("--repo", repo, "log", "terms", "--lang", "nl").stdout
    assert "effective 1 januari 2024 · published 1 december 2023" in dutch and "    Eerste versie.\n" in dutch


def test_log_in_a_language_the_policy_does_not_have_is_a_usage_error(run, repo: Path) -> None:
    result = run("--repo", repo, "log", "terms", "--lang", "xx", expect=2)
    assert result.stderr == "error: policy terms has no language 'xx'\n  its languages are: en, nl\n"


def test_log_json(run, repo: Path) -> None:
    document = json.loads(run("--repo", repo, "log", "terms", "--json").stdout)
    assert [v["id"] for v in document["versions"]] == ["terms@2024-07-01", "terms@2024-01-01"]
    assert document["versions"][1]["effective"] == "2024-01-01"
    assert document["versions"][1]["summary"] == {"en": "First version.", "nl": "Eerste versie."}
    assert document["versions"][0]["status"] == "in force"
    assert document["unpublished"] == {"since": "terms@2024-07-01", "changes": [
        {"file": "nl.md", "language": "nl", "site": "", "section": "contact", "ref": "§contact", "kind": "changed"}]}


def test_log_before_anything_is_published(run, make_repo: Callable[..., Path]) -> None:
    root = make_repo()
    assert run("--repo", root, "log", "terms").stdout.startswith("Not published yet (3 sections).")


def test_a_shallow_clone_without_tags_answers_the_same(run, repo: Path, tmp_path: Path, git_at: GitAt) -> None:
    git_at(repo, "checkout", "-q", "--", ".")  # the clone gets the committed state; compare like with like
    clone = tmp_path / "clone"
    git_at(tmp_path, "clone", "-q", "--depth", "1", "--no-tags", f"file://{repo}", str(clone))
    assert git_at(clone, "tag") == ""
    assert git_at(clone, "rev-list", "--count", "HEAD").strip() == "1"
    for args in (("log", "terms"), ("log", "terms", "--json"),
                 ("show", "terms", "--at", "2024-03-01", "--site", "shop", "--lang", "nl"),
                 ("show", "terms", "--version", "terms@2024-07-01", "--format", "html")):
        original, cloned = run("--repo", repo, *args), run("--repo", clone, *args)
        assert (cloned.stdout, cloned.stderr) == (original.stdout, original.stderr)


def test_a_changed_archived_source_is_refused(run, repo: Path) -> None:
    archived = repo / "history/terms/2024-01-01/source/en.md"
    archived.write_text(archived.read_text().replace("Intro text.", "Intro text, quietly changed."))
    result = run("--repo", repo, "show", "terms", "--at", "2024-03-01", expect=2)
    assert result.stderr.startswith("error: history/terms/2024-01-01/source does not match the ledger for terms@2024-01-01: "
                                    "the main/en text hashes to sha256:")
    assert "git checkout HEAD -- history/terms/2024-01-01/source" in result.stderr


def test_a_missing_archived_source_is_read_from_its_commit(repo: Path) -> None:
    r = open_repo(repo)
    first = published_versions(r, "terms")[0]
    expected = load_version(r, first)
    shutil.rmtree(repo / "history/terms/2024-01-01/source")
    assert load_version(r, first).documents["en"].text() == expected.documents["en"].text()


def test_render_takes_last_changed_from_the_ledger(run, repo: Path) -> None:
    english = run("--repo", repo, "render", "terms", "--lang", "en", "--format", "text").stdout
    assert "Last changed on 1 July 2024" in english
    run("--repo", repo, "commit", "terms", "-m", "Dutch contact")
    dutch = run("--repo", repo, "show", "terms", "--rev", "HEAD~2", "--lang", "nl").stdout
    assert "Laatst gewijzigd op 1 januari 2024" in dutch


@pytest.mark.parametrize("fmt", ["text", "md", "html"])
def test_show_and_render_print_the_same_text_the_same_way(run, repo: Path, fmt: str) -> None:
    rendered = run("--repo", repo, "render", "terms", "--lang", "en", "--format", fmt).stdout
    shown = run("--repo", repo, "show", "terms", "--lang", "en", "--format", fmt).stdout
    assert shown == rendered
    assert "Earlier versions: in force from 1 January 2024" in shown
    first = run("--repo", repo, "show", "terms", "--version", "terms@2024-01-01", "--lang", "en", "--format", fmt).stdout
    assert "Earlier versions" not in first


def test_the_shipped_history(run, shipped: Path) -> None:
    log = run("--repo", shipped, "log", "privacy").stdout
    assert "privacy@2018-05-19  superseded  effective 19 May 2018 · published 19 May 2018 · material" in log
    assert "privacy@2020-09-01  in force    effective 1 September 2020 · published 31 July 2020 · material" in log
    assert "    Example revision:" in log
    old = run("--repo", shipped, "show", "privacy", "--at", "2019-03-01", "--site", "equihealth", "--lang", "nl").stdout
    assert "Laatst gewijzigd op 19 mei 2018" in old and "Privacy Shield" in old
    new = run("--repo", shipped, "show", "privacy", "--site", "equihealth", "--lang", "nl").stdout
    assert "Laatst gewijzigd op 1 september 2020" in new and "Privacy Shield" not in new
    assert "standard contractual clauses" in new

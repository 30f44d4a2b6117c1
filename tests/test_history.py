"""Git access: strict revisions, a file's history in one pass, read-only foreign repositories, atomic commits."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from addendum.errors import HistoryError, UsageError
from addendum.history.repository import (
    Git,
    NewTag,
    open_work_tree,
    read_blobs,
    read_file_history,
    read_only,
    require_repository_path,
    require_revision,
    require_tag_name,
)

GitAt = Callable[..., str]


@pytest.mark.parametrize("revision", ["HEAD", "HEAD~2", "main^", "v1.0", "origin/main", "3f2a1c9", "privacy@2018-05-19",
                                      "feature/x^2~1"])
def test_plain_revisions_are_accepted(revision: str) -> None:
    assert require_revision(revision) == revision


@pytest.mark.parametrize("revision", ["--output=/tmp/x", "../../x", "HEAD;rm", "-h", "a..b", "HEAD@{1}", "x.lock", "",
                                      "HEAD:policies/privacy/en.md", "$(id)", "a b", "x/", "/etc", ".hidden", "@", "HEAD\n"])
def test_malicious_revisions_are_refused(revision: str) -> None:
    with pytest.raises(UsageError, match="is not a git revision"):
        require_revision(revision)


@pytest.mark.parametrize(("name", "accepted"), [("privacy@2018-05-19", True), ("privacy@2018-05-19.2", True),
                                                 ("privacy@2018-05-19.10", True), ("privacy@2018-05-19.0", False),
                                                 ("privacy@2018-05-19.1", False), ("privacy@2018-05-19.0002", False),
                                                 ("Privacy@2018-05-19", False), ("privacy@2018-5-19", False)])
def test_tag_names_are_version_ids(name: str, accepted: bool) -> None:
    if accepted:
        assert require_tag_name(name) == name
    else:
        with pytest.raises(UsageError, match="is not a version id"):
            require_tag_name(name)


@pytest.mark.parametrize("path", ["../x", "a/../../x", "/etc/passwd", "-p", ":(glob)*", "a//b", "./a", "a\\b", "a\nb", ""])
def test_repository_paths_are_validated(path: str) -> None:
    with pytest.raises(UsageError, match="is not a path inside the repository"):
        require_repository_path(path)


def _write(root: Path, name: str, text: str) -> None:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text, encoding="utf-8")


def _long_text(tag: str) -> str:
    return "".join(f"Paragraph {i} of the {tag} text, long enough for git to see a rename.\n" for i in range(20))


@pytest.fixture
def source(tmp_path: Path, git_at: GitAt) -> Path:
    """A repository whose file was renamed (git sees it), replaced under a new name, and changed on a merged branch."""
    root = tmp_path / "source"
    root.mkdir()
    git_at(root, "init", "-q", "-b", "main")
    _write(root, "privacy.md", _long_text("first"))
    git_at(root, "add", "-A")
    git_at(root, "commit", "-q", "-m", "one", date="2019-01-10")
    (root / "legal").mkdir()
    git_at(root, "mv", "privacy.md", "legal/privacy.md")
    git_at(root, "commit", "-q", "-m", "rename", date="2019-02-10")
    git_at(root, "checkout", "-q", "-b", "branch")
    _write(root, "legal/privacy.md", _long_text("branch"))
    git_at(root, "commit", "-q", "-am", "on the branch", date="2019-03-10")
    _write(root, "legal/privacy.md", _long_text("branch, twice"))
    git_at(root, "commit", "-q", "-am", "on the branch again", date="2019-03-11")
    git_at(root, "checkout", "-q", "main")
    _write(root, "unrelated.txt", "x\n")
    git_at(root, "add", "-A")
    git_at(root, "commit", "-q", "-m", "unrelated", date="2019-03-12")
    git_at(root, "merge", "-q", "--no-ff", "branch", "-m", "merge", date="2019-04-10")
    git_at(root, "rm", "-q", "legal/privacy.md")
    _write(root, "notice.md", "Something else entirely.\n")
    git_at(root, "add", "-A")
    git_at(root, "commit", "-q", "-m", "replace", date="2019-05-10")
    return root


def test_file_history_follows_renames_replacements_and_the_first_parent_line(source: Path) -> None:
    with read_only(source) as git:
        versions = read_file_history(git, ["notice.md", "legal/privacy.md"])
    assert [(v.subject, v.path) for v in versions] == [
        ("one", "privacy.md"), ("rename", "legal/privacy.md"), ("merge", "legal/privacy.md"), ("replace", "notice.md")]
    assert versions[0].content.decode() == _long_text("first")
    assert versions[2].content.decode() == _long_text("branch, twice")  # the branch arrives whole, at its merge
    assert len(versions[2].parents) == 2
    assert [v.committed.date().isoformat() for v in versions] == ["2019-01-10", "2019-02-10", "2019-04-10", "2019-05-10"]
    assert versions[0].author == "Test Editor <editor@example.org>"


def test_without_the_earlier_name_history_starts_at_the_replacement(source: Path) -> None:
    with read_only(source) as git:
        versions = read_file_history(git, ["notice.md"])
    assert [v.subject for v in versions] == ["replace"]


def test_history_up_to_a_revision(source: Path) -> None:
    with read_only(source) as git:
        versions = read_file_history(git, ["legal/privacy.md"], "HEAD~1")
    assert [v.subject for v in versions] == ["one", "rename", "merge"]


def test_oversized_blobs_are_refused_unread(source: Path) -> None:
    with read_only(source) as git:
        object_id = git.text("rev-parse", "HEAD:notice.md")
        assert read_blobs(git, [object_id]) == {object_id: b"Something else entirely.\n"}
        with pytest.raises(HistoryError, match="the limit is 10"):
            read_blobs(git, [object_id], limit=10)


def _sign_head(root: Path, tmp_path: Path, git_at: GitAt) -> None:
    """Give HEAD a (fake) signature header, which `log.showSignature` hands to the configured gpg program."""
    header, _, message = git_at(root, "cat-file", "commit", "HEAD").partition("\n\n")
    signed = tmp_path / "signed-commit"
    signed.write_text(f"{header}\ngpgsig -----BEGIN PGP SIGNATURE-----\n \n iQEzBAABCAAd\n -----END PGP SIGNATURE-----\n\n{message}")
    git_at(root, "update-ref", "refs/heads/main", git_at(root, "hash-object", "-t", "commit", "-w", str(signed)).strip())


def _fingerprint(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_source_repository_is_read_without_its_config_or_hooks_and_left_untouched(source: Path, tmp_path: Path,
                                                                                    git_at: GitAt) -> None:
    marker = tmp_path / "ran"
    script = tmp_path / "evil.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)
    for key, value in (("log.showSignature", "true"), ("gpg.program", str(script)), ("core.fsmonitor", str(script)),
                       ("diff.external", str(script)), ("core.pager", str(script)), ("log.follow", "false")):
        git_at(source, "config", key, value)
    _sign_head(source, tmp_path, git_at)
    for hook in ("post-checkout", "post-index-change", "reference-transaction"):
        (source / ".git" / "hooks" / hook).write_text(f"#!/bin/sh\ntouch {marker}\n")
        (source / ".git" / "hooks" / hook).chmod(0o755)
    git_at(source, "log", "-1", "--format=%H", "--", "notice.md")
    assert marker.exists(), "the source's own configuration runs the script for a plain git log"
    marker.unlink()
    before = _fingerprint(source)

    with read_only(source) as git:
        versions = read_file_history(git, ["notice.md", "legal/privacy.md"])

    assert len(versions) == 4
    assert not marker.exists()
    assert _fingerprint(source) == before


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="is not a git repository"), read_only(tmp_path):
        pass


def test_unknown_revision_names_the_way_out(source: Path) -> None:
    with read_only(source) as git, pytest.raises(HistoryError, match="unknown revision 'nope'") as caught:
        git.resolve_commit("nope")
    assert "use a version id or a date" in caught.value.hint
    with read_only(source) as git, pytest.raises(HistoryError, match="unknown revision 'no-such-branch'"):
        read_file_history(git, ["notice.md"], "no-such-branch")


@pytest.fixture
def work_tree(tmp_path: Path, git_at: GitAt) -> Path:
    root = tmp_path / "work"
    root.mkdir()
    git_at(root, "init", "-q")
    _write(root, "a.txt", "a\n")
    _write(root, "b.txt", "b\n")
    git_at(root, "add", "-A")
    git_at(root, "commit", "-q", "-m", "start")
    return root


def test_a_commit_holds_only_the_given_files_and_leaves_other_changes_as_they_were(work_tree: Path, git_at: GitAt) -> None:
    _write(work_tree, "a.txt", "a, staged\n")
    git_at(work_tree, "add", "a.txt")
    _write(work_tree, "b.txt", "b, not staged\n")
    _write(work_tree, "c.txt", "untracked\n")
    tree = open_work_tree(work_tree)
    before = tree.head()

    commit = tree.commit("Record\n", write={"history/x/ledger.toml": b"ledger\n"}, tags=[NewTag("x@2020-01-01", "tag")])

    assert git_at(work_tree, "rev-parse", "HEAD").strip() == commit
    assert git_at(work_tree, "rev-parse", "HEAD~1").strip() == before
    assert git_at(work_tree, "show", "--name-only", "--format=", "HEAD").split() == ["history/x/ledger.toml"]
    assert git_at(work_tree, "cat-file", "-t", "x@2020-01-01").strip() == "tag"
    assert git_at(work_tree, "rev-parse", "x@2020-01-01^{commit}").strip() == commit
    assert (work_tree / "history/x/ledger.toml").read_text() == "ledger\n"
    assert git_at(work_tree, "status", "--porcelain").splitlines() == ["M  a.txt", " M b.txt", "?? c.txt"]


def test_an_aborted_reference_transaction_leaves_head_tags_and_files_alone(work_tree: Path, git_at: GitAt) -> None:
    hook = work_tree / ".git" / "hooks" / "reference-transaction"
    hook.write_text('#!/bin/sh\n[ "$1" = prepared ] && exit 1\nexit 0\n')
    hook.chmod(0o755)
    tree = open_work_tree(work_tree)
    before = tree.head()

    with pytest.raises(HistoryError, match="nothing was changed in git"):
        tree.commit("Record\n", write={"history/x/ledger.toml": b"ledger\n"}, tags=[NewTag("x@2020-01-01", "tag")])

    assert tree.head() == before
    assert tree.tag_target("x@2020-01-01") is None
    assert not (work_tree / "history").exists()


def test_a_work_tree_in_a_sub_folder(tmp_path: Path, git_at: GitAt) -> None:
    outer = tmp_path / "outer"
    (outer / "legal").mkdir(parents=True)
    git_at(outer, "init", "-q")
    _write(outer, "legal/policies/p/en.md", "text\n")
    git_at(outer, "add", "-A")
    git_at(outer, "commit", "-q", "-m", "start")
    tree = open_work_tree(outer / "legal")
    assert tree.prefix == "legal/"
    assert tree.files_at(tree.head() or "", "policies/p") == {"en.md": b"text\n"}
    tree.commit("Record\n", write={"history/p/ledger.toml": b"x\n"})
    assert git_at(outer, "show", "--name-only", "--format=", "HEAD").split() == ["legal/history/p/ledger.toml"]


def test_commit_without_an_identity_says_how_to_set_one(work_tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(work_tree))
    monkeypatch.setenv("EMAIL", "")
    tree = open_work_tree(work_tree)
    tree.git.run("config", "user.useConfigOnly", "true")
    with pytest.raises(HistoryError, match="git does not know who you are"):
        tree.commit("x\n", write={"y": b"y"})


def test_git_runs_only_through_its_runner(work_tree: Path) -> None:
    git = Git(work_tree, {"PATH": "/nonexistent"})
    with pytest.raises(HistoryError, match="git is not installed"):
        git.run("status")
    with pytest.raises(HistoryError, match="git is not installed"):
        read_blobs(git, ["0" * 40])


def test_a_git_command_that_hangs_is_stopped_with_a_hint(work_tree: Path, tmp_path: Path) -> None:
    slow = tmp_path / "slow-bin"
    slow.mkdir()
    (slow / "git").write_text(f"#!/bin/sh\nexec {shutil.which('sleep')} 30\n", encoding="utf-8")
    (slow / "git").chmod(0o755)
    git = Git(work_tree, {"PATH": str(slow)}, timeout=0.5)
    with pytest.raises(HistoryError) as caught:
        git.run("status")
    assert caught.value.message == "git status did not finish within 0.5 seconds"
    assert "lock" in caught.value.hint


def test_bare_repositories_and_linked_work_trees_are_read_too(source: Path, tmp_path: Path, git_at: GitAt) -> None:
    bare = tmp_path / "bare.git"
    git_at(tmp_path, "clone", "-q", "--bare", str(source), str(bare))
    linked = tmp_path / "linked"
    git_at(source, "worktree", "add", "-q", "--detach", str(linked), "HEAD~1")
    with read_only(bare) as git:
        assert [v.subject for v in read_file_history(git, ["notice.md"])] == ["replace"]
    with read_only(linked) as git:
        assert [v.subject for v in read_file_history(git, ["legal/privacy.md"])] == ["one", "rename", "merge"]


def test_commit_dates_come_from_one_git_run_and_leave_out_what_git_lacks(tmp_path: Path, git_at: GitAt) -> None:
    from datetime import date

    git_at(tmp_path, "init", "-q")
    commits = []
    for day in ("2019-05-01", "2020-07-31"):
        (tmp_path / "file.txt").write_text(day, encoding="utf-8")
        git_at(tmp_path, "add", "file.txt")
        git_at(tmp_path, "commit", "-q", "-m", day, date=day)
        commits.append(git_at(tmp_path, "rev-parse", "HEAD").strip())
    work_tree = open_work_tree(tmp_path)
    expected = {commits[0]: date(2019, 5, 1), commits[1]: date(2020, 7, 31)}
    assert work_tree.commit_dates(commits) == expected
    assert work_tree.commit_dates([commits[1][:12]]) == {commits[1][:12]: date(2020, 7, 31)}
    absent = "0" * 40
    assert work_tree.commit_dates([*commits, absent]) == expected  # as commit_date answers each alone
    assert work_tree.commit_dates([]) == {}

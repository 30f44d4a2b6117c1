"""`addendum log` keeps worked-out suggestions in the user's cache folder: the same answer as working them out, never
stale, and never read from the work tree, where a commit could put one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from addendum.config import open_repo
from addendum.files import user_cache as user_cache_folder
from addendum.history.versions import published_versions, version_files
from addendum.operations import suggestions as cache


@pytest.fixture(autouse=True)
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of this test's own, as XDG_CACHE_HOME names it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    return tmp_path / "user-cache" / "addendum" / "suggestions"


def cached_files() -> list[Path]:
    return sorted(user_cache_folder("suggestions").glob("*.json"))


def test_a_cached_suggestion_reads_as_the_one_worked_out(run, shipped: Path, user_cache: Path) -> None:
    first = run("--repo", shipped, "log", "privacy").stdout
    files = cached_files()
    assert len(files) == 1  # the first version needs no working out
    assert files[0].parent == user_cache and not (shipped / ".addendum").exists()  # nothing written into the repository
    assert run("--repo", shipped, "log", "privacy").stdout == first
    assert cached_files() == files
    json_first = run("--repo", shipped, "log", "privacy", "--json").stdout
    for path in files:
        path.unlink()
    assert run("--repo", shipped, "log", "privacy", "--json").stdout == json_first


def test_a_changed_rule_is_a_new_key_never_the_old_answer(run, shipped: Path) -> None:
    run("--repo", shipped, "log", "privacy")
    [before] = cached_files()
    # The archived source of the later version gets a materiality rule: its suggestion depends on it.
    toml = shipped / "history" / "privacy" / "2020-09-01" / "source" / "policy.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + '\n[materiality]\nmaterial_tags = ["purposes"]\n', encoding="utf-8")
    repo = open_repo(shipped)
    old, new = published_versions(repo, "privacy")
    key = cache.cache_key(old, version_files(repo, old)[0], new, version_files(repo, new)[0])
    assert f"{key}.json" != before.name
    # A rule in policy.toml changes no resolved text, so the ledger's hashes still match and the suggestion is new.
    out = run("--repo", shipped, "log", "privacy").stdout
    assert "is tagged recipients, transfers" not in out
    assert len(cached_files()) == 2


def test_an_edited_archive_is_refused_as_before_whatever_is_cached(run, shipped: Path) -> None:
    run("--repo", shipped, "log", "privacy")
    en = shipped / "history" / "privacy" / "2020-09-01" / "source" / "en.md"
    en.write_text(en.read_text(encoding="utf-8").replace("MailChimp", "MailKimp", 1), encoding="utf-8")
    result = run("--repo", shipped, "log", "privacy", expect=2)
    assert "does not match the ledger for privacy@2020-09-01" in result.stderr


@pytest.mark.parametrize("content", ["", "{not json", '{"format": "addendum-suggestion/1", "key": "other", '
                                                    '"level": "none", "reasons": []}', '[1, 2]'])
def test_a_damaged_cache_file_is_worked_out_again(run, shipped: Path, content: str) -> None:
    expected = run("--repo", shipped, "log", "privacy").stdout
    [path] = cached_files()
    path.write_text(content, encoding="utf-8")
    assert run("--repo", shipped, "log", "privacy").stdout == expected
    assert json.loads(path.read_text(encoding="utf-8"))["key"] == path.stem  # rewritten whole


def test_an_answer_committed_into_the_work_tree_is_never_read(run, shipped: Path) -> None:
    """A commit can add any file to the work tree, a cache file under the name the key gives included: the
    suggestion `log` shows is worked out, not read from there."""
    expected = run("--repo", shipped, "log", "privacy").stdout
    [path] = cached_files()
    planted = json.loads(path.read_text(encoding="utf-8")) | {"level": "editorial", "reasons": ["planted by a commit"]}
    for folder in (shipped / ".addendum" / "cache" / "suggestions", shipped / ".addendum" / "cache"):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / path.name).write_text(json.dumps(planted), encoding="utf-8")
    path.unlink()
    out = run("--repo", shipped, "log", "privacy").stdout
    assert out == expected and "planted by a commit" not in out


def test_a_cache_that_cannot_be_written_only_misses_the_shortcut(run, shipped: Path, user_cache: Path) -> None:
    expected = run("--repo", shipped, "log", "privacy").stdout
    folder = user_cache
    for path in cached_files():
        path.unlink()
    folder.rmdir()
    folder.write_text("a file where the cache folder would be\n", encoding="utf-8")  # fails for root too
    assert run("--repo", shipped, "log", "privacy").stdout == expected
    assert folder.is_file()


def test_the_key_covers_the_classifying_code_and_word_lists() -> None:
    digested = [path.relative_to(cache.PACKAGE).as_posix() for path in cache.classifying_files()]
    assert {path.split("/")[0] for path in digested} == {"compare", "policy"}
    assert {"compare/materiality.py", "compare/vocabulary/en.toml", "policy/resolve.py"} <= set(digested)

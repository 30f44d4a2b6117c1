"""`addendum init` and addendum.toml: a new repository in its first commit, and configuration errors reported all at once."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib
from datetime import date
from pathlib import Path

import pytest

from addendum.config import SCHEMA, parse_settings
from tests_support import MINIMAL_EN, MINIMAL_NL, MINIMAL_POLICY_TOML

STARTER_FILES = [".gitignore", "addendum.toml", "history/.gitkeep", "policies/privacy/en.md", "policies/privacy/policy.toml",
                 "templates/.gitkeep"]
# A commented-out setting in the scaffold addendum.toml: "# key = value", maybe followed by "# example…".
COMMENTED_SETTING = re.compile(r"^# ([a-z_]+ = .+)$")


@pytest.fixture(autouse=True)
def identity(git_at) -> None:
    """Every test here commits as the fixed test editor, whatever the machine's git configuration says."""


def committed_files(root: Path, revision: str = "HEAD") -> list[str]:
    return sorted(subprocess.run(["git", "ls-tree", "-r", "--name-only", revision], cwd=root, capture_output=True,
                                 text=True, check=True).stdout.split())


def test_init_scaffolds_a_working_repository_in_its_first_commit(run, tmp_path: Path) -> None:
    target = tmp_path / "legal"
    out = run("init", target).stdout
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=target, capture_output=True, text=True, check=True).stdout.strip()
    assert out.startswith(
        "created git repository\ncreated addendum.toml\ncreated policies/privacy/ (policy.toml, en.md)\n"
        f"created templates/\ncreated history/\ncreated .gitignore\ncommitted {head[:12]}\nnext:\n  cd {target}\n")
    assert committed_files(target) == STARTER_FILES
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=target, capture_output=True, text=True)
    assert status.stdout == ""  # the work tree and index are exactly the commit
    log = subprocess.run(["git", "log", "--format=%an|%s"], cwd=target, capture_output=True, text=True).stdout
    assert log == "Test Editor|Start a policy repository\n"
    ignored = subprocess.run(["git", "check-ignore", ".addendum/state.db"], cwd=target, capture_output=True, text=True)
    assert ignored.returncode == 0
    policy = target / "policies" / "terms"
    policy.mkdir()
    for name, text in {"policy.toml": MINIMAL_POLICY_TOML, "en.md": MINIMAL_EN, "nl.md": MINIMAL_NL}.items():
        (policy / name).write_text(text)
    assert run("--repo", target, "check").stdout == "privacy: 0 error(s), 0 warning(s)\nterms: 0 error(s), 0 warning(s)\n"


def test_the_printed_next_steps_run_as_they_are(run, tmp_path: Path, monkeypatch) -> None:
    out = run("init", tmp_path / "legal").stdout
    steps = out.split("next:\n", 1)[1].splitlines()
    commands = [shlex.split(line, comments=True) for line in steps]
    assert [c[:2] for c in commands if c] == [["cd", str(tmp_path / "legal")], ["addendum", "check"],
                                              ["addendum", "render"], ["addendum", "commit"], ["addendum", "publish"]]
    assert "# edit policies/privacy/policy.toml: your organisation and sites" in out
    monkeypatch.chdir(commands[0][1])
    results = {}
    for command in commands[1:]:
        if not command:
            continue
        if command[1] == "commit":  # the user's edit, which the comments between the steps ask for
            en = Path("policies/privacy/en.md")
            en.write_text(en.read_text().replace("with any question", "with every question"))
        results[command[1]] = run(*command[1:]).stdout
    assert results["check"] == "privacy: 0 error(s), 0 warning(s)\n"
    assert "Example Ltd, 1 Example Street, 1000 Example Town, is responsible for this policy." in results["render"]
    assert "Write to privacy@example.org with any question about this policy or about example.org." in results["render"]
    assert f"published privacy@{date.today().isoformat()}:" in results["publish"]
    assert run("log", "privacy").stdout.startswith(f"privacy@{date.today().isoformat()}")


def test_init_names_the_starter_policy(run, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = run("init", "--policy", "terms").stdout
    assert "created policies/terms/ (policy.toml, en.md)" in out and "addendum commit terms -m" in out and "\n  cd " not in out
    assert tomllib.loads((tmp_path / "policies/terms/policy.toml").read_text())["title"] == {"en": "Terms of use"}
    assert run("--repo", tmp_path, "check", "--strict").stdout == "terms: 0 error(s), 0 warning(s)\n"
    assert "'Terms!' is not a valid id" in run("init", tmp_path / "other", "--policy", "Terms!", expect=2).stderr
    assert not (tmp_path / "other" / "addendum.toml").exists()


def test_init_leaves_existing_policies_and_commits_only_its_own_files(run, tmp_path: Path, git_at) -> None:
    git_at(tmp_path, "init", "-q")
    (tmp_path / "notes.txt").write_text("staged, not ours\n")
    git_at(tmp_path, "add", "notes.txt")
    target = tmp_path / "legal"
    (target / "policies" / "terms").mkdir(parents=True)
    for name, text in {"policy.toml": MINIMAL_POLICY_TOML, "en.md": MINIMAL_EN, "nl.md": MINIMAL_NL}.items():
        (target / "policies" / "terms" / name).write_text(text)
    (target / ".gitignore").write_text("*.pdf")
    out = run("init", target).stdout
    assert "created git repository" not in out and "policies/privacy" not in out
    assert "created .gitignore (added .addendum/)" in out
    assert out.endswith("next:\n  cd " + str(target) + "\n  addendum check" + " " * 30 + " # the policies already in policies/\n"
                        "  addendum help config" + " " * 24 + " # every setting\n")
    assert committed_files(tmp_path) == ["legal/.gitignore", "legal/addendum.toml", "legal/history/.gitkeep", "legal/templates/.gitkeep"]
    assert (target / ".gitignore").read_text().startswith("*.pdf\n# Local state of addendum")
    assert git_at(tmp_path, "log", "--format=%s") == "Start a policy repository in legal\n"
    assert git_at(tmp_path, "status", "--porcelain") == "A  notes.txt\n?? legal/policies/\n"


def test_init_refuses_an_existing_repository(run, tmp_path: Path) -> None:
    run("init", tmp_path)
    assert "already exists" in run("init", tmp_path, expect=2).stderr


def test_init_refuses_a_starter_folder_that_is_not_a_policy(run, tmp_path: Path) -> None:
    (tmp_path / "policies" / "privacy").mkdir(parents=True)
    (tmp_path / "policies" / "privacy" / "draft.md").write_text("notes")
    err = run("init", tmp_path, expect=2).stderr
    assert err == (f"error: {tmp_path}/policies/privacy exists but holds no policy.toml\n"
                   "  choose another id for the starter policy with --policy ID, or move that folder away\n")
    assert not (tmp_path / "addendum.toml").exists()


def test_init_without_a_git_identity_writes_nothing_and_says_how_to_set_one(run, tmp_path: Path, monkeypatch) -> None:
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    # Without this git would make up an identity from the user and host names, where the system lets it.
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'user.useconfigonly=true'")
    err = run("init", tmp_path, expect=2).stderr
    assert err == ("error: cannot make the first commit: git does not know who you are\n"
                   '  run: git config --global user.name "Your Name" && git config --global user.email you@example.org; '
                   "then run addendum init again\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".git"]
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Editor")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "editor@example.org")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Editor")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "editor@example.org")
    assert "committed " in run("init", tmp_path).stdout
    assert committed_files(tmp_path) == STARTER_FILES


def test_the_scaffold_config_shows_every_key_commented_and_every_shown_value_is_valid(run, tmp_path: Path) -> None:
    run("init", tmp_path)
    text = (tmp_path / "addendum.toml").read_text()
    assert tomllib.loads(text) == {"archive": {}, "evidence": {}, "state": {}, "retention": {}, "notify": {"smtp": {}, "dkim": {}}, "webhooks": {}, "limits": {}}  # nothing is set, nothing claimed
    table, shown = "", {}
    for line in text.splitlines():
        if line.startswith("["):
            table = line.strip("[]")
        elif match := COMMENTED_SETTING.match(line):
            key = tomllib.loads(match[1])
            assert len(key) == 1
            ((leaf, value),) = key.items()
            shown[f"{table}.{leaf}"] = value
    assert list(shown) == [option.key for option in SCHEMA]
    settings = parse_settings(tomllib.loads(re.sub(r"^# ([a-z_]+ = )", r"\1", text, flags=re.MULTILINE)), "addendum.toml")
    assert settings == shown
    examples = {o.key for o in SCHEMA if shown[o.key] != o.default}
    assert examples == {"archive.base_url", "notify.from_address", "notify.from_name", "notify.reply_to", "notify.unsubscribe_url",
                        "notify.unsubscribe_mailto", "notify.list_id", "notify.smtp.host", "notify.smtp.port", "notify.smtp.user",
                        "notify.smtp.password_file"}
    for option in SCHEMA:  # each key under its doc (in its own table: two tables have a key_file), and an example marked as one
        table, leaf = option.key.rsplit(".", 1)
        section = "\n\n" + text.split(f"\n[{table}]\n", 1)[1].split("\n[", 1)[0]
        block = section.split(f"\n# {leaf} = ", 1)[0].rsplit("\n\n", 1)[1]
        assert " ".join(line.removeprefix("# ") for line in block.splitlines() if not line.startswith("[")
                        and not line.startswith("# One of:")) == option.doc
        line = section.split(f"\n# {leaf} = ", 1)[1].split("\n", 1)[0]
        assert line.endswith("# example" if option.default == "" else f"# example; default {json.dumps(option.default)}") == (option.key in examples)
    assert "# One of: starttls, tls, none.\n# security = \"starttls\"\n" in text


def test_every_config_error_is_reported_at_once(run, make_repo) -> None:
    root = make_repo()
    (root / "addendum.toml").write_text('[notify.smtp]\nport = "abc"\nsecurity = "ssl"\n[archive]\nbase = 1\n')
    err = run("--repo", root, "check", expect=2).stderr
    assert "addendum.toml: config value 'notify.smtp.port': expected int, got 'abc'" in err
    assert "addendum.toml: config value 'notify.smtp.security': expected one of starttls, tls, none, got 'ssl'" in err
    assert "addendum.toml: unknown key 'archive.base'" in err


def test_the_repository_is_found_by_walking_up(run, make_repo, monkeypatch) -> None:
    root = make_repo()
    monkeypatch.chdir(root / "policies" / "terms")
    assert "terms: 0 error(s)" in run("check").stdout

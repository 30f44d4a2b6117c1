"""`addendum init` and addendum.toml: a new repository, and configuration errors reported all at once."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests_support import MINIMAL_EN, MINIMAL_NL, MINIMAL_POLICY_TOML


def test_init_scaffolds_a_working_repository(run, tmp_path: Path) -> None:
    target = tmp_path / "legal"
    out = run("init", target).stdout
    assert "created git repository" in out and "created addendum.toml" in out
    for folder in ("policies", "templates", "history"):
        assert (target / folder).is_dir()
    assert ".addendum/" in (target / ".gitignore").read_text()
    assert (target / ".git").is_dir()
    ignored = subprocess.run(["git", "check-ignore", ".addendum/state.db"], cwd=target, capture_output=True, text=True)
    assert ignored.returncode == 0
    policy = target / "policies" / "terms"
    policy.mkdir()
    for name, text in {"policy.toml": MINIMAL_POLICY_TOML, "en.md": MINIMAL_EN, "nl.md": MINIMAL_NL}.items():
        (policy / name).write_text(text)
    assert run("--repo", target, "check").stdout == "terms: 0 error(s), 0 warning(s)\n"


def test_init_refuses_an_existing_repository(run, tmp_path: Path) -> None:
    run("init", tmp_path)
    assert "already exists" in run("init", tmp_path, expect=2).stderr


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

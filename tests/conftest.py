"""Shared fixtures: a CLI runner that shows what went wrong, and copies of the shipped policy repository."""

from __future__ import annotations

import shutil
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from addendum.cli import cli
from tests_support import MINIMAL_EN, MINIMAL_NL, MINIMAL_POLICY_TOML

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run() -> Callable[..., Result]:
    """Invoke the CLI; on an unexpected exit code, the assertion shows stdout, stderr and any traceback."""

    def invoke(*args: str | Path, expect: int | None = 0, input: str | None = None) -> Result:
        result = CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=True)
        if expect is not None and result.exit_code != expect:
            tb = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info and result.exception else ""
            raise AssertionError(f"exit {result.exit_code} != {expect}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}\n{tb}")
        return result

    return invoke


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """A copy of this project's policy repository (addendum.toml, policies/, history/), without git."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(PROJECT / "addendum.toml", root / "addendum.toml")
    for folder in ("policies", "history"):
        if (PROJECT / folder).exists():
            shutil.copytree(PROJECT / folder, root / folder)
    return root


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """A policy repository in tmp_path holding one policy `terms`; `files` replaces or adds its files."""

    def build(files: dict[str, str] | None = None, policy_id: str = "terms") -> Path:
        root = tmp_path / "repo"
        (root / "policies" / policy_id).mkdir(parents=True, exist_ok=True)
        (root / "addendum.toml").write_text("", encoding="utf-8")
        defaults = {"policy.toml": MINIMAL_POLICY_TOML, "en.md": MINIMAL_EN, "nl.md": MINIMAL_NL}
        for name, text in {**defaults, **(files or {})}.items():
            path = root / "policies" / policy_id / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if text is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(text, encoding="utf-8")
        return root

    return build

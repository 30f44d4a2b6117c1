"""Shared fixtures: a CLI runner that shows what went wrong, and copies of the shipped policy repository."""

from __future__ import annotations

import shutil
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from addendum.cli import cli
from postgres_server import PostgresServer
from smtp_server import SmtpServer
from tests_support import GIT_IDENTITY, MINIMAL_EN, MINIMAL_NL, MINIMAL_POLICY_TOML, git_in, invoke_ok, publish_terms, set_config

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



@pytest.fixture(scope="session")
def shipped_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this project's policy repository, its shipped history archived once by `addendum archive`.
    Read it, never change it: tests that change files take `archived_copy`."""
    root = tmp_path_factory.mktemp("shipped-archive") / "repo"
    root.mkdir()
    shutil.copy(PROJECT / "addendum.toml", root / "addendum.toml")
    for folder in ("policies", "history"):
        shutil.copytree(PROJECT / folder, root / folder)
    invoke_ok("--repo", root, "archive")
    return root


@pytest.fixture
def archived_copy(shipped_archive: Path, tmp_path: Path) -> Path:
    """A private copy of `shipped_archive`, to tamper with."""
    root = tmp_path / "archived"
    shutil.copytree(shipped_archive, root)
    return root



@pytest.fixture
def published_terms(make_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Callable[[int], Path]:
    """A git repository with policy `terms` published `count` times by the real `addendum publish`
    (version n takes effect on 2024-0n-01; every version after the first rewords §scope in both languages)."""
    for name, value in GIT_IDENTITY.items():
        monkeypatch.setenv(name, value)

    def build(count: int = 2) -> Path:
        root = make_repo()
        git_in(root, "init", "-q")
        git_in(root, "add", "-A")
        git_in(root, "commit", "-q", "-m", "Terms")
        for n in range(1, count + 1):
            publish_terms(root, n)
        return root

    return build



@pytest.fixture
def git_at(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """`git_at(root, *args, date="2019-05-01")`: run git in `root` as a fixed editor, optionally on a fixed date.
    The same identity is set for the library's own git calls; user and system git config are not read."""
    import os
    import subprocess

    identity = {**GIT_IDENTITY, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    for name, value in identity.items():
        monkeypatch.setenv(name, value)

    def run_git(root: Path, *args: str, date: str | None = None) -> str:
        env = {**os.environ, **identity, "GIT_CONFIG_PARAMETERS": "'init.defaultbranch=main'"}
        if date is not None:
            env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"{date}T12:00:00+02:00"
        done = subprocess.run(["git", *args], cwd=root, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
        return done.stdout

    return run_git


NOTIFY_VERSIONS = ("privacy@2018-05-19", "privacy@2020-09-01", "privacy@2020-10-01")



@pytest.fixture(scope="session")
def notify_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped policy in a git repository, published three times by the real `addendum publish`: the seed,
    a material revision (Privacy Shield replaced; a Dutch sentence reworded) and an editorial typo fix."""
    root = tmp_path_factory.mktemp("notify-template") / "repo"
    root.mkdir()
    shutil.copy(PROJECT / "addendum.toml", root / "addendum.toml")
    # The policy as first published (the working tree already holds the later example revision).
    shutil.copytree(PROJECT / "history" / "privacy" / "2018-05-19" / "source", root / "policies" / "privacy")
    set_config(root, {"notify": {"retry_delay": 0.0}})  # retries are due at once in tests
    # Every site gives its contact values, so that no notice links to a page showing "[to be provided: …]" (refused).
    toml = root / "policies" / "privacy" / "policy.toml"
    text = toml.read_text(encoding="utf-8")
    for site, name in (("cavallo", "Cavallo"), ("equihealth", "Equihealth")):
        text = text.replace(f'[sites.{site}]\nname = "{name}"\n',
                            f'[sites.{site}]\nname = "{name}"\ncontact = {{ name = "{name} team", address = "Stalstraat 1, 3630 Leut", '
                            f'email = "info@{site}.example" }}\n')
    toml.write_text("\n".join(line for line in text.splitlines() if not line.startswith("pending = ")) + "\n", encoding="utf-8")
    git_in(root, "init", "-q", "-b", "main")
    git_in(root, "add", "-A")
    git_in(root, "commit", "-q", "-m", "Policy")
    invoke_ok("--repo", root, "publish", "privacy", "--effective", "2018-05-19", "--published", "2018-05-19",
               "--summary", "First version.", "--summary-nl", "Eerste versie.", "--material")
    en, nl = root / "policies/privacy/en.md", root / "policies/privacy/nl.md"
    en.write_text(en.read_text(encoding="utf-8").replace(
        "is certified in the EU-U.S. Privacy Shield Framework",
        "transfers it to the United States under the European Commission's standard contractual clauses"), encoding="utf-8")
    text = nl.read_text(encoding="utf-8")
    first_line = next(line for line in text.splitlines()[1:] if line.strip())
    nl.write_text(text.replace(first_line, first_line + " Wij delen uw gegevens nooit zonder reden.", 1), encoding="utf-8")
    git_in(root, "commit", "-q", "-am", "Replace the Privacy Shield")
    invoke_ok("--repo", root, "publish", "privacy", "--effective", "2020-09-01", "--published", "2020-08-01",
               "--summary", "MailChimp now relies on standard contractual clauses instead of the invalidated Privacy Shield.",
               "--summary-nl", "MailChimp steunt nu op standaardcontractbepalingen in plaats van het ongeldige Privacy Shield.",
               "--material", "--allow-stale")  # the Dutch sharing sentence changes alone, on purpose
    en.write_text(en.read_text(encoding="utf-8").replace("no longer which to receive", "no longer wish to receive"),
                  encoding="utf-8")
    git_in(root, "commit", "-q", "-am", "Fix a typo")
    invoke_ok("--repo", root, "publish", "privacy", "--effective", "2020-10-01", "--published", "2020-10-01",
               "--summary", "A typo fixed.", "--editorial", "--reason", "Only a typo: 'which' for 'wish'.")
    invoke_ok("--repo", root, "archive")  # notices link to the archive: notify refuses while a linked page is missing
    git_in(root, "add", "-A")
    git_in(root, "commit", "-q", "-m", "Archive")
    return root


@pytest.fixture
def notify_repo(notify_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of `notify_template`; the state store and keys come from its own .addendum/."""
    root = tmp_path / "notify-repo"
    shutil.copytree(notify_template, root, symlinks=True)
    for name in ("ADDENDUM_DATABASE_URL", "ADDENDUM_NOTIFY_KEYS", "ADDENDUM_SMTP_PASSWORD", "ADDENDUM_SMTP_USER"):
        monkeypatch.delenv(name, raising=False)
    return root


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1, which the repository's notify settings point at."""
    server = SmtpServer().start()
    monkeypatch.setenv("ADDENDUM_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ADDENDUM_SMTP_PORT", str(server.port))
    monkeypatch.setenv("ADDENDUM_SMTP_SECURITY", "none")
    monkeypatch.setenv("ADDENDUM_SMTP_TIMEOUT", "10")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL server (initdb into a temporary folder), listening only on a Unix socket in it."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """The SQLAlchemy URL of a new, empty database on the private PostgreSQL server."""
    import re

    return postgres_server.database("t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40] + f"_{id(request) % 100000}")

"""Symbolic links in a policy repository: followed while they stay inside it, refused by name when they lead out."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from addendum.errors import UsageError
from addendum.files import OutsideRepository, inside_repository, repository_files

SECRET = "TOP SECRET text that lives outside the repository"
HINT = "replace the link with the file itself"
OVERRIDE = "policies/privacy/sites/cavallo/en.md"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the repository (not in it) holding a secret Markdown file and a folder of them."""
    folder = tmp_path / "outside"
    (folder / "cavallo").mkdir(parents=True)
    override = f"## Sharing {{#sharing}}\n\n{SECRET}\n"
    (folder / "secret.md").write_text(override, encoding="utf-8")
    (folder / "cavallo" / "en.md").write_text(override, encoding="utf-8")
    (folder / "secret.toml").write_text(f'title = "{SECRET}"\n', encoding="utf-8")
    return folder


def link(path: Path, target: Path | str) -> None:
    """Replace `path` (a file or folder) by a symbolic link to `target`, relative when `target` is given as text."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


def assert_refused(result, file: str, target: Path | str, exit_code: int = 2) -> None:  # noqa: ANN001 - a click Result
    """The command failed naming the link and where it leads, and showed nothing of what lies there."""
    assert result.exit_code == exit_code, result.output
    shown = result.stdout + result.stderr
    assert f"{file}: a symbolic link to {target}, outside the repository" in shown or \
        f"{file} is a symbolic link to {target}, outside the repository" in shown, shown
    assert HINT in shown
    assert SECRET not in shown


def render_cavallo(run, root: Path, *extra: str | Path):  # noqa: ANN001, ANN201 - the run fixture and its Result
    return run("--repo", root, "render", "privacy", "--site", "cavallo", "--lang", "en", *extra, expect=None)


def test_a_policy_file_linked_outside_is_refused_and_nothing_of_it_is_written(run, shipped: Path, outside: Path,
                                                                                tmp_path: Path) -> None:
    link(shipped / OVERRIDE, outside / "secret.md")
    page = tmp_path / "page.html"
    result = render_cavallo(run, shipped, "-o", page)
    assert_refused(result, OVERRIDE, outside / "secret.md")
    assert not page.exists()


def test_check_reports_the_link_with_its_target(run, shipped: Path, outside: Path) -> None:
    link(shipped / OVERRIDE, os.path.relpath(outside / "secret.md", (shipped / OVERRIDE).parent))
    result = run("--repo", shipped, "check", "privacy", expect=None)
    assert_refused(result, OVERRIDE, outside / "secret.md", exit_code=1)  # a finding of the check, like any other error


def test_a_folder_linked_outside_is_refused(run, shipped: Path, outside: Path) -> None:
    folder = "policies/privacy/sites/cavallo"
    link(shipped / folder, outside / "cavallo")
    assert_refused(render_cavallo(run, shipped), folder, outside / "cavallo")


def test_a_chain_of_links_that_ends_outside_is_refused(run, shipped: Path, outside: Path) -> None:
    link(shipped / "shared" / "last.md", outside / "secret.md")
    link(shipped / "shared" / "first.md", "last.md")
    link(shipped / OVERRIDE, "../../../../shared/first.md")
    assert_refused(render_cavallo(run, shipped), OVERRIDE, outside / "secret.md")


def test_every_link_leading_out_is_reported_at_once(run, shipped: Path, outside: Path) -> None:
    link(shipped / OVERRIDE, outside / "secret.md")
    link(shipped / "policies/privacy/nl.md", outside / "secret.md")
    result = run("--repo", shipped, "render", "privacy", expect=2)
    assert f"policies/privacy/nl.md: a symbolic link to {outside / 'secret.md'}" in result.stderr
    assert f"{OVERRIDE}: a symbolic link to {outside / 'secret.md'}" in result.stderr


def test_links_that_stay_inside_the_repository_are_followed(run, shipped: Path) -> None:
    shared = shipped / "shared" / "cavallo-en.md"
    shared.parent.mkdir()
    shutil.move(shipped / OVERRIDE, shared)
    link(shipped / "shared" / "middle.md", "cavallo-en.md")
    link(shipped / OVERRIDE, "../../../../shared/middle.md")
    link(shipped / "policies/privacy/sites/equihealth", shipped / "shared" / "equihealth")
    shutil.copytree(Path(__file__).resolve().parents[1] / "policies/privacy/sites/equihealth", shipped / "shared" / "equihealth")
    html = render_cavallo(run, shipped).stdout
    assert "shared with the processors within an event" in html
    run("--repo", shipped, "check", "privacy")


def test_a_circle_of_links_is_refused(run, shipped: Path) -> None:
    link(shipped / "policies/privacy/loop.md", "loop.md")
    result = run("--repo", shipped, "render", "privacy", expect=2)
    assert "policies/privacy/loop.md: a symbolic link in a circle of links, which leads nowhere" in result.stderr


def test_a_template_linked_to_the_password_file_is_refused(run, shipped: Path) -> None:
    link(shipped / "templates" / "policy.html", "/etc/passwd")
    result = render_cavallo(run, shipped)
    assert result.exit_code == 2, result.output
    assert "templates/policy.html is a symbolic link to /etc/passwd, outside the repository" in result.stderr
    assert "root:" not in result.output


def test_a_translation_catalogue_linked_outside_is_refused(run, shipped: Path, outside: Path) -> None:
    (outside / "secret.po").write_text(f'msgid "Last changed on %(date)s"\nmsgstr "{SECRET}"\n', encoding="utf-8")
    link(shipped / "locale" / "nl" / "LC_MESSAGES" / "addendum.po", outside / "secret.po")
    result = run("--repo", shipped, "render", "privacy", "--lang", "nl", expect=2)
    assert f"addendum.po: a symbolic link to {outside / 'secret.po'}, outside the repository" in result.stderr
    assert SECRET not in result.output


def test_a_templates_folder_linked_outside_is_refused(run, shipped: Path, outside: Path) -> None:
    (outside / "policy.html").write_text(SECRET, encoding="utf-8")
    link(shipped / "templates", outside)
    assert_refused(render_cavallo(run, shipped), "templates/policy.html", outside / "policy.html")


def test_the_configuration_linked_outside_is_refused(run, shipped: Path, outside: Path) -> None:
    (outside / "addendum.toml").write_text(f'[notify]\nfrom_name = "{SECRET}"\n', encoding="utf-8")
    link(shipped / "addendum.toml", outside / "addendum.toml")
    assert_refused(run("--repo", shipped, "check", expect=None), "addendum.toml", outside / "addendum.toml")


def test_an_archived_source_linked_outside_is_refused(run, shipped: Path, outside: Path) -> None:
    source = "history/privacy/2018-05-19/source"
    shutil.copytree(shipped / source, outside / "source")
    (outside / "source" / "en.md").write_text((outside / "source" / "en.md").read_text(encoding="utf-8") + SECRET, encoding="utf-8")
    link(shipped / source, outside / "source")
    result = run("--repo", shipped, "show", "privacy", "--version", "privacy@2018-05-19", expect=None)
    assert_refused(result, source, outside / "source")


def test_a_ledger_linked_outside_is_refused(run, shipped: Path, outside: Path) -> None:
    ledger = "history/privacy/ledger.toml"
    shutil.copy(shipped / ledger, outside / "ledger.toml")
    link(shipped / ledger, outside / "ledger.toml")
    assert_refused(run("--repo", shipped, "log", "privacy", expect=None), ledger, outside / "ledger.toml")


def test_inside_repository_returns_the_real_location(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "a").mkdir(parents=True)
    (root / "a" / "file.md").write_text("x", encoding="utf-8")
    os.symlink("a", root / "b")
    assert inside_repository(root, root / "b" / "file.md") == (root / "a" / "file.md").resolve()
    assert inside_repository(root, Path("b/file.md")) == (root / "a" / "file.md").resolve()
    os.symlink(tmp_path, root / "up")
    with pytest.raises(UsageError, match="up is a symbolic link to"):
        inside_repository(root, root / "up")


def test_walking_a_folder_lists_linked_files_once_and_refuses_what_leads_out(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "repo"
    (root / "policy" / "real").mkdir(parents=True)
    (root / "policy" / "real" / "en.md").write_text("x", encoding="utf-8")
    os.symlink("real", root / "policy" / "again")  # the same folder under a second name
    os.symlink("..", root / "policy" / "real" / "up")  # a circle through the parent
    assert [name for name, _ in repository_files(root, root / "policy")] == ["again/en.md"]
    os.symlink(outside / "secret.md", root / "policy" / "secret.md")
    os.symlink(outside / "secret.toml", root / "policy" / "ignored.toml")
    refused: list[OutsideRepository] = []
    names = [name for name, _ in repository_files(root, root / "policy", lambda name: name.endswith(".md"), refused)]
    assert names == ["again/en.md"]
    assert [problem.file for problem in refused] == ["policy/secret.md"]

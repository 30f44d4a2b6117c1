"""`addendum help`: the format reference is docs/format.md itself, shipped inside the package; the config reference is the schema."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from click.testing import CliRunner

from addendum.cli.help import help_command
from addendum.config import SCHEMA
from conftest import PROJECT

FORMAT_MD = (PROJECT / "docs" / "format.md").read_text(encoding="utf-8")


def help_output(*args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(help_command, list(args))
    assert result.exit_code == expect, result.output
    return result.output


def test_help_format_prints_docs_format_md_as_it_is() -> None:
    assert help_output("format") == FORMAT_MD


def test_help_config_lists_every_key_with_its_type_default_and_meaning() -> None:
    text = help_output("config")
    for option in SCHEMA:
        choices = f", one of {' | '.join(option.choices)}" if option.choices else ""
        table = f", or a table of language = {option.type.__name__}" if option.per_language else ""
        entry = f"\n{option.key} ({option.type.__name__}{choices}{table}, default {json.dumps(option.default)})\n    {option.doc}\n"
        assert entry in text, option.key
    assert "\nnotify.smtp.security (str, one of starttls | tls | none, default \"starttls\")\n    Transport security.\n" in text


def test_help_without_a_topic_lists_the_topics_and_an_unknown_one_is_refused() -> None:
    assert help_output() == (
        "addendum help TOPIC prints a reference. Topics:\n"
        "  format  the policy format: policies/<id>/, policy.toml, the Markdown files, site overrides\n"
        "  config  every addendum.toml key, with its type, default and meaning\n"
        "\n"
        "Commands: `addendum --help` lists them, `addendum COMMAND --help` explains one.\n")
    assert "'formats' is not one of 'format', 'config'" in help_output("formats", expect=2)


def test_the_readme_documents_help() -> None:
    assert "`addendum help [TOPIC]`" in (PROJECT / "README.md").read_text(encoding="utf-8")


def test_the_wheel_ships_docs_format_md_and_help_reads_it_from_the_installed_package(tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path / "dist")],
                           cwd=PROJECT, capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("addendum-*.whl")
    installed = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("addendum/docs/format.md").decode("utf-8") == FORMAT_MD
        archive.extractall(installed)
    # A fresh interpreter that imports addendum from the unpacked wheel, far from this checkout's docs/.
    script = ("import addendum, sys\n"
              "from addendum.cli.help import help_command\n"
              "print(addendum.__file__, file=sys.stderr)\n"
              "help_command(['format'])\n")
    shown = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"},
                           capture_output=True, text=True, timeout=120, check=False)
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr.strip() == str(installed / "addendum" / "__init__.py")
    assert shown.stdout == FORMAT_MD

"""The README keeps in step with the product: every command, every option's help, every configuration key."""

from __future__ import annotations

import click
import pytest

from addendum.cli import cli
from addendum.config import SCHEMA
from conftest import PROJECT

README = (PROJECT / "README.md").read_text(encoding="utf-8")


def commands() -> list[tuple[str, click.Command]]:
    found = []
    for name, command in cli.commands.items():
        found.append((name, command))
        if isinstance(command, click.Group):
            found.extend((f"{name} {sub}", c) for sub, c in command.commands.items())
    return found


@pytest.mark.parametrize(("name", "command"), commands(), ids=[n for n, _ in commands()])
def test_every_command_is_documented_and_has_help(name: str, command: click.Command) -> None:
    assert f"addendum {name.split()[0]}" in README
    assert command.help and len(command.help.split()) >= 5, f"addendum {name} needs a help text that teaches"
    undocumented = [p.name for p in command.params if isinstance(p, click.Option) and not p.help and p.name != "help"]
    assert not undocumented, f"addendum {name}: options without help: {undocumented}"


@pytest.mark.parametrize("key", [option.key for option in SCHEMA])
def test_every_configuration_key_is_in_the_readme(key: str) -> None:
    leaf = key.rsplit(".", 1)[-1]
    assert f"`{key}`" in README or f".{leaf}`" in README or f"`.{leaf}" in README, key

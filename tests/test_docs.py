"""The README keeps in step with the product: every command, every option's help, every configuration key."""

from __future__ import annotations

import click
import pytest

from addendum.cli import COMMANDS, Entry, cli
from addendum.config import SCHEMA
from conftest import PROJECT

README = (PROJECT / "README.md").read_text(encoding="utf-8")


def commands() -> list[tuple[str, click.Command]]:
    found = []
    context = click.Context(cli)
    for name in cli.list_commands(context):
        command = cli.get_command(context, name)
        assert command is not None, name
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


@pytest.mark.parametrize("entry", COMMANDS, ids=[e.name for e in COMMANDS])
def test_the_registry_summary_is_the_start_of_the_commands_help(entry: Entry) -> None:
    """`addendum --help` lists commands from the registry without importing them: its line must not drift."""
    command = cli.get_command(click.Context(cli), entry.name)
    assert command is not None and command.name == entry.name
    assert " ".join((command.help or "").split()).startswith(entry.summary), (
        f"cli/__init__.py COMMANDS: the summary of {entry.name!r} is not how its help begins")


@pytest.mark.parametrize("key", [option.key for option in SCHEMA])
def test_every_configuration_key_is_in_the_readme(key: str) -> None:
    leaf = key.rsplit(".", 1)[-1]
    assert f"`{key}`" in README or f".{leaf}`" in README or f"`.{leaf}" in README, key

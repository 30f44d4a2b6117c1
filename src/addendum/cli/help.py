"""`addendum help`: the references that ship with the package — the policy format and every setting."""

from __future__ import annotations

import click

from addendum.operations.reference import TOPICS, reference


@click.command("help")
@click.argument("topic", type=click.Choice(list(TOPICS)), required=False, metavar="[TOPIC]")
def help_command(topic: str | None) -> None:
    """Print a reference: the policy format, or every setting.

    TOPIC `format` is the policy format (docs/format.md, shipped with addendum): a policy's folder,
    policy.toml, the Markdown files and their section ids, site overrides. TOPIC `config` lists every key
    addendum.toml accepts, with its type, default and meaning. Without TOPIC, lists the topics.

    \b
    Examples:
      addendum help format
      addendum help config
    """
    click.echo(reference(topic), nl=False)

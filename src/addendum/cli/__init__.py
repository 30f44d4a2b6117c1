"""The `addendum` command: registers the commands, each of which lives in its own module."""

from __future__ import annotations

from pathlib import Path

import click

from .. import __version__
from .check import check_command
from .common import AddendumGroup, State
from .init import init_command
from .render import render_command


@click.group(cls=AddendumGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--repo", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The policy repository (default: the nearest folder with an addendum.toml).")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
@click.version_option(__version__, prog_name="addendum")
@click.pass_context
def cli(ctx: click.Context, repo: Path | None, debug: bool) -> None:
    """Policy documents under version control.

    \b
    A day with addendum:
      addendum check privacy                     find every problem in the policy
      addendum render privacy --site S --lang L  the text a reader of site S sees
    """
    ctx.obj = State(repo_path=repo, debug=debug)


for command in (init_command, check_command, render_command):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="addendum")

"""The `addendum` command: registers the commands, each of which lives in its own module."""

from __future__ import annotations

from pathlib import Path

import click

from addendum import __version__
from addendum.cli.archive import archive_command
from addendum.cli.changelog import changelog_command
from addendum.cli.check import check_command
from addendum.cli.commit import commit_command
from addendum.cli.common import AddendumGroup, State
from addendum.cli.diff import diff_command
from addendum.cli.import_history import import_history_command
from addendum.cli.init import init_command
from addendum.cli.log import log_command
from addendum.cli.notices import notices_command
from addendum.cli.notify import notify_command
from addendum.cli.publish import publish_command
from addendum.cli.redline import redline_command
from addendum.cli.render import render_command
from addendum.cli.show import show_command
from addendum.cli.status import status_command
from addendum.cli.subscribers import subscribers_command
from addendum.cli.verify import verify_command


@click.group(cls=AddendumGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--repo", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The policy repository (default: the nearest folder with an addendum.toml).")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
@click.version_option(__version__, prog_name="addendum")
@click.pass_context
def cli(ctx: click.Context, repo: Path | None, debug: bool) -> None:
    """Policy documents under version control: changelogs, dated redlines, archives and change notices.

    \b
    A day with addendum:
      addendum check privacy                          every problem, with file:line and a fix
      addendum diff privacy                           what changed since the last published version
      addendum commit privacy -m "…"                  commit only that policy, after the check
      addendum publish privacy --effective DATE --material --summary "…"
      addendum redline privacy FROM TO --site S --lang L --format pdf -o r.pdf
      addendum archive && addendum verify             every version as HTML, PDF/A and JSON; integrity
      addendum notify privacy VERSION                 the change notice, once per subscriber

    Run `addendum COMMAND --help` for the details and examples of each command.
    """
    ctx.obj = State(repo_path=repo, debug=debug)


for command in (init_command, check_command, render_command, commit_command, publish_command, log_command, show_command,
                import_history_command, status_command, changelog_command,
                subscribers_command, notify_command, notices_command, diff_command, redline_command,
                archive_command, verify_command):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="addendum")

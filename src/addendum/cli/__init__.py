"""The `addendum` command: a registry of the commands, each imported only when it runs (so start-up stays fast)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import click

from addendum import __version__
from addendum.cli.common import AddendumGroup, State


@dataclass(frozen=True)
class Entry:
    """A command as the root group knows it before importing it: where it lives and its line in `addendum --help`."""

    name: str
    module: str
    attribute: str
    summary: str  # the beginning of the command's own help text (a test keeps them in step)


COMMANDS: tuple[Entry, ...] = (
    Entry("init", "addendum.cli.init", "init_command", "Create a policy repository in DIRECTORY (default: here)."),
    Entry("check", "addendum.cli.check", "check_command", "Check policies for problems (all policies when none is named)."),
    Entry("render", "addendum.cli.render", "render_command", "Render a policy as one site's readers see it in one language."),
    Entry("commit", "addendum.cli.commit", "commit_command", "Commit the changes to one policy, and nothing else."),
    Entry("publish", "addendum.cli.publish", "publish_command", "Publish the committed policy as a version, e.g. privacy@2018-05-19."),
    Entry("log", "addendum.cli.log", "log_command", "List a policy's published versions, newest first, then its unpublished changes."),
    Entry("show", "addendum.cli.show", "show_command", "Print a policy as readers of one site in one language saw it."),
    Entry("import-history", "addendum.cli.import_history", "import_history_command",
          "Import the history of a policy kept as one Markdown file in a git repository."),
    Entry("export-document", "addendum.cli.export_document", "export_document_command",
          "Export one language's source of a policy as a Word document to edit and import back."),
    Entry("import-document", "addendum.cli.import_document", "import_document_command",
          "Import an edited copy of `addendum export-document` back into the policy's Markdown."),
    Entry("status", "addendum.cli.status", "status_command", "Show each section's state in each language, and unpublished changes."),
    Entry("changelog", "addendum.cli.changelog", "changelog_command", "Print the changelog of POLICY"),
    Entry("subscribers", "addendum.cli.subscribers", "subscribers_command", "Manage who receives change notices."),
    Entry("acceptances", "addendum.cli.acceptances", "acceptances_command",
          "Record which version of a policy each user accepted, and who must accept again."),
    Entry("notify", "addendum.cli.notify", "notify_command", "E-mail the change notice of a published VERSION"),
    Entry("notices", "addendum.cli.notices", "notices_command", "Show the record of a version's notices"),
    Entry("bounces", "addendum.cli.bounces", "bounces_command", "Record bounces and complaints against the notices they are about."),
    Entry("webhooks", "addendum.cli.webhooks", "webhooks_command",
          "Send signed events to the company's own systems: a version published, a version taking effect, a notice run finished"),
    Entry("tick", "addendum.cli.tick", "tick_command", "Emit the webhook events that are due and deliver what is due, for cron or a systemd timer."),
    Entry("evidence", "addendum.cli.evidence", "evidence_command", "Show one person's evidence dossier"),
    Entry("retention", "addendum.cli.retention", "retention_command", "Purge records kept past their retention period."),
    Entry("diff", "addendum.cli.diff", "diff_command", "Show what changed in POLICY between FROM and TO."),
    Entry("redline", "addendum.cli.redline", "redline_command", "Write the redline of POLICY from FROM to TO"),
    Entry("archive", "addendum.cli.archive", "archive_command", "Archive every published version not archived yet"),
    Entry("verify", "addendum.cli.verify", "verify_command", "Check the archive (all policies when none is named)."),
    Entry("serve", "addendum.cli.serve", "serve_command", "Serve the editor's workspace and the public endpoints over HTTP, until interrupted."),
    Entry("help", "addendum.cli.help", "help_command", "Print a reference: the policy format, or every setting."),
)
BY_NAME = {entry.name: entry for entry in COMMANDS}


class LazyGroup(AddendumGroup):
    """Lists commands from the registry and imports a command's module only when that command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [entry.name for entry in COMMANDS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = BY_NAME.get(cmd_name)
        if entry is None:
            return None
        command = getattr(importlib.import_module(entry.module), entry.attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{entry.module}.{entry.attribute} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(entry.name) for entry in COMMANDS)
        rows = [(entry.name, _shortened(entry.summary, limit)) for entry in COMMANDS]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _shortened(text: str, limit: int) -> str:
    """`text` cut at a word so that it fits in `limit` characters, as click shortens a command's help."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 3, 0)].rsplit(" ", 1)[0].rstrip(" ,:;") + "..."


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
      addendum redline privacy FROM TO --format pdf -o r.pdf
      addendum archive && addendum verify             every version as HTML, PDF/A and JSON; integrity
      addendum notify privacy VERSION                 the change notice, once per subscriber

    Run `addendum COMMAND --help` for the details and examples of each command.
    """
    ctx.obj = State(repo_path=repo, debug=debug)


def main() -> None:
    cli(prog_name="addendum")

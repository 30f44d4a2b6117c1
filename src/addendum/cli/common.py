"""What every command shares: the repository option, and the one place errors become messages and exit codes."""

from __future__ import annotations

import functools
import io
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click

from addendum.config import Repo, open_repo
from addendum.errors import AddendumError, PolicyFormatError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    repo_path: Path | None = None
    debug: bool = False
    _repo: Repo | None = None

    @property
    def repo(self) -> Repo:
        if self._repo is None:
            self._repo = open_repo(self.repo_path)
        return self._repo


class AddendumGroup(click.Group):
    """The one exit path: a command returns its exit code (None: 0) and every AddendumError becomes `error: …` on
    stderr and its exit code; a traceback only with --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            code = super().invoke(ctx)
        except AddendumError as exc:
            state = ctx.find_object(State)
            if state is not None and state.debug:
                raise
            click.echo(exc.format(), err=True)
            if isinstance(exc, PolicyFormatError):
                click.echo(f"{len([p for p in exc.problems if p.severity == 'error'])} error(s); "
                           "run `addendum check POLICY` for every problem", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        if isinstance(code, int) and not isinstance(code, bool) and ctx.parent is None:
            ctx.exit(code)
        return code


pass_state = click.make_pass_decorator(State, ensure=True)


def with_repo(func: F) -> F:
    """Pass the opened repository as the first argument."""

    @pass_state
    @functools.wraps(func)
    def wrapper(state: State, *args: Any, **kwargs: Any) -> Any:
        return func(state.repo, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def policy_argument(func: F) -> F:
    return click.argument("policy_id", metavar="POLICY")(func)


def site_option(required: bool = False) -> Callable[[F], F]:
    return click.option("--site", "site_id", metavar="SITE", required=required,
                        help="Site id, as declared in policy.toml (default: the policy's default site).")


def lang_option(required: bool = False) -> Callable[[F], F]:
    return click.option("--lang", "language", metavar="LANG", required=required,
                        help="Language code, e.g. en or nl (default: the policy's default language).")


def output_option(func: F) -> F:
    return click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
                        help="Write to this file (atomically) instead of standard output.")(func)


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def database_option(func: F) -> F:
    return click.option("--database", "database_url", metavar="URL", envvar="ADDENDUM_DATABASE_URL", show_envvar=True,
                        help="State store: a SQLite path or a SQLAlchemy URL such as postgresql+psycopg://… "
                             "(default: state.database, .addendum/state.db).")(func)


class StderrProgress:
    """Progress on stderr, phase by phase: a bar on a terminal; elsewhere (CI logs, pipes) one line at every tenth."""

    def __init__(self, label: str) -> None:
        self._label, self._total, self._done, self._tenth = label, 0, 0, -1
        self._bar: Any = None

    def start(self, label: str, total: int) -> None:
        self.finish()
        self._label, self._total, self._done, self._tenth = label, total, 0, -1

    def advance(self, count: int = 1) -> None:
        self._show(self._done + count)

    def _show(self, done: int) -> None:
        self._done = done
        if not self._total:
            return
        if sys.stderr.isatty():
            if self._bar is None:
                self._bar = click.progressbar(length=self._total, label=self._label, file=sys.stderr, show_pos=True)
                self._bar.__enter__()
            self._bar.update(done - self._bar.pos)
            return
        tenth = done * 10 // self._total
        if tenth > self._tenth:
            self._tenth = tenth
            click.echo(f"{self._label}: {done * 100 // self._total}% ({done}/{self._total})", err=True)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


@contextmanager
def progress_on_stderr(label: str) -> Iterator[StderrProgress]:
    """A StderrProgress whose bar is closed however the work ends."""
    progress = StderrProgress(label)
    try:
        yield progress
    finally:
        progress.finish()


def export_records(repo: Repo, output: Path | None, noun: str, write: Callable[[TextIO], int]) -> None:
    """Personal data exported to stdout, or to OUTPUT written whole and private (mode 0600), refused inside the
    repository unless git ignores it. `write` writes the records and returns how many."""
    if output is None:
        write(sys.stdout)
        return
    from addendum.files import write_atomic  # only an export to a file needs these
    from addendum.notify.tokens import require_ignored

    require_ignored(repo.root, output, "export")
    buffer = io.StringIO()
    count = write(buffer)
    write_atomic(output, buffer.getvalue(), mode=0o600)
    click.echo(f"wrote {count} {noun}(s) to {output}", err=True)

"""The Jinja environment: a repository's own templates first, then the built-ins (reachable as `default:NAME`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader, StrictUndefined, TemplateError, select_autoescape
from jinja2.loaders import split_template_path
from jinja2.sandbox import ImmutableSandboxedEnvironment

from addendum import i18n
from addendum.errors import RenderError
from addendum.files import inside_repository

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_LANGUAGE = i18n.SOURCE_LANGUAGE


def builtin_dir() -> Path:
    """The shipped templates: inside the installed package, or at the top of a source checkout."""
    packaged = PACKAGE_DIR / "templates"
    return packaged if packaged.is_dir() else PACKAGE_DIR.parents[1] / "templates"


def assets_dir() -> Path:
    return builtin_dir() / "assets"


def long_date(value: date | None, locale: str) -> str:
    from babel.dates import format_date  # imported when a date is written: babel.dates reads the time zone on import

    return format_date(value, "long", locale=locale) if value else ""


class RepositoryLoader(FileSystemLoader):
    """A policy repository's own templates/: a template that is a link leading out of the repository is refused,
    so that `templates/policy.html` linked to /etc/passwd is an error, not a page showing the password file."""

    def __init__(self, folder: Path, repository: Path) -> None:
        super().__init__(str(folder))
        self.repository = repository

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        candidate = Path(self.searchpath[0], *split_template_path(template))
        if candidate.is_file():
            inside_repository(self.repository, candidate)
        return super().get_source(environment, template)


def repository_of(repo_templates: Path) -> Path:
    """The policy repository whose templates/ folder this is (config.Repo.templates_dir is <root>/templates)."""
    return repo_templates.parent


def environment(repo_templates: Path | None, language: str = SOURCE_LANGUAGE) -> ImmutableSandboxedEnvironment:
    """The environment of one repository's templates in one reader's language: `_`, `ngettext` and `pgettext`
    (jinja2.ext.i18n, newstyle: fields are %-filled and escaped) speak it, through the catalogues of addendum.i18n."""
    repository = repository_of(repo_templates) if repo_templates is not None else None
    return _environment(repo_templates, language, i18n.stamp(language, repository))


@lru_cache(maxsize=32)
def _environment(repo_templates: Path | None, language: str, _catalogues: tuple[tuple[str, int, int], ...]) -> ImmutableSandboxedEnvironment:
    # The built-ins are guarded too: in a source checkout they are a policy repository's own templates/.
    builtin = RepositoryLoader(builtin_dir(), builtin_dir().parent)
    loaders: list[Any] = [builtin]
    if repo_templates is not None and repo_templates.is_dir() and repo_templates.resolve() != builtin_dir().resolve():
        loaders.insert(0, RepositoryLoader(repo_templates, repository_of(repo_templates)))
    loaders.append(PrefixLoader({"default": builtin}, delimiter=":"))
    # Sandboxed because a policy repository's own templates are input we did not write.
    env = ImmutableSandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        extensions=["jinja2.ext.i18n"],
        autoescape=select_autoescape(["html", "xml"], default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["long_date"] = long_date
    words = i18n.words(language, repository_of(repo_templates) if repo_templates is not None else None)
    env.install_gettext_callables(gettext=words.translations.gettext, ngettext=words.translations.ngettext,  # type: ignore[attr-defined]
                                  newstyle=True, pgettext=words.translations.pgettext)
    env.globals.update(classification=words.classification, change_kind=words.change_kind, notice_change=words.notice_change,
                       language_name=words.language_name, country_name=words.country_name)
    return env


def strings(language: str, repo_templates: Path | None = None) -> i18n.Words:
    """The product's words in `language` (`t.gettext("…")`, `t.ngettext(…)`), a repository's own catalogue first.
    Passed to templates as `t`, it also tells render_template the reader's language."""
    return i18n.words(language, repository_of(repo_templates) if repo_templates is not None else None)


def render_template(names: str | list[str], context: Mapping[str, Any], repo_templates: Path | None = None) -> str:
    """Render the first template found of `names` (most specific first)."""
    words = context.get("t")
    env = environment(repo_templates, words.language if isinstance(words, i18n.Words) else SOURCE_LANGUAGE)
    try:
        return env.select_template([names] if isinstance(names, str) else names).render(**context)
    except TemplateError as exc:
        where = f"{exc.filename}:{exc.lineno}: " if getattr(exc, "filename", None) else ""  # type: ignore[attr-defined]
        raise RenderError(f"template {where}{exc.message or exc}", "fix the template, or delete the override to use the built-in") from None

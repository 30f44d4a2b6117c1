"""The Jinja environment: a repository's own templates first, then the built-ins (reachable as `default:NAME`)."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_date
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader, StrictUndefined, TemplateError, select_autoescape
from jinja2.loaders import split_template_path
from jinja2.sandbox import ImmutableSandboxedEnvironment

from addendum.errors import RenderError
from addendum.files import inside_repository, read_repository_file

PACKAGE_DIR = Path(__file__).resolve().parent


def builtin_dir() -> Path:
    """The shipped templates: inside the installed package, or at the top of a source checkout."""
    packaged = PACKAGE_DIR / "templates"
    return packaged if packaged.is_dir() else PACKAGE_DIR.parents[1] / "templates"


def assets_dir() -> Path:
    return builtin_dir() / "assets"


def long_date(value: date | None, locale: str) -> str:
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


@lru_cache(maxsize=8)
def environment(repo_templates: Path | None) -> ImmutableSandboxedEnvironment:
    # The built-ins are guarded too: in a source checkout they are a policy repository's own templates/.
    builtin = RepositoryLoader(builtin_dir(), builtin_dir().parent)
    loaders: list[Any] = [builtin]
    if repo_templates is not None and repo_templates.is_dir() and repo_templates.resolve() != builtin_dir().resolve():
        loaders.insert(0, RepositoryLoader(repo_templates, repository_of(repo_templates)))
    loaders.append(PrefixLoader({"default": builtin}, delimiter=":"))
    # Sandboxed because a policy repository's own templates are input we did not write.
    env = ImmutableSandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(["html", "xml"], default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["long_date"] = long_date
    return env


def _strings_file(folder: Path, language: str, repository: Path | None = None) -> dict[str, str]:
    """One i18n/<language>.toml; inside a policy repository (`repository`), not through a link leading out of it."""
    path = folder / "i18n" / f"{language}.toml"
    if not path.is_file():
        return {}
    try:
        data = read_repository_file(repository, path) if repository is not None else path.read_bytes()
        return {k: str(v) for k, v in tomllib.loads(data.decode("utf-8")).items()}
    except tomllib.TOMLDecodeError as exc:
        raise RenderError(f"{path}: {exc}", "fix the TOML syntax of the strings file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RenderError(f"{path}: cannot be read: {exc}", "it must be a readable UTF-8 text file") from None


def strings(language: str, repo_templates: Path | None = None) -> Callable[..., str]:
    """A lookup `t(key, **values)` of interface text in `language`, English where a string is missing."""
    merged: dict[str, str] = {}
    for code in ("en", language.split("-")[0], language):
        merged.update(_strings_file(builtin_dir(), code))
        if repo_templates is not None:
            merged.update(_strings_file(repo_templates, code, repository_of(repo_templates)))

    def lookup(key: str, **values: Any) -> str:
        if key not in merged:
            raise RenderError(f"no interface text {key!r} in templates/i18n/{language}.toml or en.toml",
                              f"add {key} = \"…\" to templates/i18n/en.toml")
        try:
            return merged[key].format(**values)
        except (KeyError, IndexError, ValueError) as exc:
            raise RenderError(f"interface text {key!r} ({merged[key]!r}) cannot be filled: {exc!r}",
                              f"it may use only {', '.join('{' + v + '}' for v in values) or 'no {placeholders}'}") from None

    return lookup


def render_template(names: str | list[str], context: Mapping[str, Any], repo_templates: Path | None = None) -> str:
    """Render the first template found of `names` (most specific first)."""
    env = environment(repo_templates)
    try:
        return env.select_template([names] if isinstance(names, str) else names).render(**context)
    except TemplateError as exc:
        where = f"{exc.filename}:{exc.lineno}: " if getattr(exc, "filename", None) else ""  # type: ignore[attr-defined]
        raise RenderError(f"template {where}{exc.message or exc}", "fix the template, or delete the override to use the built-in") from None

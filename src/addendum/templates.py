"""The Jinja environment: a repository's own templates first, then the built-ins (reachable as `default:NAME`)."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_date
from jinja2 import ChoiceLoader, FileSystemLoader, PrefixLoader, StrictUndefined, TemplateError, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment

from addendum.errors import RenderError

PACKAGE_DIR = Path(__file__).resolve().parent


def builtin_dir() -> Path:
    """The shipped templates: inside the installed package, or at the top of a source checkout."""
    packaged = PACKAGE_DIR / "templates"
    return packaged if packaged.is_dir() else PACKAGE_DIR.parents[1] / "templates"


def assets_dir() -> Path:
    return builtin_dir() / "assets"


def long_date(value: date | None, locale: str) -> str:
    return format_date(value, "long", locale=locale) if value else ""


@lru_cache(maxsize=8)
def environment(repo_templates: Path | None) -> ImmutableSandboxedEnvironment:
    builtin = FileSystemLoader(str(builtin_dir()))
    loaders: list[Any] = [builtin]
    if repo_templates is not None and repo_templates.is_dir() and repo_templates.resolve() != builtin_dir().resolve():
        loaders.insert(0, FileSystemLoader(str(repo_templates)))
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


def _strings_file(folder: Path, language: str) -> dict[str, str]:
    path = folder / "i18n" / f"{language}.toml"
    if not path.is_file():
        return {}
    try:
        return {k: str(v) for k, v in tomllib.loads(path.read_text(encoding="utf-8")).items()}
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
            merged.update(_strings_file(repo_templates, code))

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

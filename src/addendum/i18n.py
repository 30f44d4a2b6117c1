"""The product's own words in the reader's language: gettext catalogues (.po, read on first use) and CLDR names.

Message ids are the English text itself, the gettext norm: a template reads `_("Last changed on %(date)s", …)`,
a translator sees the English, English needs no lookup, and "no English in a Dutch page" is checkable by looking
for the catalogue's msgids in the output. Fields are %-style and always filled, as Jinja's newstyle gettext does,
so a literal percent sign is written %%.

The built-in catalogues live in addendum/locale/<lang>/LC_MESSAGES/addendum.po; a policy repository may add
locale/<lang>/LC_MESSAGES/addendum.po of its own, which wins over the built-in one message by message (to reword
one, or to add a language the product does not ship). What neither has falls back to English.
"""

from __future__ import annotations

import gettext as stdlib_gettext
import hashlib
import os
import tempfile
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any

from addendum.errors import RenderError

PACKAGE_DIR = Path(__file__).resolve().parent
LOCALE_DIR = PACKAGE_DIR / "locale"
DOMAIN = "addendum"
SOURCE_LANGUAGE = "en"


def catalogue_path(folder: Path, language: str) -> Path:
    """Where the catalogue of `language` lives under a locale/ folder (a language tag like pt-BR becomes pt_BR)."""
    return folder / language.replace("-", "_") / "LC_MESSAGES" / f"{DOMAIN}.po"


def shipped_languages() -> tuple[str, ...]:
    """The languages the product has its own catalogue for."""
    return tuple(sorted(p.parents[1].name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")))


def _candidates(language: str) -> list[str]:
    """`pt-BR` is looked up as pt_BR, then pt; English last, as every message id is English already."""
    codes = [language.replace("-", "_"), language.split("-")[0].split("_")[0]]
    return list(dict.fromkeys(codes))


def cache_dir() -> Path:
    """Where compiled catalogues are kept between runs (compiling a .po with Babel costs a quarter of a second)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "addendum" / "catalogues"


def _compiled(path: Path, data: bytes, language: str) -> bytes:
    """A .po file compiled to .mo: from the cache when these exact bytes were compiled before, else by Babel."""
    cached = cache_dir() / f"{language}-{hashlib.sha256(data).hexdigest()}.mo"
    try:
        return cached.read_bytes()
    except OSError:
        pass
    compiled = _compile(path, data, language)
    try:  # a cache that cannot be written (read-only home) only costs time
        cached.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=cached.parent, prefix=".", suffix=".tmp")
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(compiled)
        os.replace(temporary, cached)
    except OSError:
        pass
    return compiled


def _compile(path: Path, data: bytes, language: str) -> bytes:
    """A .po file compiled to .mo in memory by Babel (untranslated and fuzzy entries are left out, so they fall back)."""
    from babel.messages.mofile import write_mo  # only a page that is rendered needs Babel's catalogue code
    from babel.messages.pofile import PoFileError, read_po

    try:
        catalogue = read_po(BytesIO(data), locale=language.replace("-", "_"), domain=DOMAIN, abort_invalid=True)
    except (PoFileError, ValueError) as exc:
        raise RenderError(f"{path}: not a valid gettext catalogue: {exc}", "fix the .po syntax (msgfmt --check-format shows the line)") from None
    for message, errors in catalogue.check():
        if errors:  # a translation whose %(fields)s differ from the English would fail (or leak) when rendered
            shown = message.id if isinstance(message.id, str) else message.id[0]
            raise RenderError(f"{path}:{message.lineno}: the translation of {shown!r} cannot be filled: {errors[0]}",
                              "use exactly the %(fields)s of the English text, and %% for a percent sign")
    buffer = BytesIO()
    write_mo(buffer, catalogue)
    return buffer.getvalue()


@lru_cache(maxsize=16)
def _builtin(language: str) -> bytes | None:
    if language == SOURCE_LANGUAGE:  # the shipped English catalogue only mirrors the message ids (a test keeps it so)
        return None
    path = catalogue_path(LOCALE_DIR, language)
    return _compiled(path, path.read_bytes(), language) if path.is_file() else None


def _inside(root: Path, path: Path) -> bool:
    """A repository's catalogue is read only where it really lies inside the repository (not through a link out)."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):
        return False


def _repository(root: Path, language: str) -> bytes | None:
    return _repository_catalogue(root, language, stamp(language, root))


@lru_cache(maxsize=32)
def _repository_catalogue(root: Path, language: str, _stamp: tuple[tuple[str, int, int], ...]) -> bytes | None:
    path = catalogue_path(root / "locale", language)
    if not path.is_file():
        return None
    if not _inside(root, path):
        raise RenderError(f"{path}: a symbolic link to {path.resolve()}, outside the repository",
                          "replace the link with the catalogue itself")
    return _compiled(path, path.read_bytes(), language)


def has_catalogue(language: str, repo_root: Path | None = None) -> bool:
    """Whether the product's words exist in `language` (built in, or in the repository's locale/), not only English."""
    if language.split("-")[0] == SOURCE_LANGUAGE:
        return True
    for code in _candidates(language):
        if catalogue_path(LOCALE_DIR, code).is_file() or (repo_root is not None and catalogue_path(repo_root / "locale", code).is_file()):
            return True
    return False


def _chain(language: str, repo_root: Path | None) -> stdlib_gettext.NullTranslations:
    """The repository's catalogue before the built-in one, the exact language before its base, then English."""
    head = stdlib_gettext.NullTranslations()
    for code in [*_candidates(language), SOURCE_LANGUAGE]:
        for compiled in (_repository(repo_root, code) if repo_root is not None else None, _builtin(code)):
            if compiled is not None:  # a fresh catalogue per chain: add_fallback links catalogues for good
                head.add_fallback(stdlib_gettext.GNUTranslations(BytesIO(compiled)))
    return head


def _fill(text: str, message: str, fields: dict[str, Any]) -> str:
    try:
        return text % fields
    except (KeyError, ValueError, TypeError) as exc:
        raise RenderError(f"the translation {text!r} of {message!r} cannot be filled: {exc!r}",
                          f"it may use only {', '.join('%(' + f + ')s' for f in fields) or 'no fields'} (write %% for a percent sign)") from None


class Words:
    """The product's words in one language: `gettext`, `ngettext` and `pgettext` with %-style fields."""

    def __init__(self, language: str, repo_root: Path | None = None) -> None:
        self.language = language
        self.locale = language.replace("-", "_")
        self.repo_root = repo_root
        self.translations = _chain(language, repo_root)

    def gettext(self, message: str, **fields: Any) -> str:
        return _fill(self.translations.gettext(message), message, fields)

    def ngettext(self, singular: str, plural: str, n: int, **fields: Any) -> str:
        fields.setdefault("num", n)
        return _fill(self.translations.ngettext(singular, plural, n), singular, fields)

    def pgettext(self, context: str, message: str, **fields: Any) -> str:
        return _fill(self.translations.pgettext(context, message), message, fields)

    def classification(self, level: str) -> str:
        """The label of a materiality level (none, formatting, editorial, material)."""
        labels = {"none": self.pgettext("classification", "no change"), "formatting": self.pgettext("classification", "formatting"),
                  "editorial": self.pgettext("classification", "editorial"), "material": self.pgettext("classification", "material")}
        return labels.get(level, level)

    def change_kind(self, kind: str) -> str:
        """The label of what happened to a section in a redline or changelog."""
        labels = {"added": self.pgettext("section change", "added"), "removed": self.pgettext("section change", "removed"),
                  "moved": self.pgettext("section change", "moved"), "renamed": self.pgettext("section change", "renamed"),
                  "modified": self.pgettext("section change", "modified"), "unchanged": self.pgettext("section change", "unchanged")}
        return labels.get(kind, kind)

    def notice_change(self, kind: str) -> str:
        """The label of a changed section in a change notice (added, removed, changed)."""
        labels = {"added": self.pgettext("notice", "new"), "removed": self.pgettext("notice", "removed"),
                  "changed": self.pgettext("notice", "changed")}
        return labels.get(kind, kind)

    def language_name(self, code: str) -> str:
        """A language's name in the reader's language, from CLDR: "Engels" for en in Dutch."""
        return language_name(code, self.locale)

    def country_name(self, code: str) -> str:
        """A country's name in the reader's language, from CLDR: "Belgique" for BE in French."""
        return country_name(code, self.locale)


def _locale(code: str) -> Any:
    from babel import Locale, UnknownLocaleError

    try:
        return Locale.parse(code.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return None


@lru_cache(maxsize=256)
def language_name(code: str, in_locale: str) -> str:
    """CLDR's name of language `code` in `in_locale`; the code itself when CLDR does not know it."""
    language, reader = _locale(code), _locale(in_locale)
    name = language.get_display_name(reader) if language is not None and reader is not None else None
    return str(name) if name else code


def own_name(code: str) -> str:
    """A language's name in itself, capitalised as at the start of a line in a language switcher: "Français"."""
    name = language_name(code, code)
    return name[:1].upper() + name[1:]


@lru_cache(maxsize=256)
def country_name(code: str, in_locale: str) -> str:
    """CLDR's name of country (territory) `code` in `in_locale`: "België" for BE in Dutch."""
    reader = _locale(in_locale)
    return str(reader.territories.get(code.upper(), code)) if reader is not None else code


def stamp(language: str, repo_root: Path | None) -> tuple[tuple[str, int, int], ...]:
    """What a repository's catalogues for `language` are now (path, size, mtime): a cache key that changes when
    one is added or edited, so a long-lived process (or a test) never speaks from a stale catalogue."""
    if repo_root is None:
        return ()
    found = []
    for code in [*_candidates(language), SOURCE_LANGUAGE]:
        path = catalogue_path(repo_root / "locale", code)
        try:
            status = path.stat()
        except OSError:
            continue
        found.append((str(path), status.st_size, status.st_mtime_ns))
    return tuple(found)


def words(language: str, repo_root: Path | None = None) -> Words:
    """The product's words in `language`, a repository's own catalogue first."""
    return _words(language, repo_root, stamp(language, repo_root))


@lru_cache(maxsize=64)
def _words(language: str, repo_root: Path | None, _stamp: tuple[tuple[str, int, int], ...]) -> Words:
    return Words(language, repo_root)

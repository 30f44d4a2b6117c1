"""The policy model: frozen dataclasses loaded from policy.toml and one Markdown file per language."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

from babel import Locale, UnknownLocaleError

from addendum.config import CONFIG_NAME, DEFAULT_LIMITS, Limits, TomlProblem, open_repo, parse_toml, shown, shown_key
from addendum.errors import LimitError, PolicyFormatError, Problem, UsageError
from addendum.files import OutsideRepository, repository_files
from addendum.ids import ID_PATTERN, LANGUAGE_PATTERN, require_id
from addendum.policy.markup import RawSection, split_sections

RESERVED_SITE_ID = "source"
DEFAULT_LOCALES = {"en": "en_GB", "nl": "nl_BE", "fr": "fr_BE", "de": "de_DE"}
TOP_LEVEL_KEYS = {"id", "default_language", "languages", "default_site", "notice_days", "title",
                  "controller", "sites", "tags", "check", "locales", "materiality", "supervisory_authority",
                  "kind", "rights", "options", "notes"}
MAX_NOTICE_DAYS = 3650


@dataclass(frozen=True)
class Location:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Section:
    """One heading and its own text; `path` is the chain of ids from the outermost section down."""

    id: str
    heading: str
    level: int
    body: str
    path: tuple[str, ...]
    location: Location
    heading_line: str

    @property
    def parent(self) -> str | None:
        return self.path[-2] if len(self.path) > 1 else None

    @property
    def ref(self) -> str:
        return "§" + ".".join(self.path)


@dataclass(frozen=True)
class Document:
    """One Markdown file: a policy's text in one language, or a site's overrides in one language."""

    language: str
    file: str
    sections: tuple[Section, ...]

    def get(self, section_id: str) -> Section | None:
        return self._by_id.get(section_id)

    @cached_property
    def _by_id(self) -> dict[str, Section]:
        # Looked up once per section by every rule and every site: a scan each time made a long policy quadratic.
        by_id: dict[str, Section] = {}
        for section in self.sections:
            by_id.setdefault(section.id, section)
        return by_id

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.sections)

    def text(self) -> str:
        return "".join(s.heading_line + s.body for s in self.sections)


@dataclass(frozen=True)
class Site:
    id: str
    name: str
    variables: Mapping[str, Any]
    pending: tuple[str, ...]
    overrides: Mapping[str, Document]
    location: Location


@dataclass(frozen=True)
class Controller:
    name: str
    address: str
    email: str
    phone: str = ""
    country: str = ""  # ISO 3166 code: its name is printed in the reader's language, its authority is the default


@dataclass(frozen=True)
class Policy:
    id: str
    directory: str
    titles: Mapping[str, str]
    languages: tuple[str, ...]
    default_language: str
    default_site: str
    sites: Mapping[str, Site]
    controller: Controller
    notice_days: int
    tags: Mapping[str, tuple[str, ...]]
    documents: Mapping[str, Document]
    config_file: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    config_lines: Mapping[str, int] = field(default_factory=dict)
    limits: Limits = DEFAULT_LIMITS

    def title(self, language: str) -> str:
        return self.titles.get(language) or self.titles[self.default_language]

    def locale(self, language: str) -> str:
        locales = self.settings.get("locales", {})
        return str(locales.get(language) or DEFAULT_LOCALES.get(language, language.replace("-", "_")))

    def site(self, site_id: str) -> Site:
        if site_id not in self.sites:
            raise UsageError(f"policy {self.id} has no site {site_id!r}", f"its sites are: {', '.join(self.sites)}")
        return self.sites[site_id]

    def require_language(self, language: str) -> str:
        if language not in self.languages:
            raise UsageError(f"policy {self.id} has no language {language!r}", f"its languages are: {', '.join(self.languages)}")
        return language

    def all_section_ids(self) -> list[str]:
        ids: dict[str, None] = {}
        for document in self.documents.values():
            ids.update(dict.fromkeys(document.ids))
        return list(ids)

    def files(self) -> dict[str, str]:
        """Every Markdown file of the policy as text, keyed by path relative to the policy folder."""
        out = {f"{lang}.md": doc.text() for lang, doc in self.documents.items()}
        for site in self.sites.values():
            for lang, doc in site.overrides.items():
                out[f"sites/{site.id}/{lang}.md"] = doc.text()
        return out


def _sections(raw: list[RawSection], file: str) -> tuple[Section, ...]:
    stack: list[tuple[int, str]] = []
    out = []
    for section in raw:
        while stack and stack[-1][0] >= section.level:
            stack.pop()
        path = tuple(i for _, i in stack) + (section.id,)
        if section.level:
            stack.append((section.level, section.id))
        out.append(Section(section.id, section.heading, section.level, section.body, path,
                           Location(file, section.line), section.heading_line))
    return tuple(out)


def parse_document(text: str, language: str, file: str, limits: Limits = DEFAULT_LIMITS) -> tuple[Document, list[Problem]]:
    raw, problems = split_sections(text, file, limits)
    return Document(language, file, _sections(raw, file)), problems


class _KeyLines:
    """Best-effort line of a TOML key or table, so schema errors can cite file:line: the first `[key]` line, else
    the first line assigning the key's last part. Indexed in one pass (searching the text per error was quadratic)."""

    def __init__(self, text: str) -> None:
        self.tables: dict[str, int] = {}
        self.names: dict[str, int] = {}
        for number, line in enumerate(text.split("\n"), 1):
            stripped = line.lstrip(" \t")
            if stripped.startswith("[") and not stripped.startswith("[["):
                self.tables.setdefault(stripped[1:].split("]", 1)[0].strip(" \t"), number)
            elif "=" in stripped:
                self.names.setdefault(stripped.split("=", 1)[0].rstrip(" \t"), number)

    def line(self, key: str) -> int:
        return self.tables.get(key) or self.names.get(key.split(".")[-1]) or 1


class _Schema:
    """Collects every policy.toml problem instead of stopping at the first."""

    def __init__(self, text: str, file: str) -> None:
        self.text, self.file = text, file
        self.lines = _KeyLines(text)
        self.problems: list[Problem] = []

    def error(self, key: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem("error", self.file, self.lines.line(key), message, hint, rule="policy-toml"))

    def get(self, data: Mapping[str, Any], key: str, kind: type, default: Any = None, required: bool = True) -> Any:
        name = key.split(".")[-1]
        if name not in data:
            if required:
                self.error(key, f"'{key}' is missing", f"add {key} = … to policy.toml (see docs/format.md)")
            return default
        value = data[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.error(key, f"'{shown_key(key)}' must be {kind.__name__}, got {shown(value)}")
            return default
        return value


def _pending_conflict(variables: Mapping[str, Any], key: str) -> str:
    """Why a pending key cannot be filled with a marker ('' when it can)."""
    node: Any = variables
    *parents, last = key.split(".")
    for depth, part in enumerate(parents):
        node = node.get(part, {}) if isinstance(node, Mapping) else None
        if not isinstance(node, Mapping):
            return f"pending {shown(key)}, but {shown_key('.'.join(parents[:depth + 1]))} is a value, not a table"
    if last in node:
        return f"{shown_key(key)} is both set and listed as pending"
    return ""


# One plain address (no display name): the check a site's reply_to needs before a notice is built with it.
_PLAIN_ADDRESS = re.compile(r"[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+\.[^@\s<>\"(),;:.]+")


def _site(sch: _Schema, site_id: str, data: Any, overrides: dict[str, Document]) -> Site | None:
    if not ID_PATTERN.fullmatch(site_id):
        sch.error(f"sites.{site_id}", f"site id {shown(site_id)} is not a valid id", "site ids are lowercase letters, digits and hyphens")
        return None
    if site_id == RESERVED_SITE_ID:
        sch.error(f"sites.{site_id}", f"site id {site_id!r} is reserved", "history/<policy>/<version>/source/ holds a version's files; rename the site")
        return None
    if not isinstance(data, dict):
        sch.error(f"sites.{site_id}", f"'sites.{site_id}' must be a table")
        return None
    name = sch.get(data, f"sites.{site_id}.name", str, site_id, required=False)
    pending = sch.get(data, f"sites.{site_id}.pending", list, [], required=False)
    # How the site's notices name their sender and where replies go (else [notify] from_name and reply_to).
    # One name, or one per language: sender_name = { en = "Cavallo privacy team", nl = "Privacyteam van Cavallo" }.
    sender_name = data.get("sender_name", "")
    names = sender_name.items() if isinstance(sender_name, dict) else [("", sender_name)]
    for language, value in names:
        key = f"sites.{site_id}.sender_name" + (f".{shown_key(language)}" if language else "")
        if language and not LANGUAGE_PATTERN.fullmatch(language):
            sch.error(f"sites.{site_id}.sender_name", f"site {site_id}: '{key}': {shown(language)} is not a language code",
                      'key the names by language, e.g. sender_name = { en = "Cavallo privacy team", nl = "Privacyteam van Cavallo" }')
        elif not isinstance(value, str):
            sch.error(f"sites.{site_id}.sender_name", f"'{key}' must be str, got {shown(value)}",
                      'give a name, or a table of language = name')
        elif any(not ch.isprintable() for ch in value):
            sch.error(f"sites.{site_id}.sender_name", f"site {site_id}: sender_name {shown(value)} holds a control character",
                      "give a plain name, e.g. sender_name = \"Cavallo privacy team\"")
    reply_to = sch.get(data, f"sites.{site_id}.reply_to", str, "", required=False)
    if isinstance(reply_to, str) and reply_to and not _PLAIN_ADDRESS.fullmatch(reply_to):
        sch.error(f"sites.{site_id}.reply_to", f"site {site_id}: reply_to {shown(reply_to)} is not an e-mail address",
                  "give one address, e.g. reply_to = \"privacy@cavallo.example\"")
    variables = {k: v for k, v in data.items() if k != "pending"}
    for key in pending:
        problem = _pending_conflict(variables, key) if isinstance(key, str) else f"pending entries are strings, got {shown(key)}"
        if problem:
            sch.error(f"sites.{site_id}.pending", f"site {site_id}: {problem}",
                      "list in pending only the values the site does not provide, as dotted keys like contact.email")
    variables.setdefault("name", name)
    variables["id"] = site_id
    return Site(site_id, name, variables, tuple(str(p) for p in pending), overrides,
                Location(sch.file, sch.lines.line(f"sites.{site_id}")))


def _check_settings(sch: _Schema, data: Mapping[str, Any], languages: list[str]) -> None:
    """[check] and [locales]: tables of language → value, each value of the right shape."""
    check = data.get("check", {})
    phrases = check.get("regular_review_phrases", {}) if isinstance(check, dict) else None
    if not isinstance(phrases, dict):
        sch.error("check", "'check' must be a table like [check] regular_review_phrases = { nl = [\"…\"] }")
    else:
        for language, value in phrases.items():
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                sch.error("regular_review_phrases", f"'check.regular_review_phrases.{shown_key(language)}' must be a list of phrases, "
                          f"got {shown(value)}", 'e.g. en = ["check this page regularly"]')
    locales = data.get("locales", {})
    if not isinstance(locales, dict):
        sch.error("locales", "'locales' must be a table of language = Babel locale, e.g. nl = \"nl_BE\"")
        return
    for language, locale in locales.items():
        if language not in languages:
            sch.error(f"locales.{language}", f"locales names {shown(language)}, which is not one of the languages")
            continue
        try:
            if not isinstance(locale, str):
                raise ValueError(locale)
            Locale.parse(locale)
        except (ValueError, TypeError, UnknownLocaleError):
            sch.error(f"locales.{language}", f"'locales.{shown_key(language)}': {shown(locale)} is not a locale Babel knows",
                      "use a code like nl_BE or en_GB")


def _check_plain_text(sch: _Schema, values: Mapping[str, Any]) -> None:
    """Titles and the controller's details go into headers and subjects: no line breaks or control characters."""
    for key, value in values.items():
        if isinstance(value, str) and any(unicodedata.category(c) == "Cc" for c in value):
            sch.error(key, f"'{shown_key(key)}' contains a line break or control character", "write it on one line")


def file_too_large(file: str, size: int, limits: Limits) -> LimitError:
    return LimitError(file, 0, f"{size:,} bytes; a policy file is at most {limits.file_bytes:,} (limits.file_bytes)",
                      "split the policy, or " + Limits.hint("file_bytes"))


def _check_sizes(files: Mapping[str, str], directory: str, limits: Limits) -> None:
    for name, text in files.items():
        # A character is 1 to 4 bytes: count the bytes only when the characters leave it open.
        if len(text) * 4 > limits.file_bytes and (size := len(text.encode("utf-8", "surrogatepass"))) > limits.file_bytes:
            raise file_too_large(f"{directory}/{name}", size, limits)


def _parse_policy_toml(text: str, config_file: str) -> dict[str, Any]:
    try:
        return parse_toml(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise PolicyFormatError([Problem("error", config_file, int(match[1]) if match else 1, f"invalid TOML: {exc}",
                                         "fix the syntax at that line (strings need quotes, tables [brackets])", rule="toml-syntax")]) from None
    except TomlProblem as exc:
        line = exc.line or (_KeyLines(text).line(exc.key.split("[")[0]) if exc.key else 1)
        raise PolicyFormatError([Problem("error", config_file, line, exc.message,
                                         "a policy.toml holds plain values, a few tables deep (see docs/format.md)",
                                         rule="policy-toml")]) from None


def _controller(sch: _Schema, data: Mapping[str, Any]) -> tuple[Controller, dict[str, Any]]:
    controller_data = sch.get(data, "controller", dict, {})
    for key, value in controller_data.items():
        if key not in ("name", "address", "email", "phone", "country"):
            sch.error(f"controller.{key}", f"unknown key 'controller.{shown_key(key)}'", "[controller] takes name, address, email, phone and country")
        elif not isinstance(value, str):
            sch.error(f"controller.{key}", f"'controller.{key}' must be str, got {shown(value)}")
    for key in ("name", "address", "email"):
        if controller_data and not controller_data.get(key):
            sch.error(f"controller.{key}", f"'controller.{key}' is missing", "the controller's identity and contact must be stated (GDPR Art. 13(1)(a))")
    values = [controller_data.get(k, "") for k in ("name", "address", "email", "phone", "country")]
    return Controller(*(v if isinstance(v, str) else "" for v in values)), controller_data


# Parsed policies by their exact input: a long-running process (addendum serve) parses the same published versions
# and an unchanged working tree again and again; a Policy is frozen, so one parse can serve every caller.
_PARSED: dict[tuple[Any, ...], Policy] = {}
_PARSED_LIMIT = 64


def load_policy_files(policy_id: str, files: Mapping[str, str], directory: str, limits: Limits = DEFAULT_LIMITS) -> Policy:
    """Build a Policy from its files (paths relative to the policy folder); raise with every problem found.
    A file larger than limits.file_bytes (or a heading or section count past its limit) raises LimitError.
    The same files give the same (shared, frozen) Policy without parsing them again."""
    key = (policy_id, directory, limits, tuple(sorted(files.items())))
    found = _PARSED.get(key)
    if found is None:
        found = _parse_policy_files(policy_id, files, directory, limits)
        if len(_PARSED) >= _PARSED_LIMIT:
            _PARSED.pop(next(iter(_PARSED)), None)
        _PARSED[key] = found
    return found


def _parse_policy_files(policy_id: str, files: Mapping[str, str], directory: str, limits: Limits) -> Policy:
    config_file = f"{directory}/policy.toml"
    text = files.get("policy.toml")
    if text is None:
        raise PolicyFormatError([Problem("error", config_file, 0, "policy.toml is missing",
                                         "every policy folder needs a policy.toml (see docs/format.md)", rule="policy-toml")])
    _check_sizes(files, directory, limits)
    data = _parse_policy_toml(text, config_file)
    sch = _Schema(text, config_file)
    for key in sorted(set(data) - TOP_LEVEL_KEYS):
        sch.error(key, f"unknown key '{shown_key(key)}'", f"known keys: {', '.join(sorted(TOP_LEVEL_KEYS))}")
    declared_id = sch.get(data, "id", str, policy_id)
    if declared_id != policy_id:
        sch.error("id", f"id {shown(declared_id)} does not match the folder name {policy_id!r}", f"set id = \"{policy_id}\"")
    languages = sch.get(data, "languages", list, [])
    for lang in languages:
        if not isinstance(lang, str) or not LANGUAGE_PATTERN.fullmatch(lang):
            sch.error("languages", f"language {shown(lang)} is not a language code", "use codes like en, nl or pt-BR")
    listed = bool(languages)
    languages = list(dict.fromkeys(lang for lang in languages if isinstance(lang, str) and LANGUAGE_PATTERN.fullmatch(lang)))
    if "languages" in data and not listed:
        sch.error("languages", "languages lists no language", 'name the languages of the text, e.g. languages = ["en"]')
    default_language = sch.get(data, "default_language", str, languages[0] if languages else "en")
    if languages and default_language not in languages:
        sch.error("default_language", f"default_language {shown(default_language)} is not in languages", f"use one of {languages}")
    titles = sch.get(data, "title", dict, {})
    for lang in languages:
        if not isinstance(titles.get(lang), str):
            sch.error("title", f"no title for language {lang!r}", f'add {lang} = "…" under [title]')
    notice_days = sch.get(data, "notice_days", int, 30, required=False)
    if isinstance(notice_days, int) and notice_days < 0:
        sch.error("notice_days", "notice_days cannot be negative")
    elif isinstance(notice_days, int) and notice_days > MAX_NOTICE_DAYS:
        sch.error("notice_days", f"notice_days is {shown(notice_days)}; at most {MAX_NOTICE_DAYS} (ten years)")
        notice_days = MAX_NOTICE_DAYS
    controller, controller_data = _controller(sch, data)

    problems: list[Problem] = []
    documents: dict[str, Document] = {}
    for lang in languages:
        name = f"{lang}.md"
        if name not in files:
            sch.error("languages", f"languages lists {lang!r} but {directory}/{name} does not exist", f"create {name} or remove {lang!r} from languages")
            continue
        documents[lang], found = parse_document(files[name], lang, f"{directory}/{name}", limits)
        problems.extend(found)

    sites_data = sch.get(data, "sites", dict, {})
    sites: dict[str, Site] = {}
    for site_id, site_data in sites_data.items():
        overrides: dict[str, Document] = {}
        for lang in languages:
            name = f"sites/{site_id}/{lang}.md"
            if name in files:
                overrides[lang], found = parse_document(files[name], lang, f"{directory}/{name}", limits)
                problems.extend(found)
        site = _site(sch, site_id, site_data, overrides)
        if site:
            sites[site_id] = site
    for name in sorted(files):
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == "sites" and parts[1] not in sites_data:
            problems.append(Problem("error", f"{directory}/{name}", 0, f"site {parts[1]!r} has overrides but is not declared",
                                    f"add [sites.{parts[1]}] to policy.toml, or remove the folder", rule="unknown-site"))
    default_site = sch.get(data, "default_site", str, next(iter(sites), ""))
    if sites and default_site not in sites:
        sch.error("default_site", f"default_site {shown(default_site)} is not one of the sites", f"use one of {list(sites)}")
    if not sites_data:
        sch.error("sites", "no sites declared", "add at least one [sites.<id>] table")

    tags_data = sch.get(data, "tags", dict, {}, required=False)
    tags: dict[str, tuple[str, ...]] = {}
    for section_id, section_tags in tags_data.items():
        if not isinstance(section_tags, list) or not all(isinstance(t, str) for t in section_tags):
            sch.error(f"tags.{section_id}", f"tags of {shown(section_id)} must be a list of strings")
            continue
        tags[section_id] = tuple(section_tags)

    _check_settings(sch, data, languages)
    _check_plain_text(sch, {f"title.{k}": v for k, v in titles.items()} | {f"controller.{k}": v for k, v in controller_data.items()})
    problems = sch.problems + problems
    if any(p.severity == "error" for p in problems):
        raise PolicyFormatError(problems)
    config_lines = {f"tags.{k}": sch.lines.line(k) for k in tags}
    config_lines.update({k: sch.lines.line(k) for k in ("kind", "rights", "options", "supervisory_authority", "country", "notes")
                         if k in data or k == "country"})
    return Policy(
        id=policy_id, directory=directory, titles=titles, languages=tuple(languages), default_language=default_language,
        default_site=default_site, sites=sites, controller=controller, notice_days=notice_days, tags=tags,
        documents=documents, config_file=config_file,
        settings={k: data[k] for k in ("check", "locales", "materiality", "supervisory_authority", "kind", "rights", "options", "notes") if k in data},
        config_lines=config_lines, limits=limits,
    )


def _is_policy_file(name: str) -> bool:
    path = PurePosixPath(name)
    return path.suffix == ".md" or path.name == "policy.toml"


def read_policy_files(folder: Path, root: Path | None = None, limits: Limits | None = None) -> dict[str, str]:
    """policy.toml and every Markdown file under a policy folder, as text. A symbolic link is followed only where
    it stays inside `root` (the repository; by default the folder itself): every link leading out is an error.
    With `limits`, a file larger than limits.file_bytes raises LimitError before it is read."""
    files: dict[str, str] = {}
    refused: list[OutsideRepository] = []
    for relative, path in repository_files(root or folder, folder, _is_policy_file, refused):
        if limits is not None and (size := path.stat().st_size) > limits.file_bytes:
            shown_path = folder / relative
            if root is not None and shown_path.is_relative_to(root):
                shown_path = shown_path.relative_to(root)
            raise file_too_large(shown_path.as_posix(), size, limits)
        try:
            files[relative] = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyFormatError([Problem("error", str(folder / relative), 0, f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                                             "save the file as UTF-8", rule="encoding")]) from None
    if refused:
        raise PolicyFormatError([Problem("error", problem.file, 0, problem.reason, problem.hint, rule="link-outside")
                                 for problem in refused])
    return files


def unknown_policy(policy_id: str, known: Iterable[str]) -> UsageError:
    """The one answer every command gives to a policy id the repository does not know, naming the ones it does."""
    names = ", ".join(sorted(set(known)))
    if names:
        return UsageError(f"no policy {policy_id!r} in policies/ — known policies: {names}",
                          f"check the spelling, or create policies/{policy_id}/policy.toml (see docs/format.md)")
    return UsageError(f"no policy {policy_id!r} in policies/ — there is none yet",
                      f"create policies/{policy_id}/policy.toml (see docs/format.md)")


def repository_limits(repo_root: Path) -> Limits:
    """The [limits] of the repository at `repo_root` (the defaults where it has no addendum.toml)."""
    return open_repo(repo_root).limits if (repo_root / CONFIG_NAME).is_file() else DEFAULT_LIMITS


def load_policy(repo_root: Path, policy_id: str, limits: Limits | None = None) -> Policy:
    """The policy in policies/<policy_id>; `limits` default to the repository's own."""
    require_id(policy_id, "policy")
    folder = repo_root / "policies" / policy_id
    if not (folder / "policy.toml").is_file():
        raise unknown_policy(policy_id, (p.parent.name for p in (repo_root / "policies").glob("*/policy.toml")))
    limits = limits or repository_limits(repo_root)
    return load_policy_files(policy_id, read_policy_files(folder, repo_root, limits), f"policies/{policy_id}", limits)

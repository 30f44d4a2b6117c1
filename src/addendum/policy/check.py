"""Checking a policy: every problem at once, each with file:line, section id and how to fix it."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from addendum.errors import PolicyFormatError, Problem
from addendum.i18n import has_catalogue, language_name
from addendum.policy.kinds import former_authority_names
from addendum.policy.kinds import problems as kind_problems
from addendum.policy.markup import INVISIBLE, PREAMBLE_ID, source_lines
from addendum.policy.model import Document, Policy, load_policy
from addendum.policy.notes import problems as note_problems
from addendum.policy.resolve import resolve
from addendum.policy.sender import sender_name

# The lookbehind starts a try only where a run of address characters starts, and the possessive local part is
# not given back: on a 30 KB word the plain pattern retried every position to the end (quadratic, 10 s).
EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]++@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
REGULAR_REVIEW_PHRASES = {
    "en": ["check this page regularly", "review this page regularly", "regularly check this page",
           "regularly review this page", "regularly view this page", "check back regularly", "periodically review"],
    "nl": ["regelmatig deze pagina", "deze pagina regelmatig", "regelmatig te raadplegen"],
    "fr": ["consulter régulièrement cette page", "consulter cette page régulièrement", "consulter régulièrement la présente page"],
    "de": ["diese seite regelmäßig", "regelmäßig diese seite", "regelmäßig auf dieser seite"],
}


@dataclass(frozen=True)
class CheckResult:
    """What `check` found in one policy; `loaded` is False when its files could not be loaded, so that the
    problems are the load errors and the rules that need a loaded policy did not run."""

    policy_id: str
    problems: tuple[Problem, ...]
    loaded: bool = True

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


def _language(code: str) -> str:
    """A language as an editor reads it in a message: "French (fr)", its name from CLDR."""
    name = language_name(code, "en")
    return f"{name} ({code})" if name != code else code


def _catalogues(policy: Policy, repo_root: Path | None) -> Iterator[Problem]:
    """A language the product has no words for: its pages, redlines and notices fall back to English there."""
    for language, document in policy.documents.items():
        if not has_catalogue(language, repo_root):
            code = language.replace("-", "_")
            yield Problem("warning", document.file, 1,
                          f"Addendum has no catalogue for {_language(language)}: the words it writes itself (labels of "
                          f"pages, redlines, changelogs and archive pages, notices' headings and sentences) are English "
                          f"there; dates and the names of languages and countries are in {_language(language)}",
                          f"add locale/{code}/LC_MESSAGES/addendum.po to the repository (README: Languages)", rule="no-catalogue")


def _lines(document: Document) -> Iterator[tuple[str, int, str]]:
    """(section id, line number, line text) for every line of a document."""
    for section in document.sections:
        start = section.location.line
        text = section.heading_line + section.body
        for offset, line in enumerate(source_lines(text)):
            yield section.id, start + offset, line.rstrip("\r\n")


def _documents(policy: Policy) -> Iterator[Document]:
    yield from policy.documents.values()
    for site in policy.sites.values():
        yield from site.overrides.values()


def _translations(policy: Policy) -> Iterator[Problem]:
    default = policy.documents[policy.default_language]
    for language, document in policy.documents.items():
        if language == policy.default_language:
            continue
        for section in default.sections:
            if section.id == PREAMBLE_ID and not section.body.strip():
                continue
            other = document.get(section.id)
            if other is None:
                yield Problem("warning", section.location.file, section.location.line,
                              f"no {_language(language)} text; readers in {language} see the {policy.default_language} text, marked as such",
                              f"translate it into {document.file} with the same id {{#{section.id}}}",
                              section=section.id, rule="missing-translation")
            elif other.path != section.path or other.level != section.level:
                yield Problem("warning", other.location.file, other.location.line,
                              f"placed at {'.'.join(other.path)} (level {other.level}) "
                              f"but at {'.'.join(section.path)} (level {section.level}) in {default.file}",
                              "give the section the same heading level and parent in every language",
                              section=section.id, rule="structure-mismatch")
        for section in document.sections:
            if default.get(section.id) is None and section.body.strip():
                yield Problem("warning", section.location.file, section.location.line,
                              f"not in the default language ({policy.default_language})",
                              f"add it to {default.file}, or check the id for a typo", section=section.id, rule="missing-in-default")


def _overrides(policy: Policy) -> Iterator[Problem]:
    known = set(policy.all_section_ids())
    some_known = ", ".join(sorted(known)[:6])
    for site in policy.sites.values():
        for language, document in site.overrides.items():
            for section in document.sections:
                if section.id == PREAMBLE_ID:
                    if section.body.strip():
                        yield Problem("error", document.file, 1, "text before the first heading in a site override",
                                      "an override file holds only whole sections: start it with the heading of the section it replaces",
                                      rule="override-preamble")
                    continue
                if section.id not in known:
                    yield Problem("error", section.location.file, section.location.line,
                                  f"site {site.id} overrides a section that the policy does not have",
                                  f"use the id of an existing section ({some_known}, …)",
                                  section=section.id, rule="unknown-override")
                    continue
                for other_language, base in policy.documents.items():
                    if other_language in site.overrides and site.overrides[other_language].get(section.id):
                        continue
                    if base.get(section.id) is not None:
                        yield Problem("warning", section.location.file, section.location.line,
                                      f"site {site.id} overrides this section in {language} but not in {other_language}; "
                                      f"{other_language} readers of {site.id} see the {language} override",
                                      f"add the section to {policy.directory}/sites/{site.id}/{other_language}.md",
                                      section=section.id, rule="override-missing-language")


def _pending(policy: Policy) -> Iterator[Problem]:
    for site in policy.sites.values():
        for key in site.pending:
            yield Problem("warning", site.location.file, site.location.line,
                          f"site {site.id} does not provide {key} yet; the text shows a visible placeholder there",
                          f"set {key} under [sites.{site.id}] and remove it from pending",
                          rule="pending-variable")


def _placeholders(policy: Policy) -> Iterator[Problem]:
    seen: set[tuple[str, int, str]] = set()
    for site_id in policy.sites:
        for language in policy.languages:
            try:
                resolve(policy, site_id, language)
            except PolicyFormatError as exc:
                for problem in exc.problems:
                    key = (problem.file, problem.line, problem.message)
                    if key not in seen:
                        seen.add(key)
                        yield problem


def _text_rules(policy: Policy) -> Iterator[Problem]:
    declared = {policy.controller.email.lower()}
    for site in policy.sites.values():
        declared.update(v.lower() for v in _strings(site.variables) if EMAIL.fullmatch(v))
    extra = policy.settings.get("check", {}).get("regular_review_phrases", {})
    for document in _documents(policy):
        phrases = [p.lower() for p in REGULAR_REVIEW_PHRASES.get(document.language, []) + list(extra.get(document.language, []))]
        for section_id, line_no, line in _lines(document):
            for match in INVISIBLE.finditer(line):
                yield Problem("error", document.file, line_no,
                              f"invisible character U+{ord(match[0]):04X} at column {match.start() + 1}",
                              "delete it: bidi controls and zero-width characters can hide text from a reviewer",
                              section=section_id, rule="invisible-character")
            for match in EMAIL.finditer(line):
                if match[0].lower() not in declared:
                    yield Problem("error", document.file, line_no,
                                  f"e-mail address {match[0]} is not a declared contact",
                                  "personal data must not enter git: use a placeholder such as {{ site.contact.email }} "
                                  "and declare the address in policy.toml",
                                  section=section_id, rule="undeclared-email")
            lowered = line.lower()
            for phrase in phrases:
                if phrase in lowered:
                    yield Problem("warning", document.file, line_no,
                                  f"asks readers to check the page regularly ({phrase!r}); a notice of change must be active, "
                                  "not left to the reader (WP260 rev.01 ¶29)",
                                  "say instead how readers will be told of material changes (e.g. by e-mail before they take effect)",
                                  section=section_id, rule="regular-review")
                    break


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _tags(policy: Policy) -> Iterator[Problem]:
    known = set(policy.all_section_ids())
    for section_id in policy.tags:
        if section_id not in known:
            yield Problem("error", policy.config_file, policy.config_lines.get(f"tags.{section_id}", 1),
                          f"tags name section {section_id!r}, which no language has",
                          "use an existing section id, or remove the line", section=section_id, rule="unknown-tagged-section")


def _kind(policy: Policy) -> Iterator[Problem]:
    """The kind, rights, options and authority of policy.toml, and a text that still names a renamed authority."""
    yield from kind_problems(policy)
    former = former_authority_names(policy)
    if not former:
        return
    for document in _documents(policy):
        for section_id, line_no, line in _lines(document):
            for name, year in former:
                if name.lower() in line.lower():
                    yield Problem("warning", document.file, line_no,
                                  f"names the {name}, which was renamed in {year}" if year else f"names the {name}, a former name",
                                  "name the supervisory authority as it is called now (see [supervisory_authority])",
                                  section=section_id, rule="former-authority")
                    break


_FROM_NAME_LINE = re.compile(r"\s*(\[notify\.from_name\]|from_name\s*=)")


def _config_line(repo_root: Path | None) -> int:
    """The line of addendum.toml that sets notify.from_name (0 when it cannot be told)."""
    try:
        text = (repo_root / "addendum.toml").read_text(encoding="utf-8") if repo_root else ""
    except (OSError, UnicodeDecodeError):
        return 0
    return next((n for n, line in enumerate(text.splitlines(), 1) if _FROM_NAME_LINE.match(line)), 0)


def _sender_names(policy: Policy, settings: Mapping[str, Any], repo_root: Path | None) -> Iterator[Problem]:
    """A language in use whose notices fall back to another language's sender name (a per-language table without it)."""
    from_name = settings.get("notify.from_name", "")
    for language in policy.languages:
        fallen: dict[str, list[str]] = {}
        names: dict[str, str] = {}
        for site_id in policy.sites:
            found = sender_name(policy, site_id, language, from_name)
            if found.fell_back:
                local = isinstance(policy.sites[site_id].variables.get("sender_name"), Mapping)
                where = f"site:{site_id}" if local else "notify"
                fallen.setdefault(where, []).append(site_id)
                names[where] = found.name
        for where, sites in fallen.items():
            if where == "notify":
                file, line, key = "addendum.toml", _config_line(repo_root), "notify.from_name"
                fix = f'add {language} = "…" under [notify.from_name] in addendum.toml'
            else:
                site = policy.sites[sites[0]]
                file, line, key = site.location.file, site.location.line, f"sites.{site.id}.sender_name"
                fix = f'add {language} = "…" to sender_name under [sites.{site.id}] in policy.toml'
            yield Problem("warning", file, line,
                          f"{key} has no sender name for {_language(language)}: {_language(language)} notices of "
                          f"{', '.join(sites)} come from {names[where]!r} instead",
                          fix, rule="sender-name")


def check_policy(policy: Policy, repo_root: Path | None = None, settings: Mapping[str, Any] | None = None) -> list[Problem]:
    """Every problem of a loaded policy; `repo_root` lets the rules see the repository's own catalogues, `settings`
    (of addendum.toml) the sender names of its notices."""
    problems: list[Problem] = []
    for rule in (_translations, _overrides, _pending, _placeholders, _text_rules, _tags):
        problems.extend(rule(policy))
    problems.extend(_catalogues(policy, repo_root))
    problems.extend(_kind(policy))
    problems.extend(note_problems(policy))
    if settings is not None:
        problems.extend(_sender_names(policy, settings, repo_root))
    return problems


def check(repo_root: Path, policy_id: str, settings: Mapping[str, Any] | None = None) -> CheckResult:
    """Load and check one policy. Files that cannot be loaded are problems like any other (the result is not
    `loaded`); only a policy id the repository does not know raises (UsageError), and a file past one of the
    [limits] (LimitError), before the work that grows with it."""
    try:
        policy = load_policy(repo_root, policy_id)
    except PolicyFormatError as exc:
        return CheckResult(policy_id, tuple(exc.problems), loaded=False)
    return CheckResult(policy_id, tuple(check_policy(policy, repo_root, settings)))


def require_valid(policy: Policy) -> None:
    """Refuse a policy with errors, as `check` would print them."""
    errors = [p for p in check_policy(policy) if p.severity == "error"]
    if errors:
        raise PolicyFormatError(errors)

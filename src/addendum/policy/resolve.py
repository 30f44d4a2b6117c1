"""Resolving a policy for one site and language: overrides, fallbacks and placeholders applied."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import UndefinedError

from addendum.config import DEFAULT_LIMITS, Limits
from addendum.errors import PolicyFormatError, Problem
from addendum.i18n import Words
from addendum.policy.markup import PREAMBLE_ID, source_lines
from addendum.policy.model import Document, Location, Policy, Section
from addendum.policy.sandbox import PlaceholderLimit, fill

DELIMITERS = (("{{", "}}"), ("{%", "%}"))


@dataclass(frozen=True)
class ResolvedSection:
    id: str
    heading: str
    level: int
    path: tuple[str, ...]
    text: str
    language: str
    fallback: bool
    site_override: bool
    location: Location

    @property
    def ref(self) -> str:
        return "§" + ".".join(self.path)


@dataclass(frozen=True)
class ResolvedPolicy:
    """The text a reader of one site in one language sees."""

    policy_id: str
    title: str
    site: str
    site_name: str
    language: str
    locale: str
    sections: tuple[ResolvedSection, ...]

    def get(self, section_id: str) -> ResolvedSection | None:
        return next((s for s in self.sections if s.id == section_id), None)

    def canonical_text(self) -> str:
        return canonical_text(self.sections)

    def content_hash(self) -> str:
        return content_hash(self.canonical_text())


def normalise(text: str) -> str:
    """The one normalisation used for hashing and diffing: Unicode NFC, LF line ends."""
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))


def canonical_text(sections: tuple[ResolvedSection, ...]) -> str:
    parts = []
    for section in sections:
        head = f"{'#' * section.level} {section.heading} {{#{section.id}}}\n\n" if section.level else ""
        parts.append(head + section.text.strip("\n") + "\n")
    return normalise("\n".join(parts))


def content_hash(text: str) -> str:
    return "sha256:" + hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


def placeholders_in(line: str) -> list[str]:
    """The `{{ … }}` and `{% … %}` of one line, left to right, each up to its first closing delimiter. A scan, not
    a lazy regex: that one tried every opening up to the end of the line, quadratic on `{{{{{{…`."""
    found: list[str] = []
    position = 0
    open_kinds = list(DELIMITERS)
    while open_kinds:
        starts = [(line.find(opening, position), opening, closing) for opening, closing in open_kinds]
        starts = [start for start in starts if start[0] >= 0]
        if not starts:
            break
        start, opening, closing = min(starts)
        end = line.find(closing, start + 2)
        if end < 0:  # no later opening of this kind can close either
            open_kinds.remove((opening, closing))
            position = start
            continue
        found.append(line[start:end + 2])
        position = end + 2
    return found


@lru_cache(maxsize=32)
def pending_marker(language: str, key: str) -> str:
    """The visible stand-in for a value a site has not provided yet, in the reader's language. Only the built-in
    catalogue is asked: the marker is part of the published text, so a repository's catalogue must not change it."""
    return Words(language).gettext("[to be provided: %(key)s]", key=key)


def shown_markers(policy: Policy, site_id: str, language: str) -> list[tuple[ResolvedSection, list[str]]]:
    """The sections readers of the site see with a pending value's marker in them, and those markers."""
    site = policy.site(site_id)
    if not site.pending:
        return []
    markers = [pending_marker(language, key) for key in site.pending]
    found = []
    for section in resolve(policy, site_id, language).sections:
        shown = [marker for marker in markers if marker in section.text or marker in section.heading]
        if shown:
            found.append((section, shown))
    return found


def _nested(flat_or_nested: Mapping[str, Any], pending: tuple[str, ...], language: str) -> dict[str, Any]:
    """Site variables with every pending key filled by a visible marker (tables on the way copied, so that the
    policy's own values never receive one language's marker)."""
    result: dict[str, Any] = dict(flat_or_nested)
    for key in pending:
        node = result
        *parents, last = key.split(".")
        for part in parents:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, Mapping) else {}
            node = node[part]
        node.setdefault(last, pending_marker(language, key))
    return result


class PlaceholderError(Exception):
    """A placeholder that cannot be filled: undefined, malformed, or failing when evaluated (`{{ 1/0 }}`)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def fill_placeholders(text: str, context: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> str:
    if "{{" not in text and "{%" not in text:
        return text
    try:
        return fill(text, context, limits.placeholder_chars)
    except Exception as exc:  # the sandbox turns policy text into code: any failure is the text's, not ours
        raise PlaceholderError(exc) from exc


def _shortened(text: str, most: int) -> str:
    return text if len(text) <= most else text[:most] + "…"


def _placeholder_problem(section: Section, site_id: str, context: Mapping[str, Any], error: PlaceholderError,
                         limits: Limits) -> Problem:
    """Pin a failed placeholder to its line and expression by filling the section one line at a time."""
    line, expression = section.location.line, ""
    for offset, text in enumerate(source_lines(section.heading_line + section.body)):
        for candidate in placeholders_in(text):
            try:
                fill_placeholders(candidate, context, limits)
            except PlaceholderError:
                line, expression = section.location.line + offset, _shortened(candidate, 80)
                break
        if expression:
            break
    exc = error.cause
    if isinstance(exc, UndefinedError) and expression:
        message = f"placeholder {expression} is not defined for site {site_id}"
        hint = f"define it under [sites.{site_id}] in policy.toml, or list it in that site's pending"
    else:
        detail = _shortened(str(getattr(exc, "message", None) or exc), 300)
        message = f"placeholder {expression or ''} cannot be filled: {detail}".replace("  ", " ")
        hint = ("fill it with less, or raise it with [limits] placeholder_chars = … in addendum.toml" if isinstance(exc, PlaceholderLimit)
                else "placeholders look like {{ site.contact.email }}")
    return Problem("error", section.location.file, line, message, hint, section=section.id, rule="undefined-placeholder")


def section_order(policy: Policy, language: str) -> list[Section]:
    """Sections in the default language's order, plus any only the requested language has, after their predecessor."""
    base = list(policy.documents[policy.default_language].sections)
    other = policy.documents.get(language)
    if other is None or language == policy.default_language:
        return base
    known = {s.id for s in base}
    # Each section follows one predecessor in `other`, so at most one section is placed after any other.
    following: dict[str | None, Section] = {}
    for index, section in enumerate(other.sections):
        if section.id not in known:
            following[other.sections[index - 1].id if index else None] = section
            known.add(section.id)
    if not following:
        return base
    ordered: list[Section] = []

    def place(after: str | None) -> None:
        while after in following:
            section = following.pop(after)
            ordered.append(section)
            after = section.id

    place(None)
    for section in base:
        ordered.append(section)
        place(section.id)
    return ordered


def _source_of(policy: Policy, site_id: str, language: str, section_id: str) -> tuple[Document, Section, bool, bool]:
    """The first of: the site's override in the language, in the default language; the section in the language, in the default."""
    site, default = policy.site(site_id), policy.default_language
    candidates = [(site.overrides.get(language), True), (site.overrides.get(default), True),
                  (policy.documents.get(language), False), (policy.documents.get(default), False)]
    for document, from_site in candidates:
        section = document.get(section_id) if document is not None else None
        if document is not None and section is not None:
            return document, section, from_site, document.language != language
    raise AssertionError(f"section {section_id} is in no document")  # section_order only yields ids some document has


def context_for(policy: Policy, site_id: str, language: str) -> dict[str, Any]:
    site = policy.site(site_id)
    controller = {"name": policy.controller.name, "address": policy.controller.address,
                  "email": policy.controller.email, "phone": policy.controller.phone}
    return {"site": _nested(site.variables, site.pending, language), "controller": controller}


def resolve(policy: Policy, site_id: str, language: str) -> ResolvedPolicy:
    """Resolve every section; raise PolicyFormatError listing every placeholder that cannot be filled."""
    site = policy.site(site_id)
    policy.require_language(language)
    context = context_for(policy, site_id, language)
    problems: list[Problem] = []
    resolved = []
    for skeleton in section_order(policy, language):
        document, section, from_site, fallback = _source_of(policy, site_id, language, skeleton.id)
        try:
            text = fill_placeholders(section.body, context, policy.limits)
            heading = fill_placeholders(section.heading, context, policy.limits)
        except PlaceholderError as exc:
            problems.append(_placeholder_problem(section, site_id, context, exc, policy.limits))
            continue
        if section.id == PREAMBLE_ID and not text.strip():
            continue
        resolved.append(ResolvedSection(section.id, heading, skeleton.level, skeleton.path, text,
                                        document.language, fallback,
                                        from_site, section.location))
    if problems:
        raise PolicyFormatError(problems)
    return ResolvedPolicy(policy.id, policy.title(language), site_id, site.name, language,
                          policy.locale(language), tuple(resolved))

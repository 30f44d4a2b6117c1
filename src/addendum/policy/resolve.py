"""Resolving a policy for one site and language: overrides, fallbacks and placeholders applied."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from addendum.errors import PolicyFormatError, Problem
from addendum.policy.markup import PREAMBLE_ID
from addendum.policy.model import Document, Location, Policy, Section

PLACEHOLDER = re.compile(r"\{\{.*?\}\}|\{%.*?%\}")
PENDING_MARKER = {"en": "[to be provided: {key}]", "nl": "[nog aan te vullen: {key}]"}


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


@lru_cache(maxsize=1)
def _sandbox() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def _nested(flat_or_nested: Mapping[str, Any], pending: tuple[str, ...], marker: str) -> dict[str, Any]:
    """Site variables with every pending key filled by a visible marker."""
    result: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in flat_or_nested.items()}
    for key in pending:
        node = result
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node.setdefault(last, marker.format(key=key))
    return result


class PlaceholderError(Exception):
    """A placeholder that cannot be filled: undefined, malformed, or failing when evaluated (`{{ 1/0 }}`)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def fill_placeholders(text: str, context: Mapping[str, Any]) -> str:
    if "{{" not in text and "{%" not in text:
        return text
    try:
        return _sandbox().from_string(text).render(**context)
    except Exception as exc:  # the sandbox turns policy text into code: any failure is the text's, not ours
        raise PlaceholderError(exc) from exc


def _placeholder_problem(section: Section, site_id: str, context: Mapping[str, Any], error: PlaceholderError) -> Problem:
    """Pin a failed placeholder to its line and expression by filling the section one line at a time."""
    line, expression = section.location.line, ""
    for offset, text in enumerate((section.heading_line + section.body).splitlines()):
        for candidate in PLACEHOLDER.findall(text):
            try:
                fill_placeholders(candidate, context)
            except PlaceholderError:
                line, expression = section.location.line + offset, candidate
                break
        if expression:
            break
    exc = error.cause
    if isinstance(exc, UndefinedError) and expression:
        message = f"placeholder {expression} is not defined for site {site_id}"
        hint = f"define it under [sites.{site_id}] in policy.toml, or list it in that site's pending"
    else:
        detail = getattr(exc, "message", None) or exc
        message = f"placeholder {expression or ''} cannot be filled: {detail}".replace("  ", " ")
        hint = "placeholders look like {{ site.contact.email }}"
    return Problem("error", section.location.file, line, message, hint, section=section.id, rule="undefined-placeholder")


def section_order(policy: Policy, language: str) -> list[Section]:
    """Sections in the default language's order, plus any only the requested language has, after their predecessor."""
    base = list(policy.documents[policy.default_language].sections)
    known = {s.id for s in base}
    other = policy.documents.get(language)
    if other is not None and language != policy.default_language:
        for index, section in enumerate(other.sections):
            if section.id in known:
                continue
            previous = other.sections[index - 1].id if index else None
            position = next((i + 1 for i, s in enumerate(base) if s.id == previous), 0)
            base.insert(position, section)
            known.add(section.id)
    return base


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
    marker = PENDING_MARKER.get(language, PENDING_MARKER["en"])
    controller = {"name": policy.controller.name, "address": policy.controller.address,
                  "email": policy.controller.email, "phone": policy.controller.phone}
    return {"site": _nested(site.variables, site.pending, marker), "controller": controller}


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
            text = fill_placeholders(section.body, context)
            heading = fill_placeholders(section.heading, context)
        except PlaceholderError as exc:
            problems.append(_placeholder_problem(section, site_id, context, exc))
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

"""Status: which sections are up to date, stale or missing in each language, and what is unpublished."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from addendum.compare.classify import Assessment, assess
from addendum.compare.reasons import reason_json
from addendum.history.ledger import PublishedVersion
from addendum.i18n import Words
from addendum.policy.markup import PREAMBLE_ID
from addendum.policy.model import Policy
from addendum.policy.resolve import section_order
from addendum.publish.parity import changed_languages

State = Literal["up-to-date", "stale", "missing"]


@dataclass(frozen=True)
class Column:
    site: str  # "" for the policy's own text
    language: str

    @property
    def label(self) -> str:
        return f"{self.site}/{self.language}" if self.site else self.language


@dataclass(frozen=True)
class Row:
    section_id: str
    ref: str
    heading: str
    cells: tuple[State | None, ...]  # one per column; None where a site does not override the section


@dataclass(frozen=True)
class PolicyStatus:
    policy_id: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    latest: PublishedVersion | None
    unpublished: Assessment | None  # the working tree against the latest version; None when nothing changed

    def count(self, state: State) -> int:
        return sum(cell == state for row in self.rows for cell in row.cells)

    def as_json(self, t: Words | None = None) -> dict[str, Any]:
        """The status as data; the unpublished changes' reasons as objects (compare.reasons.reason_json), their
        sentences in `t`'s language."""
        return {
            "policy": self.policy_id,
            "latest_version": self.latest.id if self.latest else None,
            "columns": [c.label for c in self.columns],
            "sections": [{"id": r.section_id, "ref": r.ref, "heading": r.heading,
                          "states": {c.label: s for c, s in zip(self.columns, r.cells, strict=True) if s is not None}}
                         for r in self.rows],
            "unpublished": None if self.unpublished is None else {
                "suggested": self.unpublished.level, "reasons": [reason_json(r, t) for r in self.unpublished.reasons],
                "changed_sections": sorted({c.ref for cs in self.unpublished.changesets for c in cs.changes})},
        }


def _last_changes(history: list[Policy], site: str) -> dict[tuple[str, str], int]:
    """(section id, language) → index in `history` of the last version that changed that text."""
    last: dict[tuple[str, str], int] = {}
    previous: Policy | None = None
    for index, policy in enumerate(history):
        for section_id, languages in changed_languages(previous, policy, site).items():
            for language in languages:
                last[(section_id, language)] = index
        previous = policy
    return last


def _state(policy: Policy, site: str, section_id: str, language: str, last: dict[tuple[str, str], int]) -> State | None:
    documents = policy.sites[site].overrides if site else policy.documents
    if not site and language not in documents:
        return "missing"
    if site and not any(doc.get(section_id) for doc in documents.values()):
        return None
    document = documents.get(language)
    if document is None or document.get(section_id) is None:
        return "missing"
    mine = last.get((section_id, language), -1)
    newest = max((i for (s, _), i in last.items() if s == section_id), default=-1)
    return "stale" if mine < newest else "up-to-date"


def status_of(current: Policy, history: list[Policy], versions: list[PublishedVersion]) -> PolicyStatus:
    """The status matrix of `current` (the working tree) against its published `history` (one Policy per version)."""
    policy_id = current.id
    unpublished = assess(history[-1], current) if history else assess(None, current)
    if history and unpublished.level == "none":
        unpublished_or_none: Assessment | None = None
    else:
        unpublished_or_none = unpublished
    history = [*history, current]
    columns = [Column("", lang) for lang in current.languages]
    columns += [Column(site.id, lang) for site in current.sites.values() if site.overrides for lang in current.languages]
    lasts = {site: _last_changes(history, site) for site in {c.site for c in columns}}
    rows = []
    for section in section_order(current, current.default_language):
        if section.id == PREAMBLE_ID and not section.body.strip():
            continue
        cells = tuple(_state(current, c.site, section.id, c.language, lasts[c.site]) for c in columns)
        rows.append(Row(section.id, section.ref, section.heading or section.id, cells))
    return PolicyStatus(policy_id, tuple(columns), tuple(rows), versions[-1] if versions else None, unpublished_or_none)

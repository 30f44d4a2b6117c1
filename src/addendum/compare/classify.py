"""The classify stage: materiality of every section change in a ChangeSet, and of a whole version."""

from __future__ import annotations

from dataclasses import dataclass, replace

from addendum.compare.materiality import Classification, SectionEdit, classify_section, classify_version, rules_from_policy
from addendum.compare.model import ChangeSet, SectionChange
from addendum.compare.reasons import FIRST_VERSION_REASON
from addendum.compare.sections import compare
from addendum.policy.model import Policy
from addendum.policy.notes import editor_notes
from addendum.policy.resolve import resolve


@dataclass(frozen=True)
class Assessment:
    """The suggested class of a version against its predecessor, over every site and language."""

    level: str
    reasons: tuple[str, ...]
    changesets: tuple[ChangeSet, ...]

    @property
    def material(self) -> bool:
        return self.level == "material"


FIRST_VERSION = Assessment("material", (FIRST_VERSION_REASON,), ())


def _edit(change: SectionChange, policy: Policy, language: str) -> SectionEdit:
    old, new = change.old, change.new
    return SectionEdit(
        ref=change.ref, section_id=change.id, kinds=frozenset(change.kinds),
        old_text=old.text if old else "", new_text=new.text if new else "",
        old_heading=old.heading if old else "", new_heading=new.heading if new else "",
        tags=policy.tags.get(change.id, ()), language=language,
    )


def classify_changeset(changeset: ChangeSet, policy: Policy) -> ChangeSet:
    """The ChangeSet with each changed section's suggested class and reasons filled in (tags from `policy`)."""
    rules = rules_from_policy(policy)
    notes = editor_notes(policy, changeset.language)
    sections = []
    verdicts: list[Classification] = []
    for change in changeset.sections:
        if change.changed:
            verdict = classify_section(_edit(change, policy, changeset.language), rules)
            verdicts.append(verdict)
            note = notes.get(change.id)
            change = replace(change, classification=verdict.level, reasons=verdict.reasons,
                             note=note.text if note else "", impact=note.impact if note else "")
        sections.append(change)
    overall = classify_version(verdicts)
    return replace(changeset, sections=tuple(sections), classification=overall.level, reasons=overall.reasons)


def classified_changes(old: Policy | None, new: Policy, site_id: str, language: str) -> ChangeSet:
    """What changed for one site and language between two versions (None: a first version, all added), each
    change with its suggested class and reasons (tags of the new version)."""
    after = resolve(new, site_id, language)
    before = resolve(old, site_id, language) if old is not None else replace(after, sections=())
    return classify_changeset(compare(before, after), new)


def assess(old: Policy | None, new: Policy) -> Assessment:
    """Compare and classify every site × language of `new` against `old` (None: a first version, all added)."""
    changesets = []
    for site_id in new.sites:
        for language in new.languages:
            known = old is not None and site_id in old.sites and language in old.languages
            changesets.append(classified_changes(old if known else None, new, site_id, language))
    overall = classify_version(Classification(c.classification or "none", c.reasons) for c in changesets)  # type: ignore[arg-type]
    return Assessment(overall.level, overall.reasons, tuple(changesets))

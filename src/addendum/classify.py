"""The classify stage: materiality of every section change in a ChangeSet, and of a whole version."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .diff import ChangeSet, SectionChange, compare
from .materiality import Classification, SectionEdit, classify_section, classify_version, rules_from_policy
from .policy import Policy
from .resolve import resolve


@dataclass(frozen=True)
class Assessment:
    """The suggested class of a version against its predecessor, over every site and language."""

    level: str
    reasons: tuple[str, ...]
    changesets: tuple[ChangeSet, ...]

    @property
    def material(self) -> bool:
        return self.level == "material"


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
    sections = []
    verdicts: list[Classification] = []
    for change in changeset.sections:
        if change.changed:
            verdict = classify_section(_edit(change, policy, changeset.language), rules)
            verdicts.append(verdict)
            change = replace(change, classification=verdict.level, reasons=verdict.reasons)
        sections.append(change)
    overall = classify_version(verdicts)
    return replace(changeset, sections=tuple(sections), classification=overall.level, reasons=overall.reasons)


def assess(old: Policy | None, new: Policy) -> Assessment:
    """Compare and classify every site × language of `new` against `old` (None: a first version, all added)."""
    changesets = []
    for site_id in new.sites:
        for language in new.languages:
            after = resolve(new, site_id, language)
            if old is not None and site_id in old.sites and language in old.languages:
                before = resolve(old, site_id, language)
            else:
                before = replace(after, sections=())
            changesets.append(classify_changeset(compare(before, after), new))
    overall = classify_version(Classification(c.classification or "none", c.reasons) for c in changesets)  # type: ignore[arg-type]
    return Assessment(overall.level, overall.reasons, tuple(changesets))

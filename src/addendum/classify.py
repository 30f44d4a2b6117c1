"""The classify stage: materiality of every section change in a ChangeSet, and of a whole version."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .config import Repo
from .diff import ChangeSet, PolicyDiff, SectionChange, compare, diff_policy
from .materiality import Classification, SectionEdit, classify_section, classify_version, rules_from_policy
from .policy import Policy
from .resolve import resolve
from .versions import VersionLog, load_version, published_versions, version_log


@dataclass(frozen=True)
class Assessment:
    """The suggested class of a version against its predecessor, over every site and language."""

    level: str
    reasons: tuple[str, ...]
    changesets: tuple[ChangeSet, ...]

    @property
    def material(self) -> bool:
        return self.level == "material"


FIRST_VERSION = Assessment("material", ("material: first published version: all of its text is new to readers",), ())


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


def classified_diff(repo: Repo, policy_id: str, from_ref: str | None = None, to_ref: str | None = None,
                    site_id: str | None = None, language: str | None = None) -> PolicyDiff:
    """`addendum diff`: the comparison with each change's suggested class and reasons (tags of the TO side)."""
    result = diff_policy(repo, policy_id, from_ref, to_ref, site_id, language)
    return replace(result, changesets=tuple(classify_changeset(c, result.new.policy) for c in result.changesets))


def suggestions(repo: Repo, policy_id: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each published version's suggested class and reasons: as recorded when it was published, or worked out again."""
    versions = published_versions(repo, policy_id)
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for index, version in enumerate(versions):
        if version.extra.get("suggested"):
            found[version.id] = (str(version.extra["suggested"]), tuple(version.extra.get("reasons", ())))
        elif index == 0:
            found[version.id] = (FIRST_VERSION.level, FIRST_VERSION.reasons)
        else:
            assessment = assess(load_version(repo, versions[index - 1]), load_version(repo, version))
            found[version.id] = (assessment.level, assessment.reasons)
    return found


def version_log_with_suggestions(repo: Repo, policy_id: str) -> VersionLog:
    """`addendum log`: the versions with their suggested class and its reasons next to the editor's."""
    return replace(version_log(repo, policy_id), suggestions=suggestions(repo, policy_id))

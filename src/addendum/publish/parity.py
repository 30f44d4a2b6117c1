"""Language parity: which languages changed a section between two versions, and which translations fell behind."""

from __future__ import annotations

from dataclasses import dataclass

from addendum.policy.model import Document, Policy
from addendum.policy.resolve import normalise


@dataclass(frozen=True)
class StaleTranslation:
    """A section that changed in some languages between two versions but not in others that have it."""

    section_id: str
    ref: str
    changed_in: tuple[str, ...]
    stale_in: tuple[str, ...]
    site: str = ""  # "" for the policy's own text, else the site whose override this is

    def describe(self) -> str:
        where = f" (site {self.site})" if self.site else ""
        return (f"{self.ref}{where} changed in {', '.join(self.changed_in)} "
                f"but not in {', '.join(self.stale_in)}")


def _body(document: Document | None, section_id: str) -> str | None:
    section = document.get(section_id) if document is not None else None
    return normalise(section.heading + "\n" + section.body).strip() if section is not None else None


def _documents(policy: Policy | None, site: str) -> dict[str, Document]:
    if policy is None:
        return {}
    if not site:
        return dict(policy.documents)
    return dict(policy.sites[site].overrides) if site in policy.sites else {}


def _ref(policy: Policy, section_id: str) -> str:
    """A section's path as the policy text places it (an override file holds the section alone)."""
    for document in policy.documents.values():
        section = document.get(section_id)
        if section is not None:
            return section.ref
    return "§" + section_id


def changed_languages(old: Policy | None, new: Policy, site: str = "") -> dict[str, set[str]]:
    """Section id → the languages whose text of it differs between `old` and `new` (added counts, removed does not)."""
    before, after = _documents(old, site), _documents(new, site)
    changed: dict[str, set[str]] = {}
    for language, document in after.items():
        for section in document.sections:
            if _body(document, section.id) != _body(before.get(language), section.id):
                changed.setdefault(section.id, set()).add(language)
    return changed


def stale_translations(old: Policy | None, new: Policy) -> list[StaleTranslation]:
    """Sections changed in one language but not in another that has them, in the policy text and in site overrides."""
    stale: list[StaleTranslation] = []
    for site in ("", *new.sites):
        documents = _documents(new, site)
        for section_id, languages in changed_languages(old, new, site).items():
            behind = sorted(lang for lang, doc in documents.items() if lang not in languages and doc.get(section_id) is not None)
            if behind:
                stale.append(StaleTranslation(section_id, _ref(new, section_id), tuple(sorted(languages)), tuple(behind), site))
    return stale

"""What changed between two states of a policy's files: sections added, removed, changed or moved."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from addendum.policy.markup import PREAMBLE_ID
from addendum.policy.model import Section, parse_document

ChangeKind = Literal["added", "removed", "changed", "moved"]

@dataclass(frozen=True)
class SourceChange:
    """A section (or policy.toml) that differs between two states of a policy's files."""

    file: str  # relative to the policy folder: en.md, sites/cavallo/en.md, policy.toml
    language: str
    site: str  # "" for the policy's own text
    section: str  # "" for a change to policy.toml
    ref: str  # §path.of.ids
    kind: ChangeKind

    def describe(self) -> str:
        where = f"{self.ref} ({self.language}{', site ' + self.site if self.site else ''})" if self.section else self.file
        return f"{self.kind:<8} {where}"

    def as_json(self) -> dict[str, str]:
        return {"file": self.file, "language": self.language, "site": self.site, "section": self.section,
                "ref": self.ref, "kind": self.kind}



def _file_language(name: str) -> tuple[str, str]:
    """(language, site) of a Markdown file's path relative to the policy folder."""
    parts = name.removesuffix(".md").split("/")
    return (parts[-1], parts[1]) if len(parts) == 3 else (parts[0], "")


def source_changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[SourceChange]:
    """Sections added, removed, changed or moved, per Markdown file; policy.toml as a whole."""
    changes: list[SourceChange] = []
    for name in sorted(set(old) | set(new), key=lambda n: (n.count("/"), n != "policy.toml", n)):
        if old.get(name) == new.get(name):
            continue
        if not name.endswith(".md"):
            kind: ChangeKind = "added" if name not in old else "removed" if name not in new else "changed"
            changes.append(SourceChange(name, "", "", "", "", kind))
            continue
        language, site = _file_language(name)
        before = _sections(old.get(name), language, name)
        after = _sections(new.get(name), language, name)
        for section_id, section in after.items():
            previous = before.get(section_id)
            if previous is None:
                kind = "added"
            elif (previous.heading, previous.body) != (section.heading, section.body):
                kind = "changed"
            elif (previous.path, previous.level) != (section.path, section.level):
                kind = "moved"
            else:
                continue
            changes.append(SourceChange(name, language, site, section_id, section.ref, kind))
        changes.extend(SourceChange(name, language, site, section_id, section.ref, "removed")
                       for section_id, section in before.items() if section_id not in after)
    return changes


def _sections(text: str | None, language: str, name: str) -> dict[str, Section]:
    if text is None:
        return {}
    document, _ = parse_document(text, language, name)
    return {s.id: s for s in document.sections if s.id != PREAMBLE_ID or s.body.strip()}

"""The comparison's data: segments of text, the two sides of a section, section changes and the change set."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from addendum.compare.reasons import reason_json
from addendum.i18n import Words

Op = Literal["equal", "delete", "insert"]
Kind = Literal["added", "removed", "moved", "renamed", "modified", "unchanged"]
KINDS: tuple[Kind, ...] = ("added", "removed", "moved", "renamed", "modified", "unchanged")
# A word: letters, digits and combining marks; one ideograph is a word of its own.
IDEOGRAPHS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
WORD = re.compile(rf"[^\W{IDEOGRAPHS}]+")



@dataclass(frozen=True)
class Segment:
    """A run of text that both versions share (`equal`), or that only the old (`delete`) or new (`insert`) has.

    `formatting` marks a deleted or inserted run whose replacement changes only whitespace, punctuation,
    quote style or case; `moved` names the section (ref) where the same words were inserted (for a delete)
    or deleted (for an insert), so moved text is not mistaken for new text.
    """

    op: Op
    text: str
    formatting: bool = False
    moved: str = ""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "text": self.text}
        if self.formatting:
            out["formatting"] = True
        if self.moved:
            out["moved"] = self.moved
        return out


@dataclass(frozen=True)
class SectionSide:
    """A section as one of the two versions has it: where it stood, where it came from, what it said."""

    id: str
    path: tuple[str, ...]
    heading: str
    level: int
    position: int  # 1-based order in its version
    file: str
    line: int
    language: str
    fallback: bool
    text: str  # normalised (NFC, LF), without leading or trailing blank lines

    @property
    def ref(self) -> str:
        return "§" + ".".join(self.path)

    @property
    def parent(self) -> str | None:
        return self.path[-2] if len(self.path) > 1 else None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "ref": self.ref, "path": list(self.path), "heading": self.heading, "level": self.level,
                "position": self.position, "file": self.file, "line": self.line, "language": self.language,
                "fallback": self.fallback}


@dataclass(frozen=True)
class SectionChange:
    """What happened to one section between the two versions.

    `kinds` is a set: a section can be moved and renamed and modified at once. `added`, `removed` and
    `unchanged` each stand alone. `heading` and `text` are the word-level segments: the equal and deleted
    segments rebuild the old side exactly, the equal and inserted segments the new side.
    """

    kinds: frozenset[Kind]
    old: SectionSide | None
    new: SectionSide | None
    heading: tuple[Segment, ...]
    text: tuple[Segment, ...]
    formatting: bool = False
    matched_by: Literal["id", "similarity", ""] = ""
    split_from: str = ""   # ref of the old section this added section took most of its text from
    merged_into: str = ""  # ref of the new section that took most of this removed section's text
    classification: str | None = None  # materiality, filled by a later stage
    reasons: tuple[str, ...] = ()
    note: str = ""  # the editor's note on this change (policy.toml [notes]), shown in place of the reasons
    impact: str = ""  # and its likely impact, in the editor's words

    @property
    def id(self) -> str:
        side = self.new or self.old
        assert side is not None
        return side.id

    @property
    def ref(self) -> str:
        side = self.new or self.old
        assert side is not None
        return side.ref

    @property
    def anchor(self) -> str:
        """The fragment a redline gives this section: `change-<section id>`."""
        return f"change-{self.id}"

    @property
    def changed(self) -> bool:
        return "unchanged" not in self.kinds

    def has(self, kind: Kind) -> bool:
        return kind in self.kinds

    @property
    def ordered_kinds(self) -> tuple[Kind, ...]:
        return tuple(k for k in KINDS if k in self.kinds)

    def words(self, op: Op) -> int:
        """How many words the deleted or inserted segments of heading and text hold."""
        return sum(len(WORD.findall(s.text)) for s in (*self.heading, *self.text) if s.op == op)

    def old_text(self) -> str:
        return rebuild(self.text, "old")

    def new_text(self) -> str:
        return rebuild(self.text, "new")

    def as_json(self, t: Words | None = None) -> dict[str, Any]:
        """The section change as data; its reasons' sentences in `t`'s language (English without it)."""
        out: dict[str, Any] = {
            "id": self.id, "ref": self.ref, "anchor": self.anchor, "kinds": list(self.ordered_kinds),
            "formatting": self.formatting, "matched_by": self.matched_by or None,
            "split_from": self.split_from or None, "merged_into": self.merged_into or None,
            "classification": self.classification, "reasons": [reason_json(r, t) for r in self.reasons],
            "old": self.old.as_json() if self.old else None, "new": self.new.as_json() if self.new else None,
        }
        if self.changed:
            out["words_deleted"] = self.words("delete")
            out["words_inserted"] = self.words("insert")
            out["heading"] = [s.as_json() for s in self.heading]
            out["text"] = [s.as_json() for s in self.text]
        return out


@dataclass(frozen=True)
class ChangeSet:
    """Every section of two versions of one policy for one site and language, in reading order.

    The order is the new version's, with each removed section placed after the section that preceded it in
    the old version. Unchanged sections are included (a redline shows them); `changes` are the others.
    """

    policy_id: str
    site: str
    site_name: str
    language: str
    locale: str
    old_title: str
    new_title: str
    sections: tuple[SectionChange, ...]
    classification: str | None = None  # materiality of the whole change, filled by a later stage
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def changes(self) -> tuple[SectionChange, ...]:
        return tuple(s for s in self.sections if s.changed)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes) or self.old_title != self.new_title

    def counts(self) -> dict[Kind, int]:
        """How many sections have each kind (a moved and modified section counts for both)."""
        counted: Counter[Kind] = Counter(kind for s in self.sections for kind in s.kinds)
        return {kind: counted[kind] for kind in KINDS}

    def find(self, section_id: str) -> SectionChange | None:
        return next((s for s in self.sections if s.id == section_id or (s.old and s.old.id == section_id)), None)

    def as_json(self, *, unchanged: bool = True, t: Words | None = None) -> dict[str, Any]:
        """The change set as data; reasons' sentences in `t`'s language (the change set's own, as the caller gives it)."""
        return {
            "format": "addendum-changeset/2",
            "policy": self.policy_id, "site": self.site, "language": self.language,
            "title": {"old": self.old_title, "new": self.new_title},
            "classification": self.classification, "reasons": [reason_json(r, t) for r in self.reasons],
            "counts": self.counts(),
            "sections": [s.as_json(t) for s in self.sections if unchanged or s.changed],
        }


def rebuild(segments: Iterable[Segment], side: Literal["old", "new"]) -> str:
    """The text one side of a diff had: equal segments plus the deleted (old) or inserted (new) ones."""
    skip = "insert" if side == "old" else "delete"
    return "".join(s.text for s in segments if s.op != skip)

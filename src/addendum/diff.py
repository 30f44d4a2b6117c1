"""Comparing two resolved versions of a policy: sections matched and classified, their text diffed word by word."""

from __future__ import annotations

import operator
import os
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal

import diff_match_patch as dmp_module

from .config import Repo
from .errors import HistoryError, UsageError
from .ids import require_id
from .markup import INVISIBLE
from .resolve import ResolvedPolicy, ResolvedSection, normalise, resolve
from .versions import LATEST, Snapshot, published_versions, snapshot

Op = Literal["equal", "delete", "insert"]
Kind = Literal["added", "removed", "moved", "renamed", "modified", "unchanged"]
KINDS: tuple[Kind, ...] = ("added", "removed", "moved", "renamed", "modified", "unchanged")
Engine = Literal["fast", "python"]

# Texts this many tokens long are first compared line by line, then word by word inside the lines that
# changed: exact, and it keeps the cost near-linear on very long texts without a deadline.
PARAGRAPH_PREPASS_TOKENS = 20_000
# Texts of at least this many tokens whose length times their edits reaches SPACED_FROM_WORK are compared
# word by word with their spaces (see `_diff_units`): there the engine's cost dominates.
SPACED_FROM_TOKENS = 400
SPACED_FROM_WORK = 50_000
# Sections with at least this many characters between what both texts begin and end with are heavily edited;
# when such sections hold PARALLEL_CHARACTERS in all, they are compared on several threads.
HEAVY_EDIT_CHARACTERS = 500
PARALLEL_CHARACTERS = 20_000
WORKERS = os.cpu_count() or 1
# A removed and an added section are the same section (id changed, e.g. an id derived from a renamed heading)
# when their texts are this similar, or their headings and texts together are.
SAME_TEXT_SIMILARITY = 0.75
SAME_HEADING_SIMILARITY = 0.5
SIMILAR_TEXT_WITH_HEADING = 0.4
# Share of a section's word triples that must come from one other section to call it a split or a merge.
SPLIT_MERGE_CONTAINMENT = 0.5
# A deleted run and an inserted run of at least this many words with the same words are reported as moved text.
MOVED_TEXT_MIN_WORDS = 8


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

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "ref": self.ref, "anchor": self.anchor, "kinds": list(self.ordered_kinds),
            "formatting": self.formatting, "matched_by": self.matched_by or None,
            "split_from": self.split_from or None, "merged_into": self.merged_into or None,
            "classification": self.classification, "reasons": list(self.reasons),
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

    def as_json(self, *, unchanged: bool = True) -> dict[str, Any]:
        return {
            "format": "addendum-changeset/1",
            "policy": self.policy_id, "site": self.site, "language": self.language,
            "title": {"old": self.old_title, "new": self.new_title},
            "classification": self.classification, "reasons": list(self.reasons),
            "counts": self.counts(),
            "sections": [s.as_json() for s in self.sections if unchanged or s.changed],
        }


def rebuild(segments: Iterable[Segment], side: Literal["old", "new"]) -> str:
    """The text one side of a diff had: equal segments plus the deleted (old) or inserted (new) ones."""
    skip = "insert" if side == "old" else "delete"
    return "".join(s.text for s in segments if s.op != skip)


# ---------------------------------------------------------------------------------------------------------
# Words: a token is a word (letters, digits and combining marks, with inner apostrophes, hyphens and dots),
# one ideograph, a run of whitespace, or one other character with its modifiers. A hunk never splits a word.

IDEOGRAPHS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
EMOJI_MODIFIERS = "\ufe0e\ufe0f\u20e3\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f"
WORD = re.compile(rf"[^\W{IDEOGRAPHS}]+")
QUOTES = str.maketrans({"‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "`": "'", "´": "'",
                        "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"', "«": '"', "»": '"'})


@lru_cache(maxsize=1)
def _marks() -> str:
    """Every combining mark as a regex class body, so that a word keeps its accents and vowel signs."""
    ranges: list[tuple[int, int]] = []
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code))[0] == "M":
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


@lru_cache(maxsize=2)
def _token_pattern(with_marks: bool) -> re.Pattern[str]:
    """Tokens; the pattern that knows combining marks is slower, so it is used only on text that has some."""
    marks = _marks() if with_marks else ""
    letter = rf"(?:[^\W{IDEOGRAPHS}]|[{marks}])" if with_marks else rf"[^\W{IDEOGRAPHS}]"
    word = rf"{letter}+(?:['’.,\-]{letter}+)*"
    other = rf"(?:[\U0001f1e6-\U0001f1ff]{{2}}|.)(?:[{marks}{EMOJI_MODIFIERS}]|\u200d.)*"
    return re.compile(rf"[{IDEOGRAPHS}]|{word}|\s+|{other}", re.DOTALL)


@lru_cache(maxsize=1)
def _has_marks() -> Callable[[str], re.Match[str] | None]:
    return re.compile(f"[{_marks()}{EMOJI_MODIFIERS}\u200d]").search


def tokens(text: str) -> list[str]:
    """Split text into word, space and punctuation tokens; joining them gives the text back."""
    with_marks = not text.isascii() and _has_marks()(text) is not None
    return _token_pattern(with_marks).findall(text)


# ---------------------------------------------------------------------------------------------------------
# The engine: diff-match-patch over token codes (one character per distinct token, like its line mode).

class _PythonDiff(dmp_module.diff_match_patch):  # type: ignore[misc]
    """The reference engine, without a deadline."""

    def __init__(self) -> None:
        super().__init__()
        self.Diff_Timeout = 0.0  # never degrade: a deadline turns a hard diff into "delete all, insert all"


_PYTHON = _PythonDiff()


def _python_engine(a: str, b: str) -> list[tuple[int, str]]:
    diffs: list[tuple[int, str]] = _PYTHON.diff_main(a, b, False)
    return diffs


def _fast_engine(a: str, b: str) -> list[tuple[int, str]]:
    import fast_diff_match_patch

    diffs: list[tuple[int, str]] = []
    i = j = 0
    # No deadline (timelimit=0). No cleanup: its lengths count codes, `_absorb_small_equalities` counts words.
    for op, length in fast_diff_match_patch.diff(a, b, timelimit=0, checklines=False, cleanup="No", counts_only=True):
        if op == "=":
            diffs.append((0, a[i:i + length]))
            i, j = i + length, j + length
        elif op == "-":
            diffs.append((-1, a[i:i + length]))
            i += length
        else:
            diffs.append((1, b[j:j + length]))
            j += length
    return diffs


# Each engine diffs two code strings into diff-match-patch diffs (merged, not yet cleaned), without a deadline.
ENGINES: dict[Engine, Callable[[str, str], list[tuple[int, str]]]] = {"fast": _fast_engine, "python": _python_engine}


@lru_cache(maxsize=1)
def default_engine() -> Engine:
    """The compiled port when it is installed (benchmarks/bench_diff.py shows it wins), else the reference."""
    try:
        import fast_diff_match_patch  # noqa: F401
    except ImportError:
        return "python"
    return "fast"


# Codes for spaces within a line are taken from the last Unicode plane, so that a word and the spaces after it
# can be found in a code string by a regular expression.
SPACE_CODES = 0x100000
_WORD_WITH_SPACE = re.compile("[^\U00100000-\U0010ffff][\U00100000-\U0010ffff]?|[\U00100000-\U0010ffff]")


class _Codebook:
    """Distinct tokens ↔ single characters, so diff-match-patch compares whole tokens.

    With `spaces_apart`, spaces within a line get codes from SPACE_CODES on, and everything else below it.
    """

    def __init__(self, *, spaces_apart: bool = False) -> None:
        self.codes: dict[str, str] = {}
        self.tokens: dict[int, str] = {}
        self.spaces_apart = spaces_apart
        self.spaces = 0

    def encode(self, items: Sequence[str]) -> str:
        codes, table = self.codes, self.tokens
        new = dict.fromkeys(items).keys() - codes.keys()
        spaces = [item for item in new if item.isspace() and "\n" not in item] if self.spaces_apart else []
        others = [item for item in new if item not in spaces] if spaces else list(new)
        self._number(others, len(table) - self.spaces, SPACE_CODES if self.spaces_apart else sys.maxunicode + 1)
        self._number(spaces, SPACE_CODES + self.spaces, sys.maxunicode + 1)
        self.spaces += len(spaces)
        return "".join(map(codes.__getitem__, items))

    def _number(self, items: list[str], start: int, limit: int) -> None:
        if start + len(items) > limit:
            raise UsageError("a text has more distinct words than can be compared at once",
                             "split the section into smaller sections")
        numbers = range(start, start + len(items))
        self.codes.update(zip(items, map(chr, numbers), strict=True))
        self.tokens.update(zip(numbers, items, strict=True))

    def decode(self, codes: str) -> str:
        return "".join(map(self.tokens.__getitem__, map(ord, codes)))


def _hunks(diffs: list[tuple[int, str]]) -> tuple[str, list[list[str]]]:
    """Diffs as the leading equality and a list of [deleted, inserted, equality after]."""
    lead = ""
    hunks: list[list[str]] = []
    deleted = inserted = ""
    for op, text in [*diffs, (0, "")]:
        if op == -1:
            deleted += text
        elif op == 1:
            inserted += text
        elif deleted or inserted:
            hunks.append([deleted, inserted, text])
            deleted = inserted = ""
        elif hunks:
            hunks[-1][2] += text
        else:
            lead += text
    return lead, hunks


def _factor(diffs: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Tokens that begin or end both sides of a replacement are given back to the equalities around it."""
    lead, hunks = _hunks(diffs)
    out = [(0, lead)]
    for deleted, inserted, after in hunks:
        if not deleted or not inserted:
            out.extend(((-1, deleted), (1, inserted), (0, after)))
            continue
        shared = _PYTHON.diff_commonPrefix(deleted, inserted) if deleted[0] == inserted[0] else 0
        out.append((0, deleted[:shared]))
        deleted, inserted = deleted[shared:], inserted[shared:]
        shared = _PYTHON.diff_commonSuffix(deleted, inserted) if deleted and inserted and deleted[-1] == inserted[-1] else 0
        if shared:
            after = deleted[-shared:] + after
            deleted, inserted = deleted[:-shared], inserted[:-shared]
        out.extend(((-1, deleted), (1, inserted), (0, after)))
    merged: list[tuple[int, str]] = []
    for op, text in out:
        if text and merged and merged[-1][0] == op:
            merged[-1] = (op, merged[-1][1] + text)
        elif text:
            merged.append((op, text))
    return merged


def _absorb_small_equalities(diffs: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Semantic cleanup: an equality no longer than the larger side of the edits on each side of it becomes
    part of one edit, so a diff reads as a few replacements rather than a scatter of coincidental matches
    (diff-match-patch's semantic cleanup)."""
    lead, hunks = _hunks(diffs)
    kept: list[list[str]] = []
    for hunk in hunks:
        while kept and len(kept[-1][2]) <= min(max(map(len, kept[-1][:2])), max(map(len, hunk[:2]))):
            previous = kept.pop()
            hunk = [previous[0] + previous[2] + hunk[0], previous[1] + previous[2] + hunk[1], hunk[2]]
        kept.append(hunk)
    return [(0, lead), *((op, text) for hunk in kept for op, text in zip((-1, 1, 0), hunk, strict=True))]


def _score(left: str, right: str, book: _Codebook) -> int:
    """How good a hunk edge between two code strings is: paragraph > line > space > punctuation."""
    if not left or not right:
        return 6
    before, after = book.tokens[ord(left[-1])], book.tokens[ord(right[0])]
    if _blank_line(before) or _blank_line(after):
        return 5
    if "\n" in before or "\n" in after:
        return 4
    if before[-1].isspace() or after[0].isspace():
        return 2
    return 1 if not WORD.match(before) or not WORD.match(after) else 0


def _blank_line(token: str) -> bool:
    return token.count("\n") > 1 and token.isspace()


def _align(diffs: list[tuple[int, str]], book: _Codebook) -> None:
    """Slide each lone edit between two equalities to the token edge that reads best (diff-match-patch's
    semantic-lossless pass, scored on tokens instead of characters)."""
    pointer = 1
    while pointer < len(diffs) - 1:
        if diffs[pointer - 1][0] == 0 and diffs[pointer + 1][0] == 0:
            eq1, edit, eq2 = diffs[pointer - 1][1], diffs[pointer][1], diffs[pointer + 1][1]
            common = _PYTHON.diff_commonSuffix(eq1, edit)
            if common:
                shared = edit[-common:]
                eq1, edit, eq2 = eq1[:-common], shared + edit[:-common], shared + eq2
            best = (eq1, edit, eq2)
            best_score = _score(eq1, edit, book) + _score(edit, eq2, book)
            while edit and eq2 and edit[0] == eq2[0]:
                eq1, edit, eq2 = eq1 + edit[0], edit[1:] + eq2[0], eq2[1:]
                score = _score(eq1, edit, book) + _score(edit, eq2, book)
                if score >= best_score:  # ties go right: "is {+very +}important"
                    best, best_score = (eq1, edit, eq2), score
            if diffs[pointer - 1][1] != best[0]:
                diffs[pointer - 1:pointer + 2] = [d for d in ((0, best[0]), (diffs[pointer][0], best[1]), (0, best[2]))
                                                  if d[1] or d[0] != 0]
                if not best[0]:
                    pointer -= 1
        pointer += 1


def _lines(items: Sequence[str]) -> list[str]:
    """Tokens grouped into lines (a whitespace token holding a line break ends one), for the long-text pre-pass."""
    units, current = [], []
    for item in items:
        current.append(item)
        if "\n" in item and item.isspace():
            units.append("".join(current))
            current = []
    if current:
        units.append("".join(current))
    return units


def _diff_units(old: Sequence[str], new: Sequence[str], engine: Engine, *, spaced: bool) -> list[tuple[Op, str]]:
    """Diff two lists of units (tokens, or lines) as wholes; returns runs of joined text.

    `spaced`: on heavily edited text, the engine compares each word with the spaces that follow it as one
    unit, half as many to compare; the cleanup and the alignment then work on the tokens again, so a hunk
    edge can still fall between a word and its space, and a re-wrapped line changes a space, not the word.
    """
    book = _Codebook(spaces_apart=spaced)
    a, b = book.encode(old), book.encode(new)
    if not spaced or not _heavily_edited(a, b):
        diffs = ENGINES[engine](a, b)
    else:
        units = _Codebook()
        a_units, b_units = units.encode(_WORD_WITH_SPACE.findall(a)), units.encode(_WORD_WITH_SPACE.findall(b))
        expansion = {ord(code): unit for unit, code in units.codes.items()}
        diffs = [(op, text.translate(expansion)) for op, text in ENGINES[engine](a_units, b_units)]
    diffs = _factor(_absorb_small_equalities(_factor(diffs)))
    _align(diffs, book)
    names: dict[int, Op] = {0: "equal", -1: "delete", 1: "insert"}
    return [(names[op], book.decode(text)) for op, text in diffs if text]


def _heavily_edited(a: str, b: str) -> bool:
    """Whether the engine could spend long on two code strings: its work grows with their length times the
    edits, and the pairs of neighbouring tokens that only one side has are a cheap measure of the edits."""
    size = len(a) + len(b)
    if size < SPACED_FROM_TOKENS:
        return False
    return size * len(set(map(operator.add, a, a[1:])).symmetric_difference(map(operator.add, b, b[1:]))) >= SPACED_FROM_WORK


def _diff_tokens(old: list[str], new: list[str], engine: Engine) -> list[tuple[Op, str]]:
    if len(old) + len(new) <= 2 * PARAGRAPH_PREPASS_TOKENS:
        return _diff_units(old, new, engine, spaced=True)
    # Long text: match whole lines first, then diff word by word (never by deadline) where lines differ.
    out: list[tuple[Op, str]] = []
    pending = {"delete": "", "insert": ""}
    for op, text in [*_diff_units(_lines(old), _lines(new), engine, spaced=False), ("equal", "")]:
        if op != "equal":
            pending[op] += text
            continue
        if pending["delete"] and pending["insert"]:
            out.extend(_diff_units(tokens(pending["delete"]), tokens(pending["insert"]), engine, spaced=True))
        else:
            out.extend((kind, pending[kind]) for kind in ("delete", "insert") if pending[kind])
        pending = {"delete": "", "insert": ""}
        out.append((op, text))
    return out


def _merge(runs: list[tuple[Op, str]]) -> list[tuple[Op, str]]:
    """Adjacent equal runs joined, and between two equal runs one deletion followed by one insertion."""
    merged: list[tuple[Op, str]] = []
    pending = {"delete": "", "insert": ""}
    for op, text in [*runs, ("equal", "")]:
        if op != "equal":
            pending[op] += text
            continue
        merged.extend((kind, pending[kind]) for kind in ("delete", "insert") if pending[kind])
        pending = {"delete": "", "insert": ""}
        if text and merged and merged[-1][0] == "equal":
            merged[-1] = ("equal", merged[-1][1] + text)
        elif text:
            merged.append((op, text))
    return merged


_OUTSIDE_NUMBERS = re.compile(r"(?<!\d)[\W_]+|[\W_]+(?!\d)")


def formatting_key(text: str) -> str:
    """What is left of a text once whitespace, punctuation, quote style and case are set aside.

    Punctuation between two digits stays (3.5 and 35 are different numbers), and so do invisible characters.
    """
    text = text.translate(QUOTES).casefold()
    if INVISIBLE.search(text) is None:
        return _OUTSIDE_NUMBERS.sub("", text)

    def kept(match: re.Match[str]) -> str:
        start, end = match.start(), match.end()
        if start > 0 and end < len(text) and text[start - 1].isdigit() and text[end].isdigit():
            return match.group().strip() or " "
        return "".join(INVISIBLE.findall(match.group()))

    return re.sub(r"[\W_]+", kept, text)


def word_diff(old: str, new: str, engine: Engine | None = None) -> tuple[Segment, ...]:
    """The word-level diff of two texts (normalised first), semantically cleaned, formatting-only hunks marked."""
    old, new = normalise(old), normalise(new)
    if old == new:
        return (Segment("equal", old),) if old else ()
    # Whole lines both texts begin or end with are left out of the comparison: most edits touch a few lines.
    start = _prefix_cut(old, _PYTHON.diff_commonPrefix(old, new))
    end = _suffix_cut(old, _PYTHON.diff_commonSuffix(old, new))
    if start + end > min(len(old), len(new)):
        end = 0
    middle = _diff_tokens(tokens(old[start:len(old) - end]), tokens(new[start:len(new) - end]), engine or default_engine())
    return _mark_formatting(_merge([("equal", old[:start]), *middle, ("equal", old[len(old) - end:])]))


def _prefix_cut(text: str, shared: int) -> int:
    """The last start of a line inside the first `shared` characters that begins with a word or punctuation:
    a token edge in both texts, with the same character after it."""
    newline = text.rfind("\n", 0, shared - 1) if shared > 1 else -1
    while newline >= 0 and text[newline + 1].isspace():
        newline = text.rfind("\n", 0, newline)
    return newline + 1


def _suffix_cut(text: str, shared: int) -> int:
    """How many characters of the last `shared` follow the first such line start inside them."""
    start = text.find("\n", len(text) - shared) + 1
    while 0 < start < len(text) and text[start].isspace():
        start = text.find("\n", start) + 1
    return len(text) - start if 0 < start < len(text) else 0


def _mark_formatting(runs: list[tuple[Op, str]]) -> tuple[Segment, ...]:
    """Mark each hunk (a deletion and/or insertion between equal runs) that changes only formatting."""
    segments: list[Segment] = []
    index = 0
    while index < len(runs):
        op, text = runs[index]
        if op == "equal":
            segments.append(Segment(op, text))
            index += 1
            continue
        end = index
        while end < len(runs) and runs[end][0] != "equal":
            end += 1
        hunk = runs[index:end]
        deleted = "".join(t for o, t in hunk if o == "delete")
        inserted = "".join(t for o, t in hunk if o == "insert")
        same = _same_first_letter(deleted, inserted)
        if same:
            before = _edge(runs[index - 1][1], last=True) if index else ""
            after = _edge(runs[end][1], last=False) if end < len(runs) else ""
            same = formatting_key(before + deleted + after) == formatting_key(before + inserted + after)
        segments.extend(Segment(o, t, formatting=same) for o, t in hunk)
        index = end
    return tuple(segments)


_LETTER = re.compile(r"[^\W_]")


def _same_first_letter(deleted: str, inserted: str) -> bool:
    """A quick test that most real edits fail: a formatting-only change keeps every letter and digit, so the
    first one on both sides is the same (up to case)."""
    first_deleted, first_inserted = _LETTER.search(deleted), _LETTER.search(inserted)
    if first_deleted is None or first_inserted is None:
        return first_deleted is first_inserted
    return first_deleted.group().casefold()[0] == first_inserted.group().casefold()[0]


def _edge(text: str, last: bool) -> str:
    """The token of an equal run next to a hunk: the context that decides whether the hunk is formatting."""
    found = tokens(text[-64:] if last else text[:64])
    return (found[-1] if last else found[0]) if found else ""


# ---------------------------------------------------------------------------------------------------------
# Sections: matched by id, then by heading and text similarity; moves, renames, splits and merges found.

def _side(section: ResolvedSection, position: int) -> SectionSide:
    return SectionSide(section.id, section.path, normalise(section.heading), section.level, position,
                       section.location.file, section.location.line, section.language, section.fallback,
                       normalise(section.text).strip("\n"))


def _bag(text: str) -> Counter[str]:
    return Counter(w.casefold() for w in WORD.findall(text))


def similarity(a: str, b: str) -> float:
    """Dice coefficient of the two texts' words (with repeats): 1.0 same words, 0.0 none in common."""
    bag_a, bag_b = _bag(a), _bag(b)
    total = sum(bag_a.values()) + sum(bag_b.values())
    if not total:
        return 1.0
    return 2 * sum((bag_a & bag_b).values()) / total


def _triples(text: str) -> set[tuple[str, ...]]:
    words = [w.casefold() for w in WORD.findall(text)]
    return {tuple(words[i:i + 3]) for i in range(max(len(words) - 2, 0))}


def _pair_by_similarity(removed: list[SectionSide], added: list[SectionSide]) -> list[tuple[SectionSide, SectionSide]]:
    """Pair removed and added sections that are one section under a new id, best pairs first."""
    candidates = []
    for old in removed:
        for new in added:
            text = similarity(old.text, new.text) if (old.text or new.text) else 0.0
            heading = similarity(old.heading, new.heading)
            if text >= SAME_TEXT_SIMILARITY or (heading >= SAME_HEADING_SIMILARITY and text >= SIMILAR_TEXT_WITH_HEADING):
                candidates.append((text + heading / 2, old.position, new.position, old, new))
    pairs, used_old, used_new = [], set(), set()
    for _, _, _, old, new in sorted(candidates, key=lambda c: (-c[0], c[1], c[2])):
        if old.id not in used_old and new.id not in used_new:
            pairs.append((old, new))
            used_old.add(old.id)
            used_new.add(new.id)
    return pairs


def _longest_increasing(values: list[int]) -> set[int]:
    """Indexes of one longest strictly increasing subsequence (patience sorting)."""
    import bisect

    tails: list[int] = []
    tail_index: list[int] = []
    previous = [-1] * len(values)
    for i, value in enumerate(values):
        k = bisect.bisect_left(tails, value)
        if k == len(tails):
            tails.append(value)
            tail_index.append(i)
        else:
            tails[k] = value
            tail_index[k] = i
        previous[i] = tail_index[k - 1] if k else -1
    keep: set[int] = set()
    i = tail_index[-1] if tail_index else -1
    while i >= 0:
        keep.add(i)
        i = previous[i]
    return keep


def _moved(pairs: list[tuple[SectionSide, SectionSide]], new_id_of: dict[str, str]) -> set[str]:
    """New ids of sections that moved: a new parent or level, or out of order among the siblings they kept."""
    moved: set[str] = set()
    siblings: dict[str | None, list[tuple[SectionSide, SectionSide]]] = {}
    for old, new in pairs:
        old_parent = new_id_of.get(old.parent, f"\0{old.parent}") if old.parent else None
        if old_parent != new.parent or old.level != new.level:
            moved.add(new.id)
        else:
            siblings.setdefault(new.parent, []).append((old, new))
    for group in siblings.values():
        group.sort(key=lambda pair: pair[1].position)
        keep = _longest_increasing([old.position for old, _ in group])
        moved.update(new.id for i, (_, new) in enumerate(group) if i not in keep)
    return moved


def _moved_text(changes: list[SectionChange]) -> list[SectionChange]:
    """Mark deleted and inserted runs that carry the same words in two places as moved text."""
    runs: dict[tuple[int, int], tuple[Op, str]] = {}  # (change, segment) → (op, its words), for runs long enough
    first_ref: dict[tuple[Op, str], str] = {}
    for c, change in enumerate(changes):
        if not change.changed:
            continue
        for s, segment in enumerate(change.text):
            if segment.op != "equal":
                words = WORD.findall(segment.text.casefold())
                if len(words) >= MOVED_TEXT_MIN_WORDS:
                    runs[c, s] = (segment.op, " ".join(words))
                    first_ref.setdefault(runs[c, s], change.ref)
    other: dict[Op, Op] = {"delete": "insert", "insert": "delete"}
    moved = {place: first_ref[other[op], words] for place, (op, words) in runs.items() if (other[op], words) in first_ref}
    touched = {c for c, _ in moved}
    return [replace(change, text=tuple(replace(segment, moved=moved[c, s]) if (c, s) in moved else segment
                                       for s, segment in enumerate(change.text)))
            if c in touched else change for c, change in enumerate(changes)]


def _splits_and_merges(changes: list[SectionChange]) -> list[SectionChange]:
    """An added section whose words mostly left one old section was split from it; a removed section whose
    words mostly went into one new section was merged into it."""
    if not any(c.has("added") or c.has("removed") for c in changes):
        return changes
    edited = [c for c in changes if c.changed]
    lost = {c.old.ref: _triples(rebuild(c.text, "old")) - _triples(rebuild(c.text, "new")) for c in edited if c.old}
    gained = {c.new.ref: _triples(rebuild(c.text, "new")) - _triples(rebuild(c.text, "old")) for c in edited if c.new}
    out = []
    for change in changes:
        if change.has("added") and change.new:
            mine = _triples(change.new.text)
            source = _best_container(mine, {ref: words for ref, words in lost.items() if ref != change.new.ref}, change)
            change = replace(change, split_from=source)
        elif change.has("removed") and change.old:
            mine = _triples(change.old.text)
            target = _best_container(mine, {ref: words for ref, words in gained.items() if ref != change.old.ref}, change)
            change = replace(change, merged_into=target)
        out.append(change)
    return out


def _best_container(mine: set[tuple[str, ...]], others: dict[str, set[tuple[str, ...]]], change: SectionChange) -> str:
    if len(mine) < 3:
        return ""
    best, best_share = "", 0.0
    for ref, words in others.items():
        share = len(mine & words) / len(mine)
        if share > best_share:
            best, best_share = ref, share
    return best if best_share >= SPLIT_MERGE_CONTAINMENT else ""


def _pair_change(old: SectionSide, new: SectionSide, moved: bool, matched_by: Literal["id", "similarity"],
                 engine: Engine) -> SectionChange:
    heading = word_diff(old.heading, new.heading, engine) if old.heading != new.heading else (
        (Segment("equal", new.heading),) if new.heading else ())
    text = word_diff(old.text, new.text, engine) if old.text != new.text else ((Segment("equal", new.text),) if new.text else ())
    kinds: set[Kind] = set()
    if moved:
        kinds.add("moved")
    if old.heading != new.heading:
        kinds.add("renamed")
    if old.text != new.text:
        kinds.add("modified")
    edits = [s for s in (*heading, *text) if s.op != "equal"]
    return SectionChange(frozenset(kinds or {"unchanged"}), old, new, heading, text,
                         formatting=bool(edits) and all(s.formatting for s in edits), matched_by=matched_by)


def compare(old: ResolvedPolicy, new: ResolvedPolicy, *, engine: Engine | None = None) -> ChangeSet:
    """Compare two resolved versions of one policy for the same site and language."""
    if (old.policy_id, old.site, old.language) != (new.policy_id, new.site, new.language):
        raise UsageError(f"cannot compare {old.policy_id}/{old.site}/{old.language} with {new.policy_id}/{new.site}/{new.language}",
                         "a redline compares two versions of one policy for the same site and language")
    engine = engine or default_engine()
    old_sides = [_side(s, i) for i, s in enumerate(old.sections, 1)]
    new_sides = [_side(s, i) for i, s in enumerate(new.sections, 1)]
    new_by_id = {s.id: s for s in new_sides}
    pairs = [(o, new_by_id[o.id]) for o in old_sides if o.id in new_by_id]
    matched_by: dict[str, Literal["id", "similarity"]] = {o.id: "id" for o, _ in pairs}
    removed = [o for o in old_sides if o.id not in new_by_id]
    old_ids = {o.id for o in old_sides}
    added = [n for n in new_sides if n.id not in old_ids]
    for o, n in _pair_by_similarity(removed, added):
        pairs.append((o, n))
        matched_by[o.id] = "similarity"
    paired_old = {o.id for o, _ in pairs}
    paired_new = {n.id for _, n in pairs}
    new_id_of = {o.id: n.id for o, n in pairs}
    moved = _moved(pairs, new_id_of)

    def pair_changes(batch: list[tuple[SectionSide, SectionSide]]) -> list[SectionChange]:
        return [_pair_change(o, n, n.id in moved, matched_by[o.id], engine) for o, n in batch]

    # The compiled engine lets other threads run while it works: heavily edited texts are shared among the cores.
    heavy = {n.id for o, n in pairs if o.text != n.text and _changed_characters(o.text, n.text) >= HEAVY_EDIT_CHARACTERS} \
        if engine == "fast" else set()
    batches = [[pair for pair in pairs if pair[1].id not in heavy], [pair for pair in pairs if pair[1].id in heavy]]
    if sum(len(o.text) + len(n.text) for o, n in batches[1]) >= PARALLEL_CHARACTERS:
        batches[1:] = [batches[1][i::WORKERS] for i in range(WORKERS)]
    done = [pair_changes(batches[0]), *_workers().map(pair_changes, batches[1:])] if len(batches) > 2 else map(pair_changes, batches)
    by_new = {n.id: change for batch, results in zip(batches, done, strict=True) for (_, n), change in zip(batch, results, strict=True)}
    changes: list[tuple[tuple[int, int, int], SectionChange]] = []
    for n in new_sides:
        new_section = SectionChange(frozenset({"added"}), None, n, _one("insert", n.heading), _one("insert", n.text))
        changes.append(((n.position, 0, 0), by_new[n.id] if n.id in paired_new else new_section))
    anchor = 0
    for o in old_sides:
        if o.id in paired_old:
            anchor = new_by_id[new_id_of[o.id]].position
        else:
            changes.append(((anchor, 1, o.position), SectionChange(frozenset({"removed"}), o, None,
                                                                   _one("delete", o.heading), _one("delete", o.text))))
    ordered = [change for _, change in sorted(changes, key=lambda item: item[0])]
    ordered = _splits_and_merges(_moved_text(ordered))
    return ChangeSet(new.policy_id, new.site, new.site_name, new.language, new.locale, normalise(old.title),
                     normalise(new.title), tuple(ordered))


def _changed_characters(old: str, new: str) -> int:
    """Characters left in both texts once what they begin and end with alike is set aside."""
    prefix: int = _PYTHON.diff_commonPrefix(old, new)
    suffix: int = _PYTHON.diff_commonSuffix(old[prefix:], new[prefix:])
    return len(old) + len(new) - 2 * (prefix + suffix)


@lru_cache(maxsize=1)
def _workers() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="addendum-diff")


# A forked process (the archive's workers) has none of its parent's threads: it starts a pool of its own.
os.register_at_fork(after_in_child=_workers.cache_clear)


def _one(op: Op, text: str) -> tuple[Segment, ...]:
    return (Segment(op, text),) if text else ()


# ---------------------------------------------------------------------------------------------------------
# Between two states of a repository: published versions, dates, git revisions or the working tree.

@dataclass(frozen=True)
class PolicyDiff:
    """The ChangeSets of every site × language compared between two snapshots of one policy."""

    policy_id: str
    old: Snapshot
    new: Snapshot
    changesets: tuple[ChangeSet, ...]

    @property
    def has_changes(self) -> bool:
        return any(c.has_changes for c in self.changesets)

    def as_json(self) -> dict[str, Any]:
        return {
            "format": "addendum-diff/1",
            "policy": self.policy_id,
            "from": _snapshot_json(self.old),
            "to": _snapshot_json(self.new),
            "compared": [f"{c.site}/{c.language}" for c in self.changesets],
            "changesets": [c.as_json() for c in self.changesets if c.has_changes],
        }


def _snapshot_json(shot: Snapshot) -> dict[str, Any]:
    return {"label": shot.label, "version": shot.version.id if shot.version else None,
            "effective": shot.effective.isoformat() if shot.effective else None}


def diff_policy(repo: Repo, policy_id: str, from_ref: str | None = None, to_ref: str | None = None,
                site_id: str | None = None, language: str | None = None) -> PolicyDiff:
    """Compare a policy between FROM (default: the last published version) and TO (default: the working tree),
    for one site and language or, when not given, every site × language either side has."""
    require_id(policy_id, "policy")
    if from_ref is None and not published_versions(repo, policy_id):
        raise HistoryError(f"{policy_id} has no published version to compare the working tree with",
                           f"name what to compare: addendum diff {policy_id} FROM [TO] (a git revision, e.g. HEAD)")
    old = snapshot(repo, policy_id, from_ref or LATEST)
    new = snapshot(repo, policy_id, to_ref)
    sites = [site_id] if site_id else list(dict.fromkeys([*new.policy.sites, *old.policy.sites]))
    languages = [language] if language else list(dict.fromkeys([*new.policy.languages, *old.policy.languages]))
    for site in sites:
        if site not in new.policy.sites and site not in old.policy.sites:
            new.policy.site(site)  # raises the usual "no site" error listing the known ones
    for code in languages:
        if code not in new.policy.languages and code not in old.policy.languages:
            new.policy.require_language(code)
    changesets = []
    for site in sites:
        for code in languages:
            before = resolve(old.policy, site, code) if site in old.policy.sites and code in old.policy.languages else None
            after = resolve(new.policy, site, code) if site in new.policy.sites and code in new.policy.languages else None
            # A site or language only one side has is compared with nothing: all added, or all removed.
            if after is None and before is not None:
                after = replace(before, sections=())
            elif before is None and after is not None:
                before = replace(after, sections=())
            if before is not None and after is not None:
                changesets.append(compare(before, after))
    return PolicyDiff(policy_id, old, new, tuple(changesets))

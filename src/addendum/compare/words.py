"""Word diff: texts cut into tokens that never split a word, compared by diff-match-patch, runs marked as formatting."""

from __future__ import annotations

import operator
import os
import re
import sys
import unicodedata
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import diff_match_patch as dmp_module

from addendum.compare.model import IDEOGRAPHS, WORD, Op, Segment
from addendum.errors import UsageError
from addendum.policy.markup import INVISIBLE
from addendum.policy.resolve import normalise

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

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


# ---------------------------------------------------------------------------------------------------------
# Words: a token is a word (letters, digits and combining marks, with inner apostrophes, hyphens and dots),
# one ideograph, a run of whitespace, or one other character with its modifiers. A hunk never splits a word.

EMOJI_MODIFIERS = "\ufe0e\ufe0f\u20e3\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f"
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


def changed_characters(old: str, new: str) -> int:
    """Characters left in both texts once what they begin and end with alike is set aside."""
    prefix: int = _PYTHON.diff_commonPrefix(old, new)
    suffix: int = _PYTHON.diff_commonSuffix(old[prefix:], new[prefix:])
    return len(old) + len(new) - 2 * (prefix + suffix)


@lru_cache(maxsize=1)
def diff_workers() -> ThreadPoolExecutor:
    from concurrent.futures import ThreadPoolExecutor  # only a long policy is diffed in threads; the rest never import it

    return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="addendum-diff")


# A forked process (the archive's workers) has none of its parent's threads: it starts a pool of its own.
os.register_at_fork(after_in_child=diff_workers.cache_clear)


def one_segment(op: Op, text: str) -> tuple[Segment, ...]:
    return (Segment(op, text),) if text else ()

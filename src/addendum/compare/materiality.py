"""Materiality: whether a section change is formatting, editorial or material, and the evidence for it.

The word lists evidence is found with (organisations, data categories, legal terms, number words, …) are data:
vocabulary/common.toml for those of no one language, vocabulary/<language>.toml for each language's own. For now
every shipped language file applies to policies in every language, because Dutch policies often use English terms
("Privacy Shield", "cookies") and the words of one language rarely occur in another; load_vocabulary(languages)
can already read a subset. The files are read on the first classification, not at import.
"""

from __future__ import annotations

import re
import string
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, get_args
from urllib.parse import unquote

from babel import Locale
from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline

from addendum.compare.reasons import Reason
from addendum.errors import ConfigError
from addendum.ids import LANGUAGE_PATTERN
from addendum.policy.model import Policy
from addendum.policy.resolve import normalise

Level = Literal["none", "formatting", "editorial", "material"]
LEVELS: tuple[Level, ...] = ("none", "formatting", "editorial", "material")
ChangeKind = Literal["added", "removed", "modified", "moved", "renamed", "unchanged"]
CHANGE_KINDS: frozenset[str] = frozenset(get_args(ChangeKind))

# WP260 rev.01 ¶29–31: changes to these are the ones readers must be told about before they apply.
DEFAULT_MATERIAL_TAGS = ("controller", "purposes", "legal-basis", "recipients", "transfers", "retention", "rights", "complaint")

FORMATTING_ONLY = "changes only punctuation/whitespace/case/quotes/markup"  # compare.reasons: formatting-only

MATERIALITY_KEYS: dict[str, str] = {
    "material_tags": "Section tags that make any change of wording material (replaces the default list).",
    "extra_terms": "Per language, terms whose addition or removal is material, e.g. { en = [\"cookie wall\"] }.",
    "ignore_terms": "Text that never counts as evidence, e.g. the controller's own name.",
    "organisations": "Names recognised as organisations, in addition to the built-in list of processors.",
    "added_removed_sections_material": "Whether adding or removing a section is material (default true).",
}


def max_level(levels: Iterable[Level]) -> Level:
    """The highest of the levels (none < formatting < editorial < material); "none" for no levels."""
    return max(levels, key=LEVELS.index, default="none")


@dataclass(frozen=True)
class SectionEdit:
    """One section's change between two versions, as materiality needs it; texts are Markdown, "" when absent."""

    ref: str
    section_id: str
    kinds: frozenset[str]
    old_text: str = ""
    new_text: str = ""
    old_heading: str = ""
    new_heading: str = ""
    tags: tuple[str, ...] = ()
    language: str = "en"

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - CHANGE_KINDS
        if unknown:
            raise ValueError(f"unknown change kind(s) {sorted(unknown)} for {self.ref}; known: {sorted(CHANGE_KINDS)}")


@dataclass(frozen=True)
class Classification:
    """A suggested level and the reasons for it, each reading "<level>: <§ref> <evidence>"."""

    level: Level
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rules:
    """What counts as material for one policy; the defaults need no configuration."""

    material_tags: tuple[str, ...] = DEFAULT_MATERIAL_TAGS
    extra_terms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ignore_terms: tuple[str, ...] = ()
    organisations: tuple[str, ...] = ()
    added_removed_sections_material: bool = True


DEFAULT_RULES = Rules()


# ---------------------------------------------------------------------------------------------------------
# Vocabulary: the word lists live in vocabulary/*.toml next to this module, read on first classification.

VOCABULARY_DIR = Path(__file__).resolve().parent / "vocabulary"
COMMON_VOCABULARY = "common"  # vocabulary/common.toml: the lists that belong to no one language
VOCABULARY_WORDS = ("organisations", "function_words", "common_words", "connectors", "abbreviations", "not_countries",
                    "months", "tlds")
# Each table maps an id shared by all language files (a category, a term, a unit, a territory code, a number)
# to the phrases that name it.
VOCABULARY_TABLES = ("country_variants", "data_categories", "legal_terms", "transfer_safeguards", "legal_areas", "time_units",
                     "number_words")


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """The word lists evidence is found with, merged from common.toml and the chosen language files.

    Compared by identity (load_vocabulary gives one per choice of files), so the patterns built from it can be cached.
    """

    languages: tuple[str, ...]  # the language files read; Babel's country names in these languages count too
    organisations: frozenset[str]
    function_words: frozenset[str]  # capitalised for other reasons than naming an organisation
    common_words: frozenset[str]  # capitalised words that alone never name an organisation
    connectors: frozenset[str]  # lowercase particles inside a name ("Bank of America")
    abbreviations: frozenset[str]  # a full stop after these does not end a sentence
    not_countries: frozenset[str]  # Babel territory codes that are not places a text sends data to
    months: frozenset[str]
    tlds: frozenset[str]
    country_variants: Mapping[str, frozenset[str]]  # territory code → names other than Babel's
    data_categories: Mapping[str, frozenset[str]]
    legal_terms: Mapping[str, frozenset[str]]  # legal bases (GDPR Art. 6) and other legal terms
    transfer_safeguards: Mapping[str, frozenset[str]]  # what third-country transfers rely on (GDPR Art. 45–49)
    legal_areas: Mapping[str, frozenset[str]]  # the European Union, the EEA: areas of law, not countries
    time_units: Mapping[str, frozenset[str]]  # unit → its forms ("day" → "days", "dagen")
    number_words: Mapping[str, frozenset[str]]  # number in digits → its words ("2" → "two", "twee")


def _vocabulary_file(path: Path, errors: list[str]) -> dict[str, Any]:
    """One word-list file's lists and tables; what is wrong with it is added to `errors`."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        errors.append(f"{path}: {error}")
        return {}

    def phrases(key: str, value: Any) -> bool:
        if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
            return True
        errors.append(f"{path}: '{key}' must be a list of non-empty strings, got {value!r}")
        return False

    for key in sorted(set(data) - {*VOCABULARY_WORDS, *VOCABULARY_TABLES}):
        errors.append(f"{path}: unknown key '{key}'")
    found: dict[str, Any] = {key: data[key] for key in VOCABULARY_WORDS if key in data and phrases(key, data[key])}
    for key in (k for k in VOCABULARY_TABLES if k in data):
        table = data[key]
        if not isinstance(table, dict):
            errors.append(f"{path}: '{key}' must be a table of id = [phrases], got {table!r}")
            continue
        found[key] = {id_: value for id_, value in table.items() if phrases(f"{key}.{id_}", value)}
        if key == "number_words":
            errors.extend(f"{path}: 'number_words.{n}' must be a number in digits" for n in table if not n.isdigit())
    return found


@lru_cache(maxsize=8)
def load_vocabulary(languages: tuple[str, ...] | None = None, directory: Path | None = None) -> Vocabulary:
    """common.toml merged with the files of `languages` in `directory` (by default the shipped word lists).

    None reads every language file there: that is what classification does for now, for policies in every
    language, because Dutch policies use English terms too. A language without a file adds nothing.
    """
    folder = directory or VOCABULARY_DIR
    hint = f"word lists are TOML files laid out like those in {VOCABULARY_DIR}: " + ", ".join(
        (*VOCABULARY_WORDS, *VOCABULARY_TABLES))
    common = folder / f"{COMMON_VOCABULARY}.toml"
    if not common.is_file():
        raise ConfigError(f"{common}: no such word-list file", hint)
    if languages is None:
        languages = tuple(sorted(p.stem for p in folder.glob("*.toml") if p.stem != COMMON_VOCABULARY))
    read = tuple(language for language in languages if (folder / f"{language}.toml").is_file())
    errors: list[str] = []
    words: dict[str, set[str]] = {key: set() for key in VOCABULARY_WORDS}
    tables: dict[str, dict[str, set[str]]] = {key: {} for key in VOCABULARY_TABLES}
    owners: dict[tuple[str, str], tuple[str, Path]] = {}  # (table, folded phrase) → (id, file), to catch a phrase under two ids
    for path in (common, *(folder / f"{language}.toml" for language in read)):
        found = _vocabulary_file(path, errors)
        for key in VOCABULARY_WORDS:
            words[key].update(found.get(key, ()))
        for key in VOCABULARY_TABLES:
            for id_, phrases in found.get(key, {}).items():
                tables[key].setdefault(id_, set()).update(phrases)
                for phrase in phrases:
                    owner, where = owners.setdefault((key, _fold(phrase)), (id_, path))
                    if owner != id_:
                        errors.append(f"{path}: '{key}.{id_}' lists \"{phrase}\", which {where.name} lists under '{key}.{owner}'")
    if errors:
        raise ConfigError("\n  ".join(errors), hint)

    def table(key: str) -> Mapping[str, frozenset[str]]:
        return MappingProxyType({id_: frozenset(phrases) for id_, phrases in tables[key].items()})

    return Vocabulary(
        read, organisations=frozenset(words["organisations"]), function_words=frozenset(words["function_words"]),
        common_words=frozenset(words["common_words"]), connectors=frozenset(words["connectors"]),
        abbreviations=frozenset(words["abbreviations"]), not_countries=frozenset(words["not_countries"]),
        months=frozenset(words["months"]), tlds=frozenset(words["tlds"]), country_variants=table("country_variants"),
        data_categories=table("data_categories"), legal_terms=table("legal_terms"),
        transfer_safeguards=table("transfer_safeguards"), legal_areas=table("legal_areas"), time_units=table("time_units"),
        number_words=table("number_words"))


# Evidence kinds, in the order their reasons are listed; value kinds change meaning even when only
# punctuation or case changes ("2.5 years" → "25 years"), so they count for formatting-only edits too.
EVIDENCE_KINDS = ("transfer safeguard", "organisation", "country", "legal area", "data category", "term", "URL", "e-mail address",
                  "duration", "number")
VALUE_KINDS = frozenset({"URL", "e-mail address", "duration", "number"})
# A single value of these kinds replaced by another reads as one change, not a removal and an addition.
REPLACEABLE_KINDS = VALUE_KINDS | {"transfer safeguard"}


# ---------------------------------------------------------------------------------------------------------
# Finding evidence in text.
#
# Matchers scan each plain-text block in a fixed order (_matchers), and what one finds, later ones cannot reuse.
# Whatever a word list names (organisations, countries, terms, data categories) is found by a phrase table: the
# block's runs of word characters are found once (_Words), each run is looked up in a dict of the phrases that
# start with it, longest phrase first, and compared word by word. That takes the same time however long the
# lists are, and a table is built in milliseconds. What has a shape rather than a list (URLs, e-mail addresses,
# numbers, durations, dates, template tags) is found by regular expressions that cannot backtrack far, or by a
# scan, so that a long line or a long word takes time in proportion to its length.
#
# The private records are NamedTuples rather than dataclasses: Python writes a dataclass's methods when the
# module is imported, a millisecond or two per class on every command that classifies.

class _Evidence(NamedTuple):
    kind: str
    key: str
    text: str


_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201b": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
                         "\u00a0": " "})
_WHITESPACE = re.compile(r"\s+")
_WORD = re.compile(r"[^\W_]+(?:['&.-][^\W_]+)*")
_ALNUM_RUN = re.compile(r"[^\W_]+")
_NOT_ALNUM = re.compile(r"[\W_]+")  # exactly what str.isalnum() refuses
_WORD_RUN = re.compile(r"\w+")  # the runs whose edges a pattern's (?<!\w) and (?!\w) find
_WORD_SPLIT = re.compile(r"(\w+)")


def _is_word_char(text: str, index: int) -> bool:
    """Whether there is a character at `index` and `\\w` matches it."""
    return 0 <= index < len(text) and (text[index].isalnum() or text[index] == "_")


def _fold(text: str) -> str:
    return _WHITESPACE.sub(" ", text.translate(_QUOTES)).strip().casefold()


def _alnum_key(text: str) -> str:
    return _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", text).casefold())


def _url_key(found: str) -> tuple[str, str]:
    text = found.rstrip(".,;:!?'\"")
    bare = re.sub(r"^(?:https?://)?(?:www\.)?", "", text, flags=re.IGNORECASE)
    host, _, path = bare.partition("/")
    return f"{host.lower()}/{unquote(path).rstrip('/')}", text


# --- phrase tables ---------------------------------------------------------------------------------------

class _Words(NamedTuple):
    """A text block's runs of word characters, found once and read by every phrase table."""

    text: str
    raw: list[str]
    folded: list[str]
    starts: list[int]
    ends: list[int]

    @classmethod
    def of(cls, text: str) -> _Words:
        runs = list(_WORD_RUN.finditer(text))
        raw = [run.group() for run in runs]
        return cls(text, raw, [word.casefold() for word in raw], [run.start() for run in runs], [run.end() for run in runs])


# How a table compares its phrases with a text:
#   "phrase"   in any case (an all-capitals phrase as written), any whitespace between words (data categories, terms);
#   "name"     the first letter as written and the rest in any case; an all-capitals name as written (organisations);
#   "literal"  exactly as written (country names).
_PhraseStyle = Literal["phrase", "name", "literal"]


class _Phrase(NamedTuple):
    """One listed phrase, split at its runs of word characters: words[0] gaps[0] words[1] … words[-1] tail."""

    key: str  # what a match counts as
    rank: int  # longest phrase first: where several phrases fit at one place, the lowest rank wins
    words: tuple[str, ...]  # casefolded, unless case counts; "initial" case: the first word without its first letter
    gaps: tuple[str, ...]  # between two words; a space stands for any whitespace unless spacing counts
    tail: str  # after the last word, as "." in "U.S."
    case: Literal["fold", "exact", "initial"]
    exact_spacing: bool
    initial: str = ""  # "initial" case: the first letter, as written


_Found = tuple[int, int, int, str]  # a phrase found: start, end of the phrase, end with its suffix, key


class _PhraseTable:
    """Phrases found as `(?<!\\w)(?:longest|…|shortest)(?:suffix|…)?(?!\\w)` finds them, leftmost and then longest,
    none overlapping, by looking each of a text's word runs up in a dict.

    `phrases` maps each phrase to its key; `suffixes` may follow one ("'s" after a name), tried in the order given.
    The rare phrase that starts with anything but a word character, has none, or is spaced oddly for its style is
    left to a regular expression of those alone.
    """

    def __init__(self, phrases: Mapping[str, str], style: _PhraseStyle, suffixes: tuple[str, ...] = ()) -> None:
        self._suffixes = suffixes
        self._stems = tuple(s for s in suffixes if _WORD_RUN.fullmatch(s))  # suffixes that extend the last word run
        self._first: dict[str, list[_Phrase]] = {}  # casefolded first word → the phrases that start with it, by rank
        self._single: dict[str, list[_Phrase]] = {}  # the same for one-word phrases, which a stem may extend
        self._odd_keys: dict[str, str] = {}
        odd = []
        for rank, listed in enumerate(sorted(phrases, key=lambda p: (-len(p), p))):
            split = _split_phrase(listed, phrases[listed], rank, style)
            if split is None:
                self._odd_keys[f"p{rank}"] = phrases[listed]
                odd.append(f"(?P<p{rank}>{_render(listed, style)})")
                continue
            first, phrase = split
            self._first.setdefault(first, []).append(phrase)
            if len(phrase.words) == 1 and not phrase.tail:
                self._single.setdefault(first, []).append(phrase)
        suffix = f"(?:{'|'.join(re.escape(s) for s in suffixes)})?" if suffixes else ""
        self._odd = re.compile(rf"(?<!\w)(?:{'|'.join(odd)}){suffix}(?!\w)") if odd else None

    def finditer(self, words: _Words) -> Iterator[_Found]:
        """Every match in the text, left to right."""
        starts = iter(self._starts(words))
        odd_pattern = self._odd
        position = 0
        listed: _Found | None = None
        odd: _Found | None = None
        while True:
            if listed is None or listed[0] < position:
                listed = self._next_listed(words, starts, position)
            if odd_pattern is not None and (odd is None or odd[0] < position):
                match = odd_pattern.search(words.text, position)
                if match is None or match.lastgroup is None:
                    odd_pattern, odd = None, None
                else:
                    odd = (match.start(), match.end(match.lastgroup), match.end(), self._odd_keys[match.lastgroup])
            found = min((f for f in (listed, odd) if f is not None), default=None)
            if found is None:
                return
            yield found
            position = found[2]

    def _next_listed(self, words: _Words, starts: Iterator[int], position: int) -> _Found | None:
        """The first match at or after `position` of a phrase that starts with a word, taking `starts` on."""
        for index in starts:
            if words.starts[index] >= position and (found := self._match_at(words, index)) is not None:
                return found
        return None

    def _starts(self, words: _Words) -> list[int]:
        """The word runs a listed phrase may start at."""
        first, single, stems, raw = self._first, self._single, self._stems, words.raw
        if not first:
            return []
        if not (stems and single):
            return [index for index, word in enumerate(words.folded) if word in first]
        endings = {stem[-1] for stem in stems}
        return [index for index, word in enumerate(words.folded) if word in first or (
            raw[index][-1] in endings and any(raw[index].endswith(s) and word[:-len(s)] in single for s in stems))]

    def _match_at(self, words: _Words, index: int) -> _Found | None:
        word = words.folded[index]
        candidates = self._first.get(word, [])
        for stem in self._stems:
            if words.raw[index].endswith(stem) and word[:-len(stem)] in self._single:
                candidates = sorted([*candidates, *self._single[word[:-len(stem)]]], key=lambda p: p.rank)
        for phrase in candidates:
            ends = self._ends(phrase, words, index)
            if ends is not None:
                return words.starts[index], ends[0], ends[1], phrase.key
        return None

    def _ends(self, phrase: _Phrase, words: _Words, index: int) -> tuple[int, int] | None:
        """(end of the phrase, end with its suffix) if `phrase` starts at word run `index`."""
        last = index + len(phrase.words) - 1
        if last >= len(words.raw):
            return None
        text = words.text
        for k in range(len(phrase.words) - 1):
            at = index + k
            if not _same_word(phrase, k, words.raw[at], words.folded[at]):
                return None
            gap, wanted = text[words.ends[at]:words.starts[at + 1]], phrase.gaps[k]
            if gap != wanted and (phrase.exact_spacing or _WHITESPACE.sub(" ", gap) != wanted):
                return None
        k, raw, folded, end = len(phrase.words) - 1, words.raw[last], words.folded[last], words.ends[last]
        whole = _same_word(phrase, k, raw, folded)
        if phrase.tail:
            after = _tail_end(phrase, text, end) if whole else None
            return None if after is None else self._suffixed(text, after)
        for suffix in self._suffixes:
            if suffix in self._stems:  # the end of the word run itself ("cookies")
                size = len(suffix)
                if raw.endswith(suffix) and len(raw) > size and _same_word(phrase, k, raw[:-size], folded[:-size]):
                    return end - size, end
            elif whole and text.startswith(suffix, end) and not _is_word_char(text, end + len(suffix)):
                return end, end + len(suffix)
        return (end, end) if whole else None

    def _suffixed(self, text: str, at: int) -> tuple[int, int] | None:
        """The suffix, if any, after a phrase that ends at `at` in something other than a word character."""
        for suffix in self._suffixes:
            if text.startswith(suffix, at) and not _is_word_char(text, at + len(suffix)):
                return at, at + len(suffix)
        return None if _is_word_char(text, at) else (at, at)


def _split_phrase(listed: str, key: str, rank: int, style: _PhraseStyle) -> tuple[str, _Phrase] | None:
    """The phrase's casefolded first word and the phrase in pieces, or None for one left to a regular expression."""
    as_written = style == "literal" or (style == "name" and listed.isupper())
    text = listed if as_written else " ".join(listed.split())
    if style == "name" and text != listed:  # a name's spacing counts as written, but for single spaces
        return None
    pieces = _WORD_SPLIT.split(text)  # [lead, word, gap, word, …, word, tail]
    if pieces[0] or len(pieces) < 3:
        return None
    words, gaps, tail = pieces[1::2], tuple(pieces[2:-1:2]), pieces[-1]
    first = words[0].casefold()
    if style == "literal" or listed.isupper():
        return first, _Phrase(key, rank, tuple(words), gaps, tail, "exact", as_written)
    folded = tuple(word.casefold() for word in words)
    if style == "name":
        return first, _Phrase(key, rank, (words[0][1:].casefold(), *folded[1:]), gaps, tail, "initial", False, words[0][0])
    return first, _Phrase(key, rank, folded, gaps, tail, "fold", False)


def _same_word(phrase: _Phrase, k: int, raw: str, folded: str) -> bool:
    """Whether a text's word run (as written, and casefolded) is the phrase's word k."""
    if phrase.case == "exact":
        return raw == phrase.words[k]
    if phrase.case == "initial" and k == 0:
        return raw[:1] == phrase.initial and raw[1:].casefold() == phrase.words[0]
    return folded == phrase.words[k]


def _tail_end(phrase: _Phrase, text: str, at: int) -> int | None:
    """Where the phrase's tail ends if it follows at `at`."""
    if phrase.exact_spacing or " " not in phrase.tail:
        return at + len(phrase.tail) if text.startswith(phrase.tail, at) else None
    match = re.compile(r"\s+".join(re.escape(part) for part in phrase.tail.split(" "))).match(text, at)
    return None if match is None else match.end()


def _render(phrase: str, style: _PhraseStyle) -> str:
    """A phrase as a regular expression, for the few a phrase table does not split."""
    if style == "literal" or (style == "name" and phrase.isupper()):
        return re.escape(phrase)
    if style == "name":  # the first letter as written, the rest in any case
        rest = r"\s+".join(re.escape(word) for word in phrase[1:].split(" "))
        return re.escape(phrase[0]) + (f"(?i:{rest})" if rest else "")
    body = r"\s+".join(re.escape(word) for word in phrase.split())
    return body if phrase.isupper() else f"(?i:{body})"


# --- shapes ----------------------------------------------------------------------------------------------

def _template_tags(text: str) -> Iterator[tuple[int, int]]:
    """Jinja's `{{ … }}` and `{% … %}`, each within a line, as `\\{\\{.*?\\}\\}|\\{%.*?%\\}` finds them."""
    scans = (_DelimitedScan(text, "{{", "}}"), _DelimitedScan(text, "{%", "%}"))
    position = 0
    while True:
        found = min((span for scan in scans if (span := scan.first_from(position)) is not None), default=None)
        if found is None:
            return
        yield found
        position = found[1]


class _DelimitedScan:
    """The first `opener.*?closer` at or after a position, asked with positions that never go back: each part of
    the text is searched once, where the pattern would search the rest of a line again from every opener on it."""

    def __init__(self, text: str, opener: str, closer: str) -> None:
        self._text, self._opener, self._closer = text, opener, closer
        self._searched_from = -1  # `_found` is the first match at or after here (None: there is none)
        self._found: tuple[int, int] | None = None
        self._closer_at = -1  # the first closer after the last opener looked at

    def first_from(self, position: int) -> tuple[int, int] | None:
        if position <= self._searched_from or (self._found is not None and self._found[0] >= position):
            return self._found
        text, opener, closer = self._text, self._opener, self._closer
        self._searched_from, self._found = len(text), None
        while (start := text.find(opener, position)) >= 0:
            inside = start + len(opener)
            if self._closer_at < inside:
                self._closer_at = text.find(closer, inside)
                if self._closer_at < 0:  # no closer after this opener, so none after any later one
                    return None
            line_end = text.find("\n", inside, self._closer_at)
            if line_end < 0:
                self._searched_from, self._found = position, (start, self._closer_at + len(closer))
                return self._found
            position = line_end + 1  # every opener up to that line end closes only past it
        return None


_LOCAL_PART = re.compile(r"[A-Za-z0-9._%+-]++")
_DOMAIN = re.compile(r"[A-Za-z0-9.-]++")
_LETTERS = re.compile(r"[A-Za-z]++")


def _run_end(pattern: re.Pattern[str], text: str, at: int) -> int:
    """Where the run of `pattern` that starts at `at` ends (`at` itself when there is none)."""
    match = pattern.match(text, at)
    return at if match is None else match.end()


def _email_addresses(text: str) -> Iterator[tuple[int, int]]:
    """What `[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}` finds, but from each '@' outwards, in linear time
    (the pattern would try every start in a long word): the local part reaches back from the '@' (read forwards
    in the reversed text), and the domain ends after its last '.' that two letters follow."""
    position, reversed_text = 0, ""
    while (at := text.find("@", position + 1)) >= 0:
        reversed_text = reversed_text or text[::-1]
        local = _run_end(_LOCAL_PART, reversed_text, len(text) - at) - (len(text) - at)
        start = max(at - local, position)
        domain_end = _run_end(_DOMAIN, text, at + 1)
        dot = text.rfind(".", at + 2, domain_end)
        while dot >= 0 and _run_end(_LETTERS, text, dot + 1) - dot < 3:
            dot = text.rfind(".", at + 2, dot)
        if start < at and dot >= 0:
            position = _run_end(_LETTERS, text, dot + 1)
            yield start, position
        else:
            position = at


# --- the matchers, in the order they claim text ----------------------------------------------------------

class _Matcher(NamedTuple):
    """Finds one kind of evidence: (start, end, comparison key, text shown in a reason) of each match, left to right.

    `kind` None claims the text without counting it as evidence.
    """

    kind: str | None
    find: Callable[[_Words], Iterator[tuple[int, int, str, str]]]


def _pattern_matcher(kind: str | None, pattern: re.Pattern[str],
                     key: Callable[[re.Match[str]], tuple[str, str]] | None = None) -> _Matcher:
    def find(words: _Words) -> Iterator[tuple[int, int, str, str]]:
        for match in pattern.finditer(words.text):
            yield (match.start(), match.end(), *(key(match) if key else (match.group(), match.group())))
    return _Matcher(kind, find)


def _word_start_matcher(kind: str | None, pattern: re.Pattern[str], initials: Iterable[str],
                        key: Callable[[re.Match[str]], tuple[str, str]] | None = None) -> _Matcher:
    """A pattern that matches only where a run of word characters starts (it opens with a lookbehind for one),
    tried there alone: a pattern that opens with a lookbehind is otherwise tried at every character of a text.

    `initials`: the casefolded characters a match can start with, besides a digit.
    """
    can_start = frozenset(initials)

    def find(words: _Words) -> Iterator[tuple[int, int, str, str]]:
        text, position = words.text, 0
        for start, word in zip(words.starts, words.folded, strict=True):
            if start >= position and (word[0] in can_start or word[0].isdecimal()):
                match = pattern.match(text, start)
                if match is not None:
                    yield (match.start(), match.end(), *(key(match) if key else (match.group(), match.group())))
                    position = match.end()
    return _Matcher(kind, find)


def _span_matcher(kind: str | None, spans: Callable[[str], Iterator[tuple[int, int]]],
                  key: Callable[[str], tuple[str, str]]) -> _Matcher:
    def find(words: _Words) -> Iterator[tuple[int, int, str, str]]:
        for start, end in spans(words.text):
            yield (start, end, *key(words.text[start:end]))
    return _Matcher(kind, find)


def _phrase_matcher(kind: str | None, table: _PhraseTable, key: Callable[[str, str, str], tuple[str, str]]) -> _Matcher:
    """`key` makes (comparison key, text shown) of the phrase's key, the phrase found and the phrase with its suffix."""
    def find(words: _Words) -> Iterator[tuple[int, int, str, str]]:
        for start, body_end, end, listed_key in table.finditer(words):
            yield (start, end, *key(listed_key, words.text[start:body_end], words.text[start:end]))
    return _Matcher(kind, find)


@lru_cache(maxsize=8)
def _countries(vocabulary: Vocabulary) -> dict[str, str]:
    """Country and region names in the vocabulary's languages → territory code."""
    names: dict[str, str] = {}
    for language in vocabulary.languages:
        for code, name in Locale.parse(language).territories.items():
            if code not in vocabulary.not_countries and name[:1].isupper():
                names[name.translate(_QUOTES)] = code
    for code, variants in vocabulary.country_variants.items():
        names.update(dict.fromkeys(variants, code))
    return names


def _grouped(groups: Mapping[str, Iterable[str]]) -> dict[str, str]:
    return {_fold(phrase): key for key, phrases in groups.items() for phrase in phrases}


def _alternation(phrases: Iterable[str], render: Callable[[str], str]) -> str:
    return "|".join(render(p) for p in sorted(set(phrases), key=lambda p: (-len(p), p)))


@lru_cache(maxsize=32)
def _matchers(extra_terms: tuple[str, ...], ignore_terms: tuple[str, ...], organisations: tuple[str, ...],
              vocabulary: Vocabulary) -> tuple[_Matcher, ...]:
    """Every matcher, most specific first: what one finds, later ones cannot reuse."""
    # The word lists, folded as their keys are compared: "Privacy Shield" and "privacy shield" are one term.
    legal = _PhraseTable(_grouped(vocabulary.legal_terms), "phrase")
    safeguards = _PhraseTable(_grouped(vocabulary.transfer_safeguards), "phrase")
    areas = _PhraseTable(_grouped(vocabulary.legal_areas), "phrase")
    categories = _PhraseTable(_grouped(vocabulary.data_categories), "phrase", ("'s", "s", "es", "en"))
    known = _PhraseTable(dict.fromkeys((*vocabulary.organisations, *organisations), ""), "name", ("'s", "s"))
    countries = _PhraseTable(_countries(vocabulary), "literal")
    extra = _PhraseTable(dict.fromkeys(extra_terms, ""), "phrase")
    ignored = _PhraseTable(dict.fromkeys(ignore_terms, ""), "phrase")
    unit_of = _grouped(vocabulary.time_units)
    number_of = _grouped(vocabulary.number_words)
    units = _alternation(unit_of, lambda u: r"\s++".join(u.split()))
    amounts = _alternation(number_of, re.escape)
    months = _alternation({month.casefold() for month in vocabulary.months}, re.escape)  # the date pattern ignores case
    tlds = _alternation(vocabulary.tlds, re.escape)
    url_tail = r"[^\s<>()\[\]{}\"'`]"

    def duration_key(match: re.Match[str]) -> tuple[str, str]:
        amount = match["amount"].casefold()
        value = number_of[amount] if amount in number_of else amount.replace(",", ".")
        return f"{value} {unit_of[_fold(match['unit'])]}", match.group()

    month_initials = {month.casefold()[:1] for month in vocabulary.months}
    amount_initials = {amount[:1] for amount in number_of}
    # Possessive quantifiers (*+, ++), where giving characters back could never lead to a match, keep every
    # attempt linear; all patterns but the first URL one can only start where a word does.
    return (
        _phrase_matcher(None, ignored, lambda key, found, whole: ("", "")),
        _span_matcher(None, _template_tags, lambda found: ("", "")),
        # Dates are left out on purpose: "last changed on 19 May 2018" changes with every version.
        _word_start_matcher(None, re.compile(
            rf"(?i)(?<!\w)(?:\d{{1,2}}(?:st|nd|rd|th)?\s++(?:of\s++)?(?:{months})\.?,?\s++\d{{4}}"
            rf"|(?:{months})\.?\s++\d{{1,2}}(?:st|nd|rd|th)?,?\s++\d{{4}}|(?:{months})\s++\d{{4}}"
            r"|\d{4}-\d{2}-\d{2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4})(?!\w)"), month_initials),
        _span_matcher("e-mail address", _email_addresses, lambda found: (found.lower(), found)),
        _pattern_matcher("URL", re.compile(rf"(?i)(?:https?://|www\.){url_tail}++"), lambda m: _url_key(m.group())),
        _word_start_matcher("URL", re.compile(rf"(?<![\w@./-])(?:[A-Za-z0-9][A-Za-z0-9-]*+(?<!-)\.)+(?:{tlds})(?![\w-])"
                                           rf"(?:/{url_tail}*+)?"), string.ascii_lowercase, lambda m: _url_key(m.group())),
        _phrase_matcher("term", extra, lambda key, found, whole: ("extra " + _fold(whole), whole)),
        _phrase_matcher("transfer safeguard", safeguards, lambda key, found, whole: (key, whole)),
        _phrase_matcher("term", legal, lambda key, found, whole: (key, whole)),
        _phrase_matcher("legal area", areas, lambda key, found, whole: (key, whole)),
        _phrase_matcher("data category", categories, lambda key, found, whole: (key, whole)),
        _word_start_matcher("duration", re.compile(
            rf"(?i)(?<![\w.,])(?P<amount>\d++(?:[.,]\d++)?+|{amounts})(?:\s++|-)(?:\(\d++\)\s++)?(?P<unit>{units})(?!\w)"),
            amount_initials, duration_key),
        _phrase_matcher("organisation", known, lambda key, found, whole: (_alnum_key(found), found)),
        _phrase_matcher("country", countries, lambda key, found, whole: (key, whole)),
        _word_start_matcher("number", re.compile(r"(?<![\w.,])\d++(?:[.,]\d++)*(?!\w)"), ()),
    )


# --- names no list knows ---------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"[!?…]")
_JOINING_GAP = re.compile(r"\s++|\s*+&\s*+")  # what may separate two words of one name


class _Token(NamedTuple):
    word: str
    start: int
    end: int
    initial: bool  # starts a sentence, so its capital says nothing about it being a name
    joined: bool  # only whitespace (or "&") separates it from the previous token
    after_organisation: bool  # follows a known organisation directly ("Facebook Pixel")


def _is_common(word: str, vocabulary: Vocabulary) -> bool:
    folded = word.casefold()
    common = vocabulary.common_words
    return folded in common or folded in vocabulary.function_words or folded.split("-")[0] in common


def _is_distinctive(word: str) -> bool:
    """CamelCase (MailChimp) or an acronym (AWS): a name even at the start of a sentence."""
    letters = [ch for ch in word if ch.isalpha()]
    return bool(re.search(r"[a-z][A-Z]", word)) or (len(letters) >= 2 and word.isupper())


def _ends_sentence(gap: str, previous: str, vocabulary: Vocabulary) -> bool:
    if "\n" in gap or _SENTENCE_END.search(gap):
        return True
    abbreviation = "." in previous or len(previous) == 1 or previous.casefold() in vocabulary.abbreviations
    return "." in gap and not abbreviation


def _tokens(text: str, owners: list[str | None], heading: bool, vocabulary: Vocabulary) -> list[_Token]:
    tokens: list[_Token] = []
    previous_end, previous_word = 0, ""
    for match in _WORD.finditer(text):
        start, end = match.span()
        gap = text[previous_end:start]
        if any(owners[start:end]):
            tokens.append(_Token("", start, end, False, False, False))  # a claimed span breaks any run of names
        else:
            initial = heading or not previous_word or _ends_sentence(gap, previous_word, vocabulary)
            joined = bool(previous_word) and _JOINING_GAP.fullmatch(gap) is not None
            after = joined and previous_end > 0 and owners[previous_end - 1] == "organisation"
            tokens.append(_Token(match.group(), start, end, initial, joined, after))
        previous_end, previous_word = end, match.group()
    return tokens


def _names(text: str, owners: list[str | None], heading: bool, vocabulary: Vocabulary) -> list[tuple[int, _Evidence]]:
    """Organisations no list knows: runs of capitalised words, minus sentence starts and common words.

    In a heading every word counts as a sentence start, because headings are often in Title Case.
    """
    function_words, connectors = vocabulary.function_words, vocabulary.connectors
    runs: list[list[_Token]] = []
    for token in _tokens(text, owners, heading, vocabulary):
        capital = token.word[:1].isupper()
        continues_run = token.joined and runs and runs[-1] and (capital or token.word.casefold() in connectors)
        if continues_run:
            runs[-1].append(token)
        else:
            runs.append([token] if capital else [])
    found = []
    for run in runs:
        while run and (run[0].initial and not _is_distinctive(run[0].word) or run[0].word.casefold() in function_words):
            run.pop(0)
        while run and (run[-1].word.casefold() in function_words or run[-1].word.casefold() in connectors):
            run.pop()
        if not run or run[0].after_organisation or all(_is_common(t.word, vocabulary) for t in run):
            continue
        name = re.sub(r"'s$", "", text[run[0].start:run[-1].end])
        if sum(ch.isalpha() for ch in name) >= 2:
            found.append((run[0].start, _Evidence("organisation", _alnum_key(name), name)))
    return found


@lru_cache(maxsize=4096)
def _block_evidence(text: str, heading: bool, matchers: tuple[_Matcher, ...], vocabulary: Vocabulary) -> tuple[_Evidence, ...]:
    text = unicodedata.normalize("NFC", text.translate(_QUOTES))
    words = _Words.of(text)
    owners: list[str | None] = [None] * len(text)
    found: list[tuple[int, _Evidence]] = []
    for matcher in matchers:
        for start, end, key, shown in matcher.find(words):
            if start == end or any(owners[start:end]):
                continue
            owners[start:end] = [matcher.kind or "claimed"] * (end - start)
            if matcher.kind is not None:
                found.append((start, _Evidence(matcher.kind, key, shown)))
    found.extend(_names(text, owners, heading, vocabulary))
    return tuple(evidence for _, evidence in sorted(found, key=lambda item: item[0]))


# Where markdown-it's inline rules (as CommonMark and html off have them) can start: plain text runs on to here.
_INLINE_MARKUP = re.compile(r"[\n!&*<\[\\\]_`]")


def _plain_text(state: StateInline, silent: bool) -> bool:
    """markdown-it's `text` rule, running on to the next character a rule in use starts at: markdown-it's own also
    stops at those it keeps for plugins ({ } % @ - + = …) and then steps over them one at a time."""
    stop = _INLINE_MARKUP.search(state.src, state.pos, state.posMax)
    end = state.posMax if stop is None else stop.start()
    if end == state.pos:
        return False
    if not silent:
        state.append_pending(state.src[state.pos:end])
    state.pos = end
    return True


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    """Policy Markdown as policy.markup.markdown() reads it, with a text rule that takes a long line of braces
    or percent signs in one step (markdown-it's takes seconds per megabyte of them)."""
    parser = MarkdownIt("commonmark", {"html": False}).disable("image")
    parser.inline.ruler.at("text", _plain_text)
    return parser


@lru_cache(maxsize=4096)
def _plain(text: str, inline: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Markdown as plain text blocks (markup gone, link text kept) and its link targets."""
    blocks: list[str] = []
    targets: list[str] = []
    tokens = _markdown().parseInline(text) if inline else _markdown().parse(text)
    for token in tokens:
        if token.type == "inline":
            parts = []
            for child in token.children or ():
                if child.type in ("text", "code_inline"):
                    parts.append(child.content)
                elif child.type in ("softbreak", "hardbreak"):
                    parts.append(" " if child.type == "softbreak" else "\n")
                elif child.type == "link_open":
                    targets.append(unquote(str(child.attrs.get("href", ""))))
            blocks.append("".join(parts))
        elif token.type in ("fence", "code_block"):
            blocks.append(token.content)
    return tuple(blocks), tuple(targets)


def _evidence(heading: str, text: str, rules: Rules, language: str, vocabulary: Vocabulary) -> tuple[_Evidence, ...]:
    matchers = _matchers(tuple(rules.extra_terms.get(language, ())), tuple(rules.ignore_terms), tuple(rules.organisations),
                         vocabulary)
    heading_blocks, heading_targets = _plain(heading, inline=True)
    body_blocks, body_targets = _plain(text, inline=False)
    found: list[_Evidence] = []
    for block in heading_blocks:
        found.extend(_block_evidence(block, True, matchers, vocabulary))
    for block in (*body_blocks, *heading_targets, *body_targets):
        found.extend(_block_evidence(block, False, matchers, vocabulary))
    return tuple(found)


def _first_seen(evidence: tuple[_Evidence, ...]) -> dict[tuple[str, str], str]:
    seen: dict[tuple[str, str], str] = {}
    for item in evidence:
        seen.setdefault((item.kind, item.key), item.text)
    return seen


class _Why(NamedTuple):
    """A reason before its level is known: its code (compare.reasons.ENGLISH), evidence kind, values and tags."""

    code: str
    kind: str = ""
    values: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


def _evidence_reasons(old: tuple[_Evidence, ...], new: tuple[_Evidence, ...], kinds: Iterable[str]) -> list[_Why]:
    """What the new text adds or removes, by kind; a single value replaced by another reads as a change."""
    old_first, new_first = _first_seen(old), _first_seen(new)
    wanted = set(kinds)
    reasons = []
    for kind in (k for k in EVIDENCE_KINDS if k in wanted):
        removed = [text for (k, key), text in old_first.items() if k == kind and (k, key) not in new_first]
        added = [text for (k, key), text in new_first.items() if k == kind and (k, key) not in old_first]
        if kind in REPLACEABLE_KINDS and len(removed) == len(added) == 1:
            reasons.append(_Why("evidence-changed", kind, (removed[0], added[0])))
            continue
        reasons.extend(_Why("evidence-removed", kind, (text,)) for text in removed)
        reasons.extend(_Why("evidence-added", kind, (text,)) for text in added)
    return reasons


# ---------------------------------------------------------------------------------------------------------
# Comparing wording.

TextChange = Literal["same", "whitespace", "formatting", "wording"]
TEXT_CHANGES: tuple[TextChange, ...] = ("same", "whitespace", "formatting", "wording")
# Shorter words are left out of typo fixes: "sell" → "tell" or "data" → "date" change what a text says.
TYPO_MIN_LETTERS = 5


class _Wording(NamedTuple):
    change: TextChange
    typos: tuple[tuple[str, str], ...] = ()


def _one_edit_apart(a: str, b: str) -> bool:
    """One letter inserted, deleted, replaced, or two neighbours swapped."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diffs) == 1 or (len(diffs) == 2 and diffs[1] == diffs[0] + 1
                                   and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]])
    short, long = sorted((a, b), key=len)
    common = next((i for i, (x, y) in enumerate(zip(short, long, strict=False)) if x != y), len(short))
    return short[common:] == long[common + 1:]


def _typos(old: str, new: str) -> tuple[tuple[str, str], ...] | None:
    """The misspellings the new text corrects, or None when anything else about its words changed."""
    old_words = list(_ALNUM_RUN.finditer(unicodedata.normalize("NFKC", old)))
    new_words = list(_ALNUM_RUN.finditer(unicodedata.normalize("NFKC", new)))
    matcher = SequenceMatcher(None, [w.group().casefold() for w in old_words],
                              [w.group().casefold() for w in new_words], autojunk=False)
    typos: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        before = "".join(w.group().casefold() for w in old_words[i1:i2])
        after = "".join(w.group().casefold() for w in new_words[j1:j2])
        if before == after:  # words split or joined
            continue
        if not (before.isalpha() and after.isalpha() and min(len(before), len(after)) >= TYPO_MIN_LETTERS
                and _one_edit_apart(before, after)):
            return None
        shown_old = old_words[i1].string[old_words[i1].start():old_words[i2 - 1].end()]
        shown_new = new_words[j1].string[new_words[j1].start():new_words[j2 - 1].end()]
        typos.append((shown_old, shown_new))
    return tuple(dict.fromkeys(typos))


def _compare(old: str, new: str, inline: bool) -> _Wording:
    if old == new:
        return _Wording("same")
    # Decomposed, so a space put between a letter and its accent still reads as whitespace only.
    if unicodedata.normalize("NFD", _WHITESPACE.sub("", old)) == unicodedata.normalize("NFD", _WHITESPACE.sub("", new)):
        return _Wording("whitespace")
    old_plain = " ".join(_plain(old, inline)[0])
    new_plain = " ".join(_plain(new, inline)[0])
    # The raw comparison sees through emphasis and list markers; the plain one through link syntax.
    if _alnum_key(old) == _alnum_key(new) or _alnum_key(old_plain) == _alnum_key(new_plain):
        return _Wording("formatting")
    typos = _typos(old_plain, new_plain)
    if typos is None:
        return _Wording("wording")
    return _Wording("formatting", typos)


# ---------------------------------------------------------------------------------------------------------
# Classifying.

def classify_section(change: SectionEdit, rules: Rules = DEFAULT_RULES, vocabulary: Vocabulary | None = None) -> Classification:
    """Suggest a level for one section's change, with a reason per piece of evidence.

    Pure but for reading the shipped word lists once, when no `vocabulary` is given.
    """
    old_heading, new_heading = normalise(change.old_heading), normalise(change.new_heading)
    old_text, new_text = normalise(change.old_text), normalise(change.new_text)
    structural = [kind for kind in ("added", "removed") if kind in change.kinds]
    heading = _compare(old_heading, new_heading, inline=True)
    body = _compare(old_text, new_text, inline=False)
    overall = max(heading.change, body.change, key=TEXT_CHANGES.index)
    reworded = bool(structural) or overall == "wording"
    tags = tuple(t for t in dict.fromkeys(change.tags) if t in rules.material_tags)

    found: dict[Level, list[_Why]] = {level: [] for level in LEVELS}
    structural_level: Level = "material" if rules.added_removed_sections_material else "editorial"
    found[structural_level].extend(_Why(kind) for kind in structural)
    if reworded and tags:
        found["material"].append(_Why("tagged", tags=tags))
    evidence_kinds = EVIDENCE_KINDS if reworded else VALUE_KINDS if overall == "formatting" else ()
    if evidence_kinds:
        words = vocabulary or load_vocabulary()
        found["material"].extend(_evidence_reasons(_evidence(old_heading, old_text, rules, change.language, words),
                                                   _evidence(new_heading, new_text, rules, change.language, words),
                                                   evidence_kinds))
    if not structural:
        if heading.change == "wording":
            found["editorial"].append(_Why("renamed", values=(old_heading, new_heading)))
        if body.change == "wording":
            found["editorial"].append(_Why("reworded"))
        if "moved" in change.kinds:
            found["editorial"].append(_Why("moved"))
        typos = heading.typos + body.typos
        found["formatting"].extend(_Why("typo", values=(old, new)) for old, new in typos)
        if overall in ("whitespace", "formatting") and not typos:
            found["formatting"].append(_Why("formatting-only"))
        if found["formatting"] and tags:
            found["formatting"].append(_Why("tagged-formatting", tags=tags))
    level = max_level(lvl for lvl in LEVELS if found[lvl])
    reasons = (Reason(level, change.ref, f.code, f.kind, f.values, f.tags) for f in dict.fromkeys(found[level]))
    return Classification(level, tuple(dict.fromkeys(reasons)))


def classify_version(classifications: Iterable[Classification]) -> Classification:
    """A version's level is the highest of its changes; reasons are listed highest level first, each once."""
    ordered = sorted(classifications, key=lambda c: -LEVELS.index(c.level))
    reasons = dict.fromkeys(reason for c in ordered for reason in c.reasons)
    return Classification(max_level(c.level for c in ordered), tuple(reasons))


# ---------------------------------------------------------------------------------------------------------
# Configuration.

def rules_from_policy(policy: Policy) -> Rules:
    """The policy's [materiality] table as Rules; every bad key is reported at once, by name."""
    table = policy.settings.get("materiality", {})
    where = policy.config_file
    hint = "[materiality] accepts: " + ", ".join(sorted(MATERIALITY_KEYS))
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: 'materiality' must be a table, got {table!r}", hint)
    errors = [f"{where}: unknown key 'materiality.{key}'" for key in sorted(set(table) - set(MATERIALITY_KEYS))]

    def strings(key: str, value: Any) -> tuple[str, ...]:
        if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
            return tuple(value)
        errors.append(f"{where}: 'materiality.{key}' must be a list of non-empty strings, got {value!r}")
        return ()

    settings: dict[str, Any] = {}
    for key in ("material_tags", "ignore_terms", "organisations"):
        if key in table:
            settings[key] = strings(key, table[key])
    if "added_removed_sections_material" in table:
        value = table["added_removed_sections_material"]
        if isinstance(value, bool):
            settings["added_removed_sections_material"] = value
        else:
            errors.append(f"{where}: 'materiality.added_removed_sections_material' must be true or false, got {value!r}")
    extra = table.get("extra_terms", {})
    if not isinstance(extra, dict):
        errors.append(f"{where}: 'materiality.extra_terms' must be a table of language = [terms], got {extra!r}")
        extra = {}
    for language in extra:
        if not LANGUAGE_PATTERN.fullmatch(language) or language not in policy.languages:
            errors.append(f"{where}: 'materiality.extra_terms.{language}': the policy has no language {language!r} "
                          f"(its languages: {', '.join(policy.languages)})")
    settings["extra_terms"] = {lang: strings(f"extra_terms.{lang}", terms) for lang, terms in extra.items()}
    if errors:
        raise ConfigError("\n  ".join(errors), hint)
    return Rules(**settings)

"""Markdown in and out: splitting a policy file into sections, and rendering section text safely."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from markdown_it import MarkdownIt

from addendum.config import DEFAULT_LIMITS, Limits
from addendum.errors import LimitError, Problem
from addendum.ids import ID_PATTERN

# `Heading text {#id}`: the id is the first `{#` whose `}` ends the line. Written so that no part is tried twice
# (possessive runs; the heading consumes a `{#…}` that does not end the line as one piece), so matching takes time
# in proportion to the heading however it is spelled, and an id-less heading of a million characters fails at once.
HEADING_ID = re.compile(r"^(?P<heading>(?:[ \t]*+(?:[^ \t{\n]|\{(?!#)|\{#[^}\n]*+\}(?![ \t]*+$)))*?)"
                        r"[ \t]*+\{#(?P<id>[^}]*+)\}[ \t]*+$")
# Optional closing hashes (`## Heading ##`); the lookbehind starts a try only where a run of blanks starts.
CLOSING_HASHES = re.compile(r"(?<![ \t])[ \t]++#++[ \t]*+$")
# Lines as markdown-it counts them (str.splitlines also breaks at \f, \x1c, U+2028 … and would shift line numbers).
SOURCE_LINE = re.compile(r"[^\r\n]*+(?:\r\n?|\n)|[^\r\n]++")
# A line that opens an ATX heading (CommonMark: up to 3 spaces, 1 to 6 #, then a blank or the line end).
ATX_OPENING = re.compile(r" {0,3}#{1,6}(?:[ \t\r\n]|\Z)")
PREAMBLE_ID = "preamble"
# Characters a reader cannot see but that change what text says or how it is shown: controls, bidi overrides
# and isolates, zero-width characters, soft hyphens, invisible tags. `check` refuses them; redlines show their code.
INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u115f\u1160\u180e\u200b-\u200f\u202a-\u202e"
                       "\u2060-\u2064\u2066-\u206f\u3164\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]")


@dataclass(frozen=True)
class RawSection:
    """A section as it stands in one file: enough to write the file back byte for byte."""

    id: str
    heading: str
    level: int
    heading_line: str
    body: str
    line: int

    @property
    def source(self) -> str:
        return self.heading_line + self.body


@lru_cache(maxsize=1)
def markdown() -> MarkdownIt:
    # Raw HTML off (policy text is never markup); images off (a policy must not pull files into a PDF).
    return MarkdownIt("commonmark", {"html": False}).disable("image")


@lru_cache(maxsize=1)
def _blocks() -> MarkdownIt:
    # Sections need only the block structure; inline parsing is most of markdown-it's time on long or odd lines.
    return MarkdownIt("commonmark", {"html": False}).disable(["inline", "text_join"])


def source_lines(text: str) -> list[str]:
    """The lines of `text` with their line ends, split where markdown-it (and an editor) splits them."""
    return SOURCE_LINE.findall(text)


def _shown_heading(raw: str) -> str:
    return raw if len(raw) <= 60 else raw[:60] + "…"


def _count_headings(lines: list[str], path: str, limits: Limits) -> None:
    """Refuse more than limits.sections headings before markdown-it reads the file (it takes seconds on 50,000).
    Lines are counted as they look, so a `#` line in a code block counts too: a policy has none of those."""
    count = 0
    for index, line in enumerate(lines):
        if line[:1] in " #" and ATX_OPENING.match(line):
            count += 1
            if count > limits.sections:
                raise LimitError(path, index + 1, f"more than {limits.sections:,} headings in one file (limits.sections)",
                                 "split the text into fewer sections, or " + Limits.hint("sections"))


def split_sections(text: str, path: str, limits: Limits = DEFAULT_LIMITS) -> tuple[list[RawSection], list[Problem]]:
    """Split Markdown into sections at its top-level ATX headings, each of which must carry `{#id}`.
    A heading longer than limits.heading_chars, or more sections than limits.sections, raises LimitError."""
    lines = source_lines(text)
    _count_headings(lines, path, limits)
    problems: list[Problem] = []
    starts: list[tuple[int, int, str, str]] = []  # (line index, level, heading, id)
    for token in _blocks().parse(text):
        if token.type != "heading_open" or token.map is None:
            continue
        index = token.map[0]
        line_no = index + 1
        length = len(lines[index].strip())
        if length > limits.heading_chars:
            raise LimitError(path, line_no, f"a heading line of {length:,} characters; at most {limits.heading_chars:,} (limits.heading_chars)",
                             "shorten the heading and put the rest in the section's text, or " + Limits.hint("heading_chars"))
        if token.level != 0:
            problems.append(Problem("error", path, line_no, "a heading inside a list or quote cannot start a section",
                                    "move the heading out of the list or quote", rule="nested-heading"))
            continue
        if not token.markup.startswith("#"):
            problems.append(Problem("error", path, line_no, "underlined (setext) headings are not supported",
                                    "write the heading as '## Heading {#id}'", rule="setext-heading"))
            continue
        raw = lines[index].rstrip("\r\n").lstrip(" ").lstrip("#").strip()
        raw = CLOSING_HASHES.sub("", raw)
        match = HEADING_ID.match(raw)
        if match is None:
            slug = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")[:40] or "section-id"
            shown = _shown_heading(raw)
            problems.append(Problem("error", path, line_no, f"heading {shown!r} has no id",
                                    f"end the heading with a stable id, e.g. '{'#' * len(token.markup)} {shown} {{#{slug}}}'",
                                    rule="missing-id"))
            continue
        section_id = match["id"]
        if not ID_PATTERN.fullmatch(section_id):
            problems.append(Problem("error", path, line_no, f"section id {_shown_heading(section_id)!r} is not a valid id",
                                    "ids are lowercase letters, digits and hyphens, e.g. {#sharing}",
                                    section=section_id, rule="invalid-id"))
            continue
        starts.append((index, len(token.markup), match["heading"], section_id))

    sections: list[RawSection] = []
    first = starts[0][0] if starts else len(lines)
    if first:
        # Even blank lines before the first heading belong to the file, so it is written back whole.
        sections.append(RawSection(PREAMBLE_ID, "", 0, "", "".join(lines[:first]), 1))
    for position, (index, level, heading, section_id) in enumerate(starts):
        end = starts[position + 1][0] if position + 1 < len(starts) else len(lines)
        sections.append(RawSection(section_id, heading, level, lines[index], "".join(lines[index + 1:end]), index + 1))

    seen: dict[str, int] = {}
    for section in sections:
        if section.id in seen:
            problems.append(Problem("error", path, section.line, f"section id {section.id!r} is used twice (first at line {seen[section.id]})",
                                    "give each section its own id; the same id in another language file is its translation",
                                    section=section.id, rule="duplicate-id"))
        else:
            seen[section.id] = section.line
    return sections, problems


def is_blank_preamble(section: RawSection) -> bool:
    return section.id == PREAMBLE_ID and not section.body.strip()


def to_html(text: str) -> str:
    """Section text as HTML; markdown-it escapes everything that is not Markdown syntax."""
    return str(markdown().render(text))


def to_plain(text: str) -> str:
    """Section text without Markdown syntax, paragraphs separated by blank lines."""
    blocks: list[str] = []
    prefix = ""
    for token in markdown().parse(text):
        if token.type == "list_item_open":
            prefix = "  • " if token.markup in "-*+" else f"  {token.info}{token.markup} "
        elif token.type == "inline":
            parts = [child.content if child.type not in ("softbreak", "hardbreak") else ("\n" if child.type == "hardbreak" else " ")
                     for child in token.children or ()]
            words = "".join(parts)
            blocks.append(prefix + words)
            prefix = ""
        elif token.type in ("fence", "code_block"):
            blocks.append(token.content.rstrip("\n"))
    return "\n\n".join(blocks)

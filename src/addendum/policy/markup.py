"""Markdown in and out: splitting a policy file into sections, and rendering section text safely."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from markdown_it import MarkdownIt

from addendum.errors import Problem
from addendum.ids import ID_PATTERN

HEADING_ID = re.compile(r"^(?P<heading>.*?)[ \t]*\{#(?P<id>[^}]*)\}[ \t]*$")
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


def split_sections(text: str, path: str) -> tuple[list[RawSection], list[Problem]]:
    """Split Markdown into sections at its top-level ATX headings, each of which must carry `{#id}`."""
    lines = text.splitlines(keepends=True)
    problems: list[Problem] = []
    starts: list[tuple[int, int, str, str]] = []  # (line index, level, heading, id)
    for token in markdown().parse(text):
        if token.type != "heading_open" or token.map is None:
            continue
        index = token.map[0]
        line_no = index + 1
        if token.level != 0:
            problems.append(Problem("error", path, line_no, "a heading inside a list or quote cannot start a section",
                                    "move the heading out of the list or quote", rule="nested-heading"))
            continue
        if not token.markup.startswith("#"):
            problems.append(Problem("error", path, line_no, "underlined (setext) headings are not supported",
                                    "write the heading as '## Heading {#id}'", rule="setext-heading"))
            continue
        raw = lines[index].rstrip("\r\n").lstrip(" ").lstrip("#").strip()
        raw = re.sub(r"[ \t]+#+[ \t]*$", "", raw)  # optional closing hashes
        match = HEADING_ID.match(raw)
        if match is None:
            slug = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")[:40] or "section-id"
            problems.append(Problem("error", path, line_no, f"heading {raw!r} has no id",
                                    f"end the heading with a stable id, e.g. '{'#' * len(token.markup)} {raw} {{#{slug}}}'",
                                    rule="missing-id"))
            continue
        section_id = match["id"]
        if not ID_PATTERN.fullmatch(section_id):
            problems.append(Problem("error", path, line_no, f"section id {section_id!r} is not a valid id",
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

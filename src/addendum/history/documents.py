"""Reading an edited source .docx back into a policy's Markdown: sections by bookmark, heading or position.

The document is read as sections of Markdown blocks. A section whose blocks are what the current source exports
to (read through this same reader) keeps its Markdown byte for byte, so an export imported without an edit changes
nothing; an edited one is written from the document: paragraphs, lists, quotes, emphasis, links, line breaks, and
its placeholders from their content controls.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from addendum.errors import UsageError
from addendum.policy.markup import PREAMBLE_ID
from addendum.policy.model import Document, Section

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
R_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
PLACEHOLDER_ALIAS = "Addendum placeholder"  # as render/word/document.py writes it
SITE_NOTE_STYLE = "AddendumSiteNote"
KIND_PROPERTY = "addendum.kind"
# A .docx is a zip: its parts' sizes are checked, as the archive states them, before any part is read.
MAX_UNCOMPRESSED = 50_000_000
MAX_PARTS = 2_000
HEADING_STYLE = re.compile(r"^Heading([1-9])$")
LIST_STYLE = re.compile(r"^(ListBullet|ListNumber|ListContinue)([23]?)$")
TRACKED = ("ins", "del", "moveFrom", "moveTo", "pPrChange", "rPrChange", "sectPrChange", "tblPrChange")
MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]])")
SAFE = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


@dataclass(frozen=True)
class ReadSection:
    """A section as the document holds it: the id its bookmark names (or ""), heading, level, Markdown blocks."""

    bookmark: str
    heading: str
    level: int
    blocks: tuple[str, ...]
    site_override: bool = False


@dataclass(frozen=True)
class Comment:
    author: str
    text: str


@dataclass(frozen=True)
class ReadDocument:
    sections: tuple[ReadSection, ...]
    properties: Mapping[str, str]
    comments: tuple[Comment, ...]
    tracked_changes: int


@dataclass
class Rebuilt:
    """A file's new text, and what the import did to its sections."""

    text: str
    new_ids: list[str] = field(default_factory=list)
    deleted_ids: list[str] = field(default_factory=list)
    changed_ids: list[str] = field(default_factory=list)


def _parts(data: bytes, name: str) -> zipfile.ZipFile:
    try:
        package = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise UsageError(f"{name} is not a .docx (not a zip package)", "save it from Word as a Word document (.docx)") from None
    infos = package.infolist()
    total = sum(info.file_size for info in infos)
    if len(infos) > MAX_PARTS or total > MAX_UNCOMPRESSED:
        raise UsageError(f"{name} unpacks to {total:,} bytes in {len(infos):,} parts, more than a policy document holds "
                         f"({MAX_UNCOMPRESSED:,} bytes, {MAX_PARTS:,} parts)", "a zip bomb is refused; import the text as a smaller .docx")
    return package


def _xml(package: zipfile.ZipFile, part: str) -> Any:
    try:
        return etree.fromstring(package.read(part), SAFE)
    except KeyError:
        return None
    except etree.XMLSyntaxError as exc:
        raise UsageError(f"{part} in the .docx is not well-formed XML: {exc}", "open and save the file in Word again") from None


def _properties(package: zipfile.ZipFile) -> dict[str, str]:
    root = _xml(package, "docProps/custom.xml")
    if root is None:
        return {}
    return {str(node.get("name")): "".join(node.itertext()) for node in root if node.get("name")}


def _links(package: zipfile.ZipFile) -> dict[str, str]:
    root = _xml(package, "word/_rels/document.xml.rels")
    if root is None:
        return {}
    return {str(rel.get("Id")): str(rel.get("Target") or "") for rel in root if rel.get("TargetMode") == "External"
            and str(rel.get("Type", "")).endswith("/hyperlink")}


def _comments(package: zipfile.ZipFile) -> tuple[Comment, ...]:
    root = _xml(package, "word/comments.xml")
    if root is None:
        return ()
    return tuple(Comment(str(c.get(f"{W}author") or ""), " ".join("".join(c.itertext()).split())) for c in root.iter(f"{W}comment"))


def accept_all(body: Any) -> None:
    """Accept every tracked change in place: insertions kept, deletions dropped, a deleted paragraph mark joining
    its paragraph with the next, formatting changes kept as they now are."""
    for paragraph in list(body.iter(f"{W}p")):
        mark = paragraph.find(f"{W}pPr/{W}rPr/{W}del")
        following = paragraph.getnext()
        if mark is not None and following is not None and following.tag == f"{W}p":
            for child in list(following):
                if child.tag != f"{W}pPr":
                    paragraph.append(child)
            following.getparent().remove(following)
    for tag in ("del", "moveFrom", "pPrChange", "rPrChange", "sectPrChange", "tblPrChange", "moveFromRangeStart",
                "moveFromRangeEnd", "moveToRangeStart", "moveToRangeEnd"):
        for node in list(body.iter(f"{W}{tag}")):
            node.getparent().remove(node)
    for tag in ("ins", "moveTo"):
        for node in list(body.iter(f"{W}{tag}")):
            parent = node.getparent()
            if parent.tag == f"{W}rPr":  # a tracked paragraph mark or run property: the mark stays
                parent.remove(node)
                continue
            index = parent.index(node)
            for offset, child in enumerate(list(node)):
                parent.insert(index + offset, child)
            parent.remove(node)


def _style(paragraph: Any) -> str:
    node = paragraph.find(f"{W}pPr/{W}pStyle")
    return str(node.get(f"{W}val")) if node is not None else ""


def _flag(props: Any, tag: str) -> bool:
    node = props.find(f"{W}{tag}") if props is not None else None
    return node is not None and node.get(f"{W}val") not in ("0", "false", "off")


def _segments(node: Any, links: Mapping[str, str], out: list[tuple[str, bool, bool, bool]]) -> None:
    """(markdown, bold, italic, literal) pieces of an inline container, in order."""
    for child in node:
        tag = child.tag
        if tag == f"{W}r":
            props = child.find(f"{W}rPr")
            bold, italic = _flag(props, "b"), _flag(props, "i")
            for item in child:
                if item.tag == f"{W}t":
                    out.append((MARKDOWN_SPECIALS.sub(r"\\\1", item.text or ""), bold, italic, False))
                elif item.tag == f"{W}tab":
                    out.append(("\t", bold, italic, False))
                elif item.tag in (f"{W}br", f"{W}cr"):
                    out.append(("\\\n", False, False, True))
                elif item.tag == f"{W}noBreakHyphen":
                    out.append(("\u2011", bold, italic, False))
        elif tag == f"{W}hyperlink":
            inner: list[tuple[str, bool, bool, bool]] = []
            _segments(child, links, inner)
            text = _join(inner)
            target = links.get(str(child.get(R_ID) or ""), "")
            if target.lower().startswith(("http://", "https://", "mailto:")):
                out.append((f"[{text}](<{target}>)" if text else target, False, False, True))
            else:
                out.append((text, False, False, True))
        elif tag == f"{W}sdt":
            alias = child.find(f"{W}sdtPr/{W}alias")
            tag_node = child.find(f"{W}sdtPr/{W}tag")
            if alias is not None and alias.get(f"{W}val") == PLACEHOLDER_ALIAS and tag_node is not None:
                out.append((str(tag_node.get(f"{W}val") or ""), False, False, True))
            else:
                content = child.find(f"{W}sdtContent")
                if content is not None:
                    _segments(content, links, out)
        elif tag in (f"{W}smartTag", f"{W}customXml", f"{W}fldSimple", f"{W}ins", f"{W}moveTo", f"{W}sdtContent"):
            _segments(child, links, out)


def _join(pieces: Sequence[tuple[str, bool, bool, bool]]) -> str:
    """Markdown of the pieces: runs of one formatting merged, emphasis around words only (spaces outside)."""
    merged: list[list[Any]] = []
    for text, bold, italic, literal in pieces:
        if merged and not literal and not merged[-1][3] and merged[-1][1:3] == [bold, italic]:
            merged[-1][0] += text
        else:
            merged.append([text, bold, italic, literal])
    out = []
    for text, bold, italic, _ in merged:
        marker = ("**" if bold else "") + ("*" if italic else "")
        if marker and text.strip():
            lead, core, trail = re.match(r"^(\s*)(.*?)(\s*)$", text, re.S).groups()  # type: ignore[union-attr]
            out.append(f"{lead}{marker}{core}{marker[::-1]}{trail}")
        else:
            out.append(text)
    return "".join(out)


def paragraph_markdown(paragraph: Any, links: Mapping[str, str]) -> str:
    pieces: list[tuple[str, bool, bool, bool]] = []
    _segments(paragraph, links, pieces)
    return _join(pieces)


def _block(style: str, text: str, numbers: dict[int, int]) -> str:
    match = LIST_STYLE.match(style)
    if match:
        depth = int(match.group(2) or 1)
        indent = "   " * (depth - 1)
        for deeper in [d for d in numbers if d > depth]:
            del numbers[deeper]
        if match.group(1) == "ListContinue":
            return indent + "   " + text.replace("\n", "\n" + indent + "   ")
        if match.group(1) == "ListNumber":
            numbers[depth] = numbers.get(depth, 0) + 1
            return f"{indent}{numbers[depth]}. " + text.replace("\n", "\n" + indent + "   ")
        return f"{indent}- " + text.replace("\n", "\n" + indent + "   ")
    numbers.clear()
    if style == "Quote":
        return "> " + text.replace("\n", "\n> ")
    if style == "MacroText":
        return "    " + text.replace("\\\n", "\n    ")
    return text


def document_kind(data: bytes, name: str) -> str:
    """What a .docx says it is in its custom properties: "source" (an export), "render", or "" (any other document)."""
    return _properties(_parts(data, name)).get(KIND_PROPERTY, "")


def read_docx(data: bytes, name: str, *, accept_changes: bool = False) -> ReadDocument:
    """The sections of a source .docx; tracked changes are refused unless `accept_changes` (then accepted)."""
    package = _parts(data, name)
    root = _xml(package, "word/document.xml")
    if root is None:
        raise UsageError(f"{name} has no word/document.xml: it is not a Word document", "save it from Word as a .docx")
    body = root.find(f"{W}body")
    tracked = sum(len(body.findall(f".//{W}{tag}")) for tag in TRACKED) if body is not None else 0
    if tracked and not accept_changes:
        raise UsageError(f"{name} holds {tracked} unresolved tracked change(s)",
                         "accept or reject them in Word first, or pass --accept-changes to take them as they stand")
    if body is not None and tracked:
        accept_all(body)
    links = _links(package)
    sections: list[list[Any]] = []  # [bookmark, heading, level, blocks, override]
    numbers: dict[int, int] = {}
    for paragraph in body.iter(f"{W}p") if body is not None else ():
        if paragraph.getparent() is not body and paragraph.getparent().tag != f"{W}sdtContent":
            continue  # inside a table: tables are not part of a policy's source text
        style = _style(paragraph)
        heading = HEADING_STYLE.match(style)
        text = paragraph_markdown(paragraph, links)
        if heading:
            names = [str(b.get(f"{W}name") or "") for b in paragraph.iter(f"{W}bookmarkStart")]
            sections.append([next((n for n in names if n.startswith("s_")), ""), text.strip(), int(heading.group(1)), [], False])
            numbers.clear()
            continue
        if not sections:
            sections.append(["", "", 0, [], False])
        if style == SITE_NOTE_STYLE:
            sections[-1][4] = True
            continue
        if text.strip():
            sections[-1][3].append(_block(style, text, numbers))
    return ReadDocument(tuple(ReadSection(b, h, lv, tuple(bl), o) for b, h, lv, bl, o in sections), _properties(package),
                        _comments(package), tracked)


def heading_slug(text: str) -> str:
    """A new section's id from its heading: lowercase ASCII letters, digits and hyphens."""
    plain = unicodedata.normalize("NFKD", re.sub(r"[\\*_`\[\]]", "", text)).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", plain).strip("-")[:63].strip("-")
    return slug or "section"


def match_sections(read: Sequence[ReadSection], known: Sequence[Section], bookmark_of: Mapping[str, str]) -> list[str]:
    """The id of each read section: by bookmark, then by heading, then by position; "" for a new one."""
    ids = [bookmark_of.get(s.bookmark, "") if s.bookmark else "" for s in read]
    if read and not read[0].level and not ids[0]:
        ids[0] = PREAMBLE_ID if any(k.id == PREAMBLE_ID for k in known) else ""
    used = set(ids)
    by_heading: dict[str, str] = {}
    for item in known:
        by_heading.setdefault(item.heading.strip(), item.id)
    for index, section in enumerate(read):
        if not ids[index] and by_heading.get(section.heading) not in used and section.heading in by_heading:
            ids[index] = by_heading[section.heading]
            used.add(ids[index])
    for index, section in enumerate(read):
        if not ids[index] and index < len(known) and known[index].id not in used and known[index].level == section.level:
            ids[index] = known[index].id
            used.add(ids[index])
    return ids


def _new_id(heading: str, taken: set[str]) -> str:
    base = candidate = heading_slug(heading)
    number = 2
    while candidate in taken:
        candidate = f"{base[:58]}-{number}"
        number += 1
    taken.add(candidate)
    return candidate


def rebuild(original: Document, read: Iterable[tuple[str, ReadSection | None]], reference: Mapping[str, ReadSection],
            taken: set[str]) -> Rebuilt:
    """The file's new Markdown from the read sections (id, section) in document order: an unchanged section is its
    original text, a changed one is written from the document, a new one gets a new id; None keeps the original
    section where it is (a site's overriding section leaves the common text alone)."""
    out = Rebuilt("")
    pieces: list[str] = []
    seen: set[str] = set()
    written_last = False
    preamble = original.get(PREAMBLE_ID)
    items = list(read)
    if preamble is not None and not any(section_id == PREAMBLE_ID for section_id, _ in items):
        pieces.append(preamble.heading_line + preamble.body)
        seen.add(PREAMBLE_ID)
    for section_id, section in items:
        if section is None:
            kept = original.get(section_id)
            if kept is not None:
                pieces.append(kept.heading_line + kept.body)
                seen.add(section_id)
                written_last = False
            continue
        if not section_id:
            section_id = _new_id(section.heading, taken)
            out.new_ids.append(section_id)
        seen.add(section_id)
        old = original.get(section_id)
        before = reference.get(section_id)
        if old is not None and before is not None and (before.heading, before.level, before.blocks) == (section.heading, section.level, section.blocks):
            pieces.append(old.heading_line + old.body)
            written_last = False
            continue
        if old is not None:
            out.changed_ids.append(section_id)
        head = f"{'#' * section.level} {section.heading} {{#{section_id}}}\n\n" if section.level else ""
        text = "\n\n".join(section.blocks)
        pieces.append(head + (text + "\n\n" if text else ""))
        written_last = True
    out.deleted_ids = [s.id for s in original.sections if s.id not in seen and not (s.id == PREAMBLE_ID and not s.body.strip())]
    text = "".join(pieces)
    if written_last:  # a file ends in one line end
        text = text.rstrip("\n") + "\n"
    out.text = text
    return out

"""WordprocessingML building blocks with lxml: runs, paragraphs, revision marks, bookmarks, comments, properties.

The package itself (styles, content types, relationships) comes from python-docx's default document; the body
is written here, element by element, because python-docx has no API for tracked changes.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from lxml import etree

from addendum.policy.markup import INVISIBLE

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
XML_NS = "http://www.w3.org/XML/1998/namespace"
# What XML 1.0 cannot hold at all (and lxml refuses): shown by code point like the invisible characters.
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
SHOWN_BY_CODE = re.compile(f"{INVISIBLE.pattern}|{XML_FORBIDDEN.pattern}")
INVISIBLE_STYLE = "AddendumInvisible"
# Revision ops: what a run is in the document. "moveFrom"/"moveTo" are the two ends of a move.
REVISION_TAGS = {"insert": "ins", "delete": "del", "moveFrom": "moveFrom", "moveTo": "moveTo"}
OLD_ONLY = frozenset({"delete", "moveFrom"})
NEW_ONLY = frozenset({"insert", "moveTo"})


def w(tag: str) -> str:
    return f"{{{W_NS}}}{tag}"


def element(tag: str, attrs: dict[str, str] | None = None, *children: Any) -> Any:
    """A w:… element with w:… attributes (written without the prefix) and children."""
    node = etree.Element(w(tag))
    for key, value in (attrs or {}).items():
        node.set(w(key), value)
    for child in children:
        if child is not None:
            node.append(child)
    return node


def shown(char: str) -> str:
    """How an invisible or forbidden character is written: its code point, as the HTML and PDF redlines show it."""
    return f"U+{ord(char):04X}"


def language_tag(code: str) -> str:
    """A BCP 47 tag for w:lang from a language code or a locale (en_GB → en-GB)."""
    return code.replace("_", "-")


@dataclass
class Marks:
    """The revision marks of one document: unique ids (shared with bookmarks and comments), one author, one date."""

    author: str
    when: date
    next_id: int = 1
    revisions: int = 0

    @property
    def stamp(self) -> str:
        return datetime.combine(self.when, time(0, 0), tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def new_id(self) -> str:
        value = self.next_id
        self.next_id += 1
        return str(value)

    def revision(self, op: str) -> Any:
        self.revisions += 1
        return element(REVISION_TAGS[op], {"id": self.new_id(), "author": self.author, "date": self.stamp})


@dataclass
class Style:
    """Run formatting: a character style, bold, italic, and the language."""

    lang: str
    char_style: str = ""
    bold: bool = False
    italic: bool = False
    extra: tuple[Any, ...] = field(default_factory=tuple)

    def rpr(self, char_style: str = "") -> Any:
        props = element("rPr")
        style = char_style or self.char_style
        if style:
            props.append(element("rStyle", {"val": style}))
        if self.bold:
            props.append(element("b"))
        if self.italic:
            props.append(element("i"))
        for item in self.extra:
            props.append(etree.fromstring(etree.tostring(item)))
        props.append(element("lang", {"val": self.lang}))
        return props


def text_runs(text: str, style: Style, *, deleted: bool = False) -> list[Any]:
    """Runs for `text`: tabs as w:tab, line breaks as w:br, invisible or forbidden characters as their code point in
    the invisible-character style; `deleted` writes w:delText (the only text a w:del may hold)."""
    runs: list[Any] = []
    tag = "delText" if deleted else "t"
    last = 0
    for match in SHOWN_BY_CODE.finditer(text):
        if match.start() > last:
            runs.append(_plain_run(text[last:match.start()], style, tag))
        runs.append(_run_with_text(shown(match.group()), style.rpr(INVISIBLE_STYLE), tag))
        last = match.end()
    if last < len(text):
        runs.append(_plain_run(text[last:], style, tag))
    return runs


def _plain_run(text: str, style: Style, tag: str) -> Any:
    run = element("r", None, style.rpr())
    for index, part in enumerate(text.split("\t")):
        if index:
            run.append(element("tab"))
        if part:
            node = etree.SubElement(run, w(tag))
            node.text = part
            node.set(f"{{{XML_NS}}}space", "preserve")
    return run


def _run_with_text(text: str, props: Any, tag: str) -> Any:
    run = element("r", None, props)
    node = etree.SubElement(run, w(tag))
    node.text = text
    node.set(f"{{{XML_NS}}}space", "preserve")
    return run


def break_run(style: Style) -> Any:
    return element("r", None, style.rpr(), element("br"))


def paragraph(style_id: str, lang: str, mark: Any = None, keep_next: bool = False, change: Any = None) -> Any:
    """A w:p with its style, language and (for a tracked paragraph mark) the revision on the mark's run properties."""
    ppr = element("pPr", None, element("pStyle", {"val": style_id}) if style_id else None)
    if keep_next:
        ppr.append(element("keepNext"))
    mark_props = element("rPr")
    if mark is not None:
        mark_props.append(mark)
    mark_props.append(element("lang", {"val": lang}))
    ppr.append(mark_props)
    if change is not None:
        ppr.append(change)
    return element("p", None, ppr)


def simple_paragraph(text: str, style_id: str, lang: str, style: Style | None = None) -> Any:
    para = paragraph(style_id, lang)
    for run in text_runs(text, style or Style(lang)):
        para.append(run)
    return para


def bookmark(para: Any, name: str, marks: Marks) -> None:
    """Bookmark the whole content of `para` (after its properties)."""
    ident = marks.new_id()
    para.insert(1, element("bookmarkStart", {"id": ident, "name": name}))
    para.append(element("bookmarkEnd", {"id": ident}))


BOOKMARK_LIMIT = 40  # Word keeps at most 40 characters of a bookmark's name


def bookmark_name(section_id: str) -> str:
    """A section's bookmark: Word wants a letter first, letters, digits and `_`, at most 40 characters; ids have
    only lowercase letters, digits and hyphens, so `s_` + the id with `_` for `-` names one section only. An id too
    long for that keeps its first characters and a digest of the whole."""
    name = "s_" + section_id.replace("-", "_")
    if len(name) <= BOOKMARK_LIMIT:
        return name
    import hashlib

    return name[:BOOKMARK_LIMIT - 9] + "_" + hashlib.sha256(section_id.encode()).hexdigest()[:8]


def table(rows: Sequence[Sequence[str]], lang: str, *, header: bool = True, widths: Sequence[int] = ()) -> Any:
    """A plain grid table of text cells; the first row repeats on each page as a header row."""
    tbl = element("tbl", None, element("tblPr", None, element("tblStyle", {"val": "TableGrid"}),
                                         element("tblW", {"w": "5000", "type": "pct"})))
    grid = element("tblGrid")
    count = max((len(r) for r in rows), default=1)
    for index in range(count):
        grid.append(element("gridCol", {"w": str(widths[index] if index < len(widths) else 9000 // count)}))
    tbl.append(grid)
    for index, row in enumerate(rows):
        tr = element("tr")
        if header and index == 0:
            tr.append(element("trPr", None, element("tblHeader")))
        for cell in row:
            tc = element("tc")
            lines = cell.split("\n") if cell else [""]
            for line in lines:
                tc.append(simple_paragraph(line, "", lang, Style(lang, bold=header and index == 0)))
            tr.append(tc)
        tbl.append(tr)
    return tbl


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def iter_text(nodes: Iterable[Any]) -> str:
    return "".join(node.text or "" for node in nodes)


def to_bytes(document: Any) -> bytes:
    """Save a python-docx Document to bytes."""
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def new_document(lang: str, title: str, *, author: str = "", subject: str = "") -> Any:
    """python-docx's default document with our character style for invisible characters, the document's language
    as the default of every style, and the title, language and author in its core properties."""
    import docx
    from docx.enum.style import WD_STYLE_TYPE
    from docx.shared import RGBColor

    document = docx.Document()
    invisible = document.styles.add_style("Addendum Invisible", WD_STYLE_TYPE.CHARACTER)
    invisible.font.color.rgb = RGBColor(0x6A, 0x1B, 0x9A)
    invisible.font.name = "DejaVu Sans Mono"
    invisible.element.get_or_add_rPr().append(element("shd", {"val": "clear", "color": "auto", "fill": "EDE7F6"}))
    defaults = document.styles.element.find(w("docDefaults"))
    if defaults is not None:
        run_defaults = defaults.find(f"{w('rPrDefault')}/{w('rPr')}")
        if run_defaults is not None:
            for old in run_defaults.findall(w("lang")):
                run_defaults.remove(old)
            run_defaults.append(element("lang", {"val": lang, "eastAsia": lang, "bidi": lang}))
    props = document.core_properties
    props.title = title[:255]
    props.language = lang
    props.author = author[:255]
    props.subject = subject[:255]
    props.comments = ""
    props.last_modified_by = author[:255]
    return document


class Body:
    """Appends block content to a python-docx document's body, before its final section properties."""

    def __init__(self, document: Any) -> None:
        self.node = document.element.body
        self.end = self.node.find(w("sectPr"))

    def add(self, block: Any) -> Any:
        if self.end is not None:
            self.end.addprevious(block)
        else:
            self.node.append(block)
        return block

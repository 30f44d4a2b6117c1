"""A policy as a Word document: the resolved text for readers (render), or one language's source for editing (export).

Section text is Markdown, written through markdown-it's tokens: paragraphs, bullet and numbered lists, quotes, code,
emphasis, links (http, https and mailto only) and line breaks. In a source export each `{{ … }}` or `{% … %}` is a
locked content control holding the placeholder itself, so that an edited copy gives it back unchanged.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from addendum.policy.markup import markdown
from addendum.policy.resolve import ResolvedPolicy, placeholders_in
from addendum.render.word.ooxml import (
    Body,
    Marks,
    Style,
    bookmark,
    bookmark_name,
    break_run,
    element,
    language_tag,
    new_document,
    paragraph,
    simple_paragraph,
    text_runs,
    to_bytes,
)
from addendum.templates import long_date, strings

HEADING_STYLE_LIMIT = 9
LINK_SCHEMES = ("http://", "https://", "mailto:")
PLACEHOLDER_ALIAS = "Addendum placeholder"
SITE_NOTE_STYLE = "AddendumSiteNote"
R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
# The custom document property naming what a .docx is: "render" (for readers, not to be imported) or "source".
KIND_PROPERTY = "addendum.kind"
CUSTOM_PROPERTIES_PART = "docProps/custom.xml"
CUSTOM_TYPE = "application/vnd.openxmlformats-officedocument.custom-properties+xml"
CUSTOM_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties"
CUSTOM_NS = "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"
VT_NS = "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"
PROPERTY_FMTID = "{D5CDD505-2E9C-101B-9397-08002B2CF9AE}"


@dataclass(frozen=True)
class SourceSection:
    """One section of a source export: its id, heading, level and Markdown body, and whether a site's text overrides it."""

    id: str
    heading: str
    level: int
    body: str
    site_override: bool = False


class MarkdownWriter:
    """Appends Markdown text to a document body as Word paragraphs."""

    def __init__(self, document: Any, body: Body, marks: Marks, lang: str, *, placeholders: bool) -> None:
        self.document = document
        self.body = body
        self.marks = marks
        self.lang = lang
        self.placeholders = placeholders

    def heading(self, text: str, level: int, section_id: str) -> None:
        para = paragraph(f"Heading{min(max(level, 1), HEADING_STYLE_LIMIT)}", self.lang, keep_next=True)
        self._inline_text(para, text, Style(self.lang))
        bookmark(para, bookmark_name(section_id), self.marks)
        self.body.add(para)

    def markdown(self, text: str) -> None:
        lists: list[str] = []  # "bullet" | "ordered", innermost last
        quote = 0
        first_in_item = False
        para: Any = None
        for token in markdown().parse(text):
            kind = token.type
            if kind in ("bullet_list_open", "ordered_list_open"):
                lists.append("bullet" if kind == "bullet_list_open" else "ordered")
            elif kind in ("bullet_list_close", "ordered_list_close"):
                lists.pop()
            elif kind == "list_item_open":
                first_in_item = True
            elif kind == "blockquote_open":
                quote += 1
            elif kind == "blockquote_close":
                quote -= 1
            elif kind in ("paragraph_open", "heading_open"):
                para = paragraph(self._block_style(token, lists, quote, first_in_item), self.lang)
                first_in_item = False
            elif kind == "inline" and para is not None:
                self._inline(para, token.children or [])
            elif kind in ("paragraph_close", "heading_close") and para is not None:
                self.body.add(para)
                para = None
            elif kind in ("fence", "code_block"):
                code = paragraph("MacroText", self.lang)
                for index, line in enumerate(token.content.rstrip("\n").split("\n")):
                    if index:
                        code.append(break_run(Style(self.lang)))
                    self._inline_text(code, line, Style(self.lang))
                self.body.add(code)

    @staticmethod
    def _block_style(token: Any, lists: Sequence[str], quote: int, first_in_item: bool) -> str:
        if token.type == "heading_open":
            return f"Heading{min(int(token.tag[1:]), HEADING_STYLE_LIMIT)}"
        if lists:
            depth = "" if len(lists) == 1 else str(min(len(lists), 3))
            if not first_in_item:
                return f"ListContinue{depth}"
            return f"{'ListBullet' if lists[-1] == 'bullet' else 'ListNumber'}{depth}"
        return "Quote" if quote else "BodyText"

    def _inline(self, para: Any, children: Sequence[Any]) -> None:
        bold = italic = 0
        link: Any = None
        for child in children:
            kind = child.type
            target = link if link is not None else para
            style = Style(self.lang, bold=bold > 0, italic=italic > 0,
                          extra=(element("color", {"val": "0563C1"}), element("u", {"val": "single"})) if link is not None else ())
            if kind == "text":
                self._inline_text(target, child.content, style)
            elif kind == "code_inline":
                self._inline_text(target, child.content, Style(self.lang, bold=bold > 0, italic=italic > 0,
                                                             extra=(element("rFonts", {"ascii": "DejaVu Sans Mono", "hAnsi": "DejaVu Sans Mono"}),)))
            elif kind == "softbreak":
                self._inline_text(target, " ", style)
            elif kind == "hardbreak":
                target.append(break_run(style))
            elif kind == "strong_open":
                bold += 1
            elif kind == "strong_close":
                bold -= 1
            elif kind == "em_open":
                italic += 1
            elif kind == "em_close":
                italic -= 1
            elif kind == "link_open":
                href = str(child.attrs.get("href", ""))
                if href.lower().startswith(LINK_SCHEMES) and "{{" not in href and "{%" not in href:
                    from docx.opc.constants import RELATIONSHIP_TYPE

                    rel = self.document.part.relate_to(href, RELATIONSHIP_TYPE.HYPERLINK, is_external=True)
                    link = element("hyperlink")
                    link.set(f"{{{R_NS}}}id", rel)
                    para.append(link)
            elif kind == "link_close":
                link = None

    def _inline_text(self, target: Any, text: str, style: Style) -> None:
        """Text runs; in a source export each placeholder is a locked content control showing it."""
        pieces = placeholders_in(text) if self.placeholders else []
        position = 0
        for piece in pieces:
            start = text.index(piece, position)
            for run in text_runs(text[position:start], style):
                target.append(run)
            target.append(self._placeholder(piece, style))
            position = start + len(piece)
        for run in text_runs(text[position:], style):
            target.append(run)

    def _placeholder(self, expression: str, style: Style) -> Any:
        props = element("sdtPr", None, element("alias", {"val": PLACEHOLDER_ALIAS}), element("tag", {"val": expression}),
                        element("id", {"val": self.marks.new_id()}), element("lock", {"val": "sdtContentLocked"}))
        content = element("sdtContent")
        for run in text_runs(expression, Style(style.lang, bold=style.bold, italic=style.italic,
                                               extra=(element("shd", {"val": "clear", "color": "auto", "fill": "E3F2FD"}),))):
            content.append(run)
        return element("sdt", None, props, content)


def with_custom_properties(data: bytes, properties: Mapping[str, str]) -> bytes:
    """The package with `properties` as its custom document properties (docProps/custom.xml, its content type and
    relationship), which python-docx does not write."""
    entries = "".join(
        f'<property fmtid="{PROPERTY_FMTID}" pid="{index}" name={quoteattr(name)}><vt:lpwstr>{escape(value)}</vt:lpwstr></property>'
        for index, (name, value) in enumerate(properties.items(), start=2))
    custom = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Properties xmlns="{CUSTOM_NS}" '
              f'xmlns:vt="{VT_NS}">{entries}</Properties>')
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        for info in source.infolist():
            if info.filename == CUSTOM_PROPERTIES_PART:
                continue
            content = source.read(info.filename)
            if info.filename == "[Content_Types].xml" and CUSTOM_PROPERTIES_PART.encode() not in content:
                content = content.replace(b"</Types>", f'<Override PartName="/{CUSTOM_PROPERTIES_PART}" '
                                                       f'ContentType="{CUSTOM_TYPE}"/></Types>'.encode())
            elif info.filename == "_rels/.rels" and CUSTOM_REL.encode() not in content:
                content = content.replace(b"</Relationships>", f'<Relationship Id="rIdAddendumCustom" Type="{CUSTOM_REL}" '
                                                               f'Target="{CUSTOM_PROPERTIES_PART}"/></Relationships>'.encode())
            package.writestr(info.filename, content)
        package.writestr(CUSTOM_PROPERTIES_PART, custom.encode("utf-8"))
    return out.getvalue()


def policy_docx(resolved: ResolvedPolicy, last_changed: date | None, repo_templates: Path | None = None,
                earlier_versions: Sequence[date] = ()) -> bytes:
    """The text for one site and language as readers see it, for reading and filing (not for editing back: the
    placeholders are filled in, and the file says so in its custom properties)."""
    t = strings(resolved.language, repo_templates)
    lang = language_tag(resolved.locale or resolved.language)
    document = new_document(lang, resolved.title, subject=resolved.site_name)
    body = Body(document)
    marks = Marks(author="", when=last_changed or date.today())
    body.add(simple_paragraph(resolved.title, "Title", lang))
    when = (t.gettext("Last changed on %(date)s", date=long_date(last_changed, resolved.locale)) if last_changed
            else t.gettext("Draft: this text has not been published"))
    body.add(simple_paragraph(f"{resolved.site_name} · {when}", "Subtitle", lang))
    if earlier_versions:
        dates = ", ".join(long_date(day, resolved.locale) for day in earlier_versions)
        body.add(simple_paragraph(t.gettext("Earlier versions: in force from %(dates)s", dates=dates), "BodyText", lang))
    top = min((s.level for s in resolved.sections if s.level), default=1)
    for section in resolved.sections:
        section_lang = lang if section.language == resolved.language else language_tag(section.language)
        writer = MarkdownWriter(document, body, marks, section_lang, placeholders=False)
        if section.level:
            writer.heading(section.heading, section.level - top + 1, section.id)
        if section.fallback and section.text.strip():
            note = t.gettext("This section is not yet available in %(reader)s; the %(language)s text follows.",
                             reader=t.language_name(resolved.language), language=t.language_name(section.language))
            body.add(simple_paragraph(f"[{note}]", "BodyText", lang, Style(lang, italic=True)))
        writer.markdown(section.text)
    return with_custom_properties(to_bytes(document), {KIND_PROPERTY: "render", "addendum.policy": resolved.policy_id,
                                                       "addendum.language": resolved.language, "addendum.site": resolved.site})


def source_docx(sections: Sequence[SourceSection], *, title: str, language: str, locale: str, site_name: str,
                properties: Mapping[str, str], repo_templates: Path | None = None) -> bytes:
    """One language's source for a lawyer to edit in Word: each section a heading bookmarked with its id, its
    placeholders locked content controls, a site's overriding sections marked; `properties` (policy, language,
    site, commit) are kept in the custom document properties, with addendum.kind = "source"."""
    t = strings(language, repo_templates)
    lang = language_tag(locale or language)
    document = new_document(lang, title, subject=site_name)
    from docx.enum.style import WD_STYLE_TYPE
    from docx.shared import RGBColor

    note_style = document.styles.add_style("Addendum Site Note", WD_STYLE_TYPE.PARAGRAPH)
    note_style.font.italic = True
    note_style.font.color.rgb = RGBColor(0x8A, 0x4B, 0x08)
    body = Body(document)
    marks = Marks(author="", when=date.today())
    for section in sections:
        writer = MarkdownWriter(document, body, marks, lang, placeholders=True)
        if section.level:
            writer.heading(section.heading, section.level, section.id)
        if section.site_override:
            body.add(simple_paragraph(t.gettext("%(site)s's own text for this section (it overrides the common text).",
                                                site=site_name), SITE_NOTE_STYLE, lang))
        writer.markdown(section.body)
    return with_custom_properties(to_bytes(document), {KIND_PROPERTY: "source", **properties})

"""Adopting an existing policy: a .docx (through mammoth's semantic HTML) or a saved web page as sectioned Markdown.

Nothing is fetched: links are kept as text and targets (http, https and mailto only), images are dropped, a .docx's
images are never opened. Scripts, styles, forms, navigation, headers, footers and cookie banners are dropped and
counted. Headings become sections with ids made from their text (ASCII slugs, unique in the file, stable for the
same headings).
"""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from addendum.errors import UsageError
from addendum.history.documents import _parts, heading_slug
from addendum.policy.markup import PREAMBLE_ID

MAX_INPUT = 10_000_000  # bytes of .html or .docx: a policy page is far smaller
DROPPED_TAGS = ("script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "iframe", "object",
                "embed", "svg", "canvas", "button", "input", "select", "textarea", "link", "meta", "dialog")
BANNER = re.compile(r"cookie|consent|gdpr-banner|banner|navbar|menu|breadcrumb|skip-link|share", re.I)
LINK_SCHEMES = ("http://", "https://", "mailto:")
SPECIALS = re.compile(r"([\\`*_\[\]<>])")
PLACEHOLDER_OPENING = re.compile(r"\{(?=[{%#])")


@dataclass
class Adopted:
    """The Markdown of an adopted policy, its title, and what was left out."""

    markdown: str
    title: str
    section_ids: list[str] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    blocks: list[tuple[int, str]] = field(default_factory=list)  # (heading level from 2, or 0 for text; Markdown)


@dataclass(frozen=True)
class Alignment:
    """A second language's text with the ids of the existing sections it aligns to by structure."""

    markdown: str
    section_ids: tuple[str, ...]
    unaligned: tuple[str, ...]  # headings of this text that no existing section matched (they got new ids)
    missing: tuple[str, ...]  # existing section ids this text has no heading for


def align(adopted: Adopted, structure: list[tuple[str, int]]) -> Alignment:
    """Give the adopted headings the ids of `structure` (the existing language's (id, level) in order) where the two
    have the same nesting and order (a longest common subsequence of the levels); nothing is invented: a heading
    left over gets an id from its own text and is reported, an existing section left over is reported missing."""
    import difflib

    headings = [(index, level) for index, (level, _) in enumerate(adopted.blocks) if level]
    top = min((level for _, level in structure), default=2)
    wanted = [level - top + 2 for _, level in structure]
    matcher = difflib.SequenceMatcher(None, [level for _, level in headings], wanted, autojunk=False)
    ids: dict[int, str] = {}
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for (block, _), (section_id, _) in zip(headings[i1:i2], structure[j1:j2], strict=True):
                ids[block] = section_id
    taken = {PREAMBLE_ID, *(section_id for section_id, _ in structure)}
    out: list[str] = []
    given: list[str] = []
    unaligned: list[str] = []
    for index, (level, text) in enumerate(adopted.blocks):
        if not level:
            out.append(text)
            continue
        section_id = ids.get(index) or _unique(heading_slug(text), taken)
        if index not in ids:
            unaligned.append(text)
        given.append(section_id)
        out.append(f"{'#' * min(level, 6)} {text} {{#{section_id}}}")
    missing = tuple(section_id for section_id, _ in structure if section_id not in given)
    return Alignment("\n\n".join(out) + "\n" if out else "", tuple(given), tuple(unaligned), missing)


def _unique(base: str, taken: set[str]) -> str:
    candidate, number = base, 2
    while candidate in taken:
        candidate = f"{base[:58]}-{number}"
        number += 1
    taken.add(candidate)
    return candidate


def _escape(text: str) -> str:
    return PLACEHOLDER_OPENING.sub('{{ "{" }}', SPECIALS.sub(r"\\\1", text))


def _drop(root: Any, dropped: Counter[str]) -> None:
    for node in list(root.iter()):
        if node is not root and root not in node.iterancestors():
            continue  # inside something already dropped
        if not isinstance(node.tag, str):  # comments and processing instructions
            if node.getparent() is not None:
                node.getparent().remove(node)
            continue
        tag = node.tag.lower()
        marks = " ".join(str(node.get(a) or "") for a in ("id", "class", "role", "aria-label"))
        droppable = tag in DROPPED_TAGS or (tag in ("div", "section", "ul", "p") and BANNER.search(marks)) or node.get("hidden") is not None
        if droppable and node.getparent() is not None:
            dropped["cookie banner or navigation" if tag not in DROPPED_TAGS else tag] += 1
            node.getparent().remove(node) if node.tail is None else _remove_keep_tail(node)


def _remove_keep_tail(node: Any) -> None:
    parent, tail = node.getparent(), node.tail
    previous = node.getprevious()
    if previous is not None:
        previous.tail = (previous.tail or "") + tail
    else:
        parent.text = (parent.text or "") + tail
    parent.remove(node)


class _Markdown:
    def __init__(self, dropped: Counter[str]) -> None:
        self.blocks: list[tuple[int, str]] = []  # (heading level or 0, markdown)
        self.dropped = dropped

    def inline(self, node: Any) -> str:
        parts = [_escape(_space(node.text or ""))]
        for child in node:
            tag = child.tag.lower() if isinstance(child.tag, str) else ""
            inner = self.inline(child) if tag not in ("br", "img") else ""
            if tag in ("strong", "b") and inner.strip():
                parts.append(f"**{inner.strip()}** " if inner.endswith(" ") else f"**{inner.strip()}**")
            elif tag in ("em", "i") and inner.strip():
                parts.append(f"*{inner.strip()}* " if inner.endswith(" ") else f"*{inner.strip()}*")
            elif tag == "br":
                parts.append("\\\n")
            elif tag == "img":
                self.dropped["image"] += 1
            elif tag == "a":
                href = str(child.get("href") or "").strip()
                if href.lower().startswith(LINK_SCHEMES) and inner.strip():
                    parts.append(f"[{inner.strip()}](<{href.replace('>', '%3E').replace(' ', '%20')}>)")
                else:
                    if href and not href.startswith("#"):
                        self.dropped["link target (not http, https or mailto)"] += 1
                    parts.append(inner)
            elif tag == "code":
                parts.append(f"`{(child.text_content() or '').replace('`', '')}`")
            else:
                parts.append(inner)
            parts.append(_escape(_space(child.tail or "")))
        return "".join(parts)

    def block(self, node: Any, indent: str = "") -> None:
        tag = node.tag.lower() if isinstance(node.tag, str) else ""
        if re.fullmatch(r"h[1-6]", tag):
            text = " ".join(self.inline(node).split())
            if text:
                self.blocks.append((int(tag[1]), text))
            return
        if tag in ("ul", "ol"):
            lines = self._list(node, "")
            if lines:
                self.blocks.append((0, "\n".join(lines)))
            return
        if tag == "table":
            self._table(node)
            return
        if tag == "blockquote":
            text = " ".join(self.inline(node).split())
            if text:
                self.blocks.append((0, "> " + text))
            return
        if tag in ("p", "pre", "address", "dd", "dt", "figcaption", "caption", "summary"):
            text = "\n".join(" ".join(line.split()) for line in self.inline(node).split("\\\n"))
            text = "\\\n".join(line for line in text.split("\n"))
            if text.strip():
                self.blocks.append((0, text.strip()))
            return
        # A container: its own loose text is a paragraph, its children blocks.
        if (node.text or "").strip():
            self.blocks.append((0, _escape(" ".join(node.text.split()))))
        for child in node:
            self.block(child, indent)
            if (child.tail or "").strip():
                self.blocks.append((0, _escape(" ".join(child.tail.split()))))

    def _list(self, node: Any, indent: str) -> list[str]:
        """A tight list, nested lists indented under their item."""
        lines: list[str] = []
        ordered = node.tag.lower() == "ol"
        for number, item in enumerate((c for c in node if isinstance(c.tag, str) and c.tag.lower() == "li"), start=1):
            marker = f"{number}. " if ordered else "- "
            nested = [c for c in item if isinstance(c.tag, str) and c.tag.lower() in ("ul", "ol")]
            for sub in nested:
                item.remove(sub) if sub.tail is None else _remove_keep_tail(sub)
            lines.append(indent + marker + " ".join(self.inline(item).split()))
            for sub in nested:
                lines.extend(self._list(sub, indent + " " * len(marker)))
        return lines

    def _table(self, node: Any) -> None:
        rows = []
        for row in node.iter("tr"):
            cells = [" ".join(self.inline(c).split()).replace("|", "\\|") for c in row if isinstance(c.tag, str) and c.tag.lower() in ("td", "th")]
            if cells:
                rows.append(cells)
        if not rows:
            return
        width = max(len(r) for r in rows)
        rows = [r + [""] * (width - len(r)) for r in rows]
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width] + ["| " + " | ".join(r) + " |" for r in rows[1:]]
        self.blocks.append((0, "\n".join(lines)))


def _space(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def adopt_html(html: str | bytes, *, select: str | None = None, name: str = "the page") -> Adopted:
    """A saved web page's main content (`select`, a CSS selector; else <main>, <article> or the body) as Markdown."""
    import lxml.html

    if len(html) > MAX_INPUT:
        raise UsageError(f"{name} is {len(html):,} bytes, more than a policy page ({MAX_INPUT:,})", "save only the policy's page")
    try:
        document = lxml.html.document_fromstring(html)
    except Exception as exc:  # lxml raises several kinds for empty or unparsable input
        raise UsageError(f"{name} cannot be read as HTML: {exc}", "save the page from the browser as HTML") from None
    dropped: Counter[str] = Counter()
    title_node = document.find(".//title")
    if title_node is not None:
        title_node.getparent().remove(title_node)
    page_title = " ".join((title_node.text_content() if title_node is not None else "").split())
    if select:
        try:
            found = document.cssselect(select)
        except Exception as exc:  # cssselect's SelectorError, and lxml's own for an XPath it cannot take
            raise UsageError(f"--select {select!r} is not a CSS selector this reader knows: {exc}", "e.g. --select 'main' or '#policy'") from None
        if not found:
            raise UsageError(f"--select {select!r} matches nothing in {name}", "look at the page's source for the element holding the policy")
        root = found[0]
    else:
        main = document.xpath("//main | //article | //*[@role='main']")
        root = main[0] if main else document.body
    _drop(document, dropped)
    writer = _Markdown(dropped)
    writer.block(root)
    return _sections(writer.blocks, page_title, dropped)


def adopt_docx(data: bytes, name: str = "the document") -> Adopted:
    """A .docx through mammoth (semantic HTML: headings, lists, emphasis, links, tables); its images are not read."""
    import mammoth

    from addendum.history.office_xml import read_with_lxml

    read_with_lxml()  # mammoth's answer, with its XML parts read in a fraction of the time

    if len(data) > MAX_INPUT:
        raise UsageError(f"{name} is {len(data):,} bytes, more than a policy document ({MAX_INPUT:,})", "save the text alone as a .docx")
    package = _parts(data, name)
    rels = [n for n in package.namelist() if n.endswith(".rels")]
    external = sum(package.read(n).count(b'TargetMode="External"') for n in rels)
    dropped: Counter[str] = Counter()
    if external:
        dropped["external relationship (not followed)"] += external

    def no_image(image: Any) -> dict[str, str]:
        dropped["image"] += 1
        return {}

    try:
        result = mammoth.convert_to_html(io.BytesIO(data), convert_image=mammoth.images.img_element(no_image))
    except Exception as exc:  # mammoth raises what its zip and XML readers raise
        raise UsageError(f"{name} cannot be read as a Word document: {exc}", "open it in Word and save it as .docx again") from None
    adopted = adopt_html(f"<html><body><main>{result.value}</main></body></html>", name=name)
    adopted.dropped.update(dropped)
    return adopted


def _sections(blocks: list[tuple[int, str]], page_title: str, dropped: Counter[str]) -> Adopted:
    """Headings → sections: the first <h1> before any other heading is the title; ids unique slugs of the headings."""
    title = page_title
    if blocks and blocks[0][0] == 1 and sum(1 for level, _ in blocks if level == 1) == 1:
        title = re.sub(r"\\(.)", r"\1", blocks[0][1])
        blocks = blocks[1:]
    taken = {PREAMBLE_ID}
    out: list[str] = []
    ids: list[str] = []
    top = min((level for level, _ in blocks if level), default=2)
    blocks = [(min(level - top + 2, 6) if level else 0, text) for level, text in blocks]
    for level, text in blocks:
        if level:
            candidate = _unique(heading_slug(text), taken)
            ids.append(candidate)
            out.append(f"{'#' * level} {text} {{#{candidate}}}")
        else:
            out.append(text)
    return Adopted("\n\n".join(out) + "\n" if out else "", title or "Policy", ids, dropped, blocks)

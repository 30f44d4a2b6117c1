"""The XML parts of a .docx read by lxml into mammoth's own node tree: the tree mammoth's minidom reader builds, faster.

mammoth reads each part with xml.dom.minidom and then copies the DOM into its own XmlElement and XmlText nodes; for a
policy of a few hundred kilobytes that is about half of its time. lxml parses the same bytes in C, and its elements
convert to the same nodes in one pass: an element's name and attributes with the same namespace prefixes (a namespace
mammoth has no prefix for keeps its "{uri}local" form), its text, its children, and the text after each child, while
comments and processing instructions go as minidom's reader drops them (their tail text stays). What lxml would read
differently from minidom, a DOCTYPE with its entities, a CDATA section (which minidom's reader drops), a nesting deeper
than lxml allows, or bytes it refuses, is left to mammoth's own reader, so every part reads exactly as mammoth reads it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import IO, Any

# Markers of the XML that lxml and minidom read apart; a part holding one is read by mammoth's own reader.
MAMMOTH_READS = (b"<!DOCTYPE", b"<!doctype", b"<![CDATA[")

_installed: list[Callable[..., Any]] = []  # mammoth's own reader, once ours is in its place


def read_with_lxml() -> None:
    """Put this reader in the place of mammoth's XML reader (once per process; every later conversion uses it)."""
    if _installed:
        return
    from mammoth.docx import office_xml

    _installed.append(office_xml.parse_xml)
    office_xml.parse_xml = parse_xml


def parse_xml(fileobj: IO[bytes], namespace_mapping: Iterable[tuple[str, str]] | None = None) -> Any:
    """mammoth.docx.xmlparser.parse_xml's answer for the same part."""
    from lxml import etree
    from mammoth.docx.xmlparser import XmlElement, XmlText
    from mammoth.docx.xmlparser import parse_xml as mammoths_own

    data = fileobj.read()
    if any(marker in data for marker in MAMMOTH_READS):
        return mammoths_own(io.BytesIO(data), namespace_mapping)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             remove_blank_text=False, strip_cdata=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:  # mammoth's reader says what is wrong, in its own words
        return mammoths_own(io.BytesIO(data), namespace_mapping)
    prefixes = {uri: prefix for prefix, uri in (namespace_mapping or ())}
    names: dict[str, str] = {}

    def name(tag: str) -> str:
        found = names.get(tag)
        if found is None:
            if tag.startswith("{"):
                uri, local = tag[1:].split("}", 1)
                prefix = prefixes.get(uri)
                found = tag if prefix is None else f"{prefix}:{local}"
            else:
                found = tag
            names[tag] = found
        return found

    def convert(element: Any) -> Any:
        children: list[Any] = []
        if element.text:
            children.append(XmlText(element.text))
        for child in element:
            if isinstance(child.tag, str):  # comments and processing instructions have a function as their tag
                children.append(convert(child))
            if child.tail:
                children.append(XmlText(child.tail))
        return XmlElement(name(element.tag), {name(key): value for key, value in element.attrib.items()}, children)

    return convert(root)

"""Our own check of a .docx package: well-formed parts, relationships that resolve, and sound revision marks."""

from __future__ import annotations

import io
import posixpath
import zipfile
from collections import Counter
from typing import Any

from lxml import etree

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
REVISIONS = ("ins", "del", "moveFrom", "moveTo")
ANNOTATIONS = (*REVISIONS, "moveFromRangeStart", "moveToRangeStart", "bookmarkStart", "pPrChange", "rPrChange",
               "comment", "commentRangeStart")
MAX_PART_BYTES = 64 * 1024 * 1024


def _parser() -> Any:
    # No DTDs, no entities, no network: a part is data, never instructions to fetch something.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def validate_package(data: bytes) -> list[str]:
    """Every problem found, as one line each; an empty list for a sound package."""
    problems: list[str] = []
    try:
        package = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        return [f"not a zip package: {exc}"]
    names = set(package.namelist())
    if "[Content_Types].xml" not in names:
        problems.append("no [Content_Types].xml")
    trees: dict[str, Any] = {}
    for info in package.infolist():
        if info.file_size > MAX_PART_BYTES:
            problems.append(f"{info.filename}: {info.file_size} bytes, more than a document part should hold")
            continue
        if info.filename.endswith((".xml", ".rels")):
            try:
                trees[info.filename] = etree.fromstring(package.read(info), _parser())
            except etree.XMLSyntaxError as exc:
                problems.append(f"{info.filename}: not well-formed XML: {exc}")
    for name, tree in trees.items():
        if name.endswith(".rels"):
            problems.extend(_relationships(name, tree, names))
    document = trees.get("word/document.xml")
    if document is None:
        problems.append("no word/document.xml")
        return problems
    problems.extend(_revisions(document))
    return problems


def _relationships(name: str, tree: Any, names: set[str]) -> list[str]:
    problems: list[str] = []
    folder = posixpath.dirname(posixpath.dirname(name))  # word/_rels/document.xml.rels → word
    for rel in tree.iter(f"{RELS}Relationship"):
        target = rel.get("Target") or ""
        if rel.get("TargetMode") == "External":
            problems.append(f"{name}: relationship {rel.get('Id')} points outside the package: {target[:200]}")
            continue
        path = posixpath.normpath(target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target))
        if path not in names:
            problems.append(f"{name}: relationship {rel.get('Id')} names {target}, which the package does not have")
    return problems


def _revisions(document: Any) -> list[str]:
    problems: list[str] = []
    ids = Counter(e.get(f"{W}id") for tag in ANNOTATIONS for e in document.iter(f"{W}{tag}"))
    problems.extend(f"word/document.xml: w:id {ident} is used {count} times" for ident, count in ids.items() if count > 1)
    for tag in REVISIONS:
        for mark in document.iter(f"{W}{tag}"):
            if not mark.get(f"{W}author") or not mark.get(f"{W}date"):
                problems.append(f"word/document.xml: a w:{tag} (id {mark.get(f'{W}id')}) without w:author or w:date")
    for deleted in document.iter(f"{W}del"):
        if deleted.find(f".//{W}t") is not None:
            problems.append(f"word/document.xml: w:del {deleted.get(f'{W}id')} holds w:t; deleted text must be w:delText")
    for inserted in document.iter(f"{W}ins"):
        if inserted.find(f".//{W}delText") is not None:
            problems.append(f"word/document.xml: w:ins {inserted.get(f'{W}id')} holds w:delText")
    starts = Counter(e.get(f"{W}name") for e in document.iter(f"{W}moveFromRangeStart"))
    ends = Counter(e.get(f"{W}name") for e in document.iter(f"{W}moveToRangeStart"))
    if starts != ends:
        problems.append(f"word/document.xml: move ranges without their other end: {sorted(set(starts) ^ set(ends))}")
    opened = {e.get(f"{W}id") for e in document.iter(f"{W}bookmarkStart")}
    closed = {e.get(f"{W}id") for e in document.iter(f"{W}bookmarkEnd")}
    if opened != closed:
        problems.append(f"word/document.xml: bookmarks not closed or not opened: {sorted(opened ^ closed)}")
    names = Counter(e.get(f"{W}name") for e in document.iter(f"{W}bookmarkStart"))
    problems.extend(f"word/document.xml: bookmark {name} is used {count} times" for name, count in names.items() if count > 1)
    return problems

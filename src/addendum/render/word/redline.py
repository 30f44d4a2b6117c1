"""The redline as a Word document whose every change is a tracked change: Accept All gives the new text, Reject All the old.

Sections are laid out in an order that holds both versions: the two orders are aligned (a longest common
subsequence of the matched sections); a section in the common order is written once with its word-level
insertions and deletions; a section outside it that both versions have moved, and is written as its old text
deleted at its old place and its new text inserted at its new place (see MOVE_OPS); an added section is one
insertion, a removed one one deletion. Paragraph marks are tracked
too, so that a paragraph split, joined, added or removed comes back exactly when accepting or rejecting.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from addendum.compare.model import ChangeSet, SectionChange, Segment
from addendum.compare.reasons import sentence as reason_sentence
from addendum.i18n import Words
from addendum.render.redline import VersionInfo, visible
from addendum.render.word import FORMATTING_CHOICES, Formatting
from addendum.render.word.ooxml import (
    NEW_ONLY,
    OLD_ONLY,
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
    table,
    text_runs,
    to_bytes,
    w,
)
from addendum.templates import long_date, strings

Mode = Literal["both", "from", "to"]
NEWLINES = re.compile(r"(\n+)")
TEXT_BOOKMARK = "addendum_text"
SIGNOFF_BOOKMARK = "addendum_signoff"
HEADING_STYLE_LIMIT = 9
# A moved section is written as a deletion where it was and an insertion where it is, not as a w:moveFrom/w:moveTo
# pair: LibreOffice 7.4 rejects a moved-to paragraph by joining what follows it into it, so the next heading takes
# the moved section's style (pandoc reads both forms alike). Where it came from is in the summary table.
MOVE_OPS = {"from": "delete", "to": "insert"}


@dataclass
class Inline:
    """Text (or a line break, when `text` is None) with the op it has in the document."""

    op: str
    text: str | None


@dataclass
class Para:
    items: list[Inline] = field(default_factory=list)
    mark: str = "equal"  # the op of the paragraph mark that ends it


def _kind(count: int) -> str:
    return "none" if count == 0 else "br" if count == 1 else "para"


def paragraphs(segments: Iterable[tuple[str, str]], end_mark: str) -> list[Para]:
    """Split ops-and-text into paragraphs at blank lines and line breaks at single newlines, tracking each.

    A run of newlines may span segments of different ops: the old side sees its equal and old-only ones, the new
    side its equal and new-only ones. When both sides make the same break it is equal; otherwise the old break is
    deleted and the new one inserted (a paragraph mark carries the op itself).
    """
    out: list[Para] = []
    current = Para()
    group: list[tuple[str, int]] = []

    def flush() -> None:
        nonlocal current
        if not group:
            return
        old = sum(n for op, n in group if op not in NEW_ONLY)
        new = sum(n for op, n in group if op not in OLD_ONLY)
        old_op = next((op for op, _ in reversed(group) if op in OLD_ONLY), "delete")
        new_op = next((op for op, _ in reversed(group) if op in NEW_ONLY), "insert")
        old_kind, new_kind = _kind(old), _kind(new)
        group.clear()
        if old_kind == new_kind:
            if old_kind == "br":
                current.items.append(Inline("equal", None))
            elif old_kind == "para":
                current.mark = "equal"
                out.append(current)
                current = Para()
            return
        if old_kind == "br":
            current.items.append(Inline(old_op, None))
        if new_kind == "br":
            current.items.append(Inline(new_op, None))
        if "para" in (old_kind, new_kind):
            current.mark = old_op if old_kind == "para" else new_op
            out.append(current)
            current = Para()

    for op, text in segments:
        for index, chunk in enumerate(NEWLINES.split(text)):
            if not chunk:
                continue
            if index % 2:
                group.append((op, len(chunk)))
            else:
                flush()
                current.items.append(Inline(op, chunk))
    flush()
    current.mark = end_mark
    if current.items or not out:
        out.append(current)
    else:  # the text ended in a break: the last paragraph mark is the section's own
        out[-1].mark = end_mark if out[-1].mark == "equal" else out[-1].mark
    return out


def _ops(segments: Sequence[Segment], mode: Mode, formatting: Formatting) -> list[tuple[str, str]]:
    """The document ops of a section's segments, for the section written once ("both") or as a move's two ends."""
    out: list[tuple[str, str]] = []
    for segment in segments:
        op: str = segment.op
        if formatting == "hide" and segment.formatting:
            if op == "delete":
                continue
            if op == "insert":
                op = "equal"
        if mode == "from":
            if op == "insert":
                continue
            op = MOVE_OPS["from"] if op == "equal" else op
        elif mode == "to":
            if op == "delete":
                continue
            op = MOVE_OPS["to"] if op == "equal" else op
        if segment.text:
            out.append((op, segment.text))
    return out


class Writer:
    """Writes one redline's body: paragraphs with tracked runs and marks, and bookmarks.

    What the HTML redline says beside a changed section (its kinds, class, reasons, where it moved from) is in the
    summary table, not in Word comments: LibreOffice without its GUI package aborts when it lays out a comment.
    """

    def __init__(self, document: Any, marks: Marks, lang: str, t: Words) -> None:
        self.document = document
        self.body = Body(document)
        self.marks = marks
        self.lang = lang
        self.t = t
        # [paragraph, op of its mark, op of the whole paragraph or "", its items, its run style]
        self.flow: list[list[Any]] = []

    def add(self, node: Any, mark: str, items: Sequence[Inline], style: Style | None = None) -> None:
        ops = {item.op for item in items}
        whole = mark if mark != "equal" and ops <= {mark} else ""
        self.flow.append([node, mark, whole, list(items), style])

    def _lead_with_other_op(self, entry: list[Any], op: str) -> bool:
        """Rewrite a paragraph that begins with text of `op` so that it begins with the other op instead, keeping
        both sides' text: the leading changed items with the other op's first, or else the first word of the
        equal text after them written as that op's opposite pair. False when it has no such text."""
        node, _, _, items, style = entry
        other = "delete" if op == "insert" else "insert"
        lead = 0
        while lead < len(items) and items[lead].op != "equal":
            lead += 1
        if {item.op for item in items[:lead]} - {op} == set():
            if lead == len(items) or not items[lead].text:
                return False
            text = items[lead].text
            word = re.match(r"\s*\S+", text)
            cut = word.end() if word else len(text)
            rest = [Inline("equal", text[cut:])] if text[cut:] else []
            items[:lead + 1] = [Inline(other, text[:cut]), *items[:lead], Inline(op, text[:cut]), *rest]
        else:
            items[:lead] = [i for i in items[:lead] if i.op == other] + [i for i in items[:lead] if i.op != other]
        for child in list(node):
            if child.tag in (w("r"), w("ins"), w("del")):
                self.marks.revisions -= child.tag != w("r")
                node.remove(child)
        end = node.find(w("bookmarkEnd"))
        self.fill(node, items, style)
        if end is not None:
            node.remove(end)
            node.append(end)
        return True

    def finish(self) -> None:
        """Give each paragraph mark its revision and add the paragraphs to the body.

        A run of whole paragraphs inserted (or deleted) is tracked by the marks from the paragraph before it up to
        the last one but one, not by the paragraphs' own marks: the block then joins the paragraph before it when
        rejected (accepted), and LibreOffice, which keeps the first paragraph's style when it joins two, leaves the
        paragraph after the block alone (with their own marks, the next heading took the block's style). It is
        also how Word tracks typing Enter and new paragraphs at the end of one.

        A paragraph that ends with inserted (deleted) text and an untracked mark, followed by one that begins with
        inserted (deleted) text: LibreOffice makes one revision of the two, since they are of one author and date
        and meet at the paragraph break, and rejecting (accepting) it takes the untracked mark between them too,
        joining the two paragraphs (a heading with the text before it). So the second is made to begin with the
        other op (see _lead_with_other_op).
        """
        flow = self.flow
        index = 0
        while index < len(flow):
            op = flow[index][2]
            if not op:
                index += 1
                continue
            last = index
            while last + 1 < len(flow) and flow[last + 1][2] == op:
                last += 1
            if index > 0 and flow[index - 1][1] == "equal":
                flow[index - 1][1] = op
                flow[last][1] = "equal"
            index = last + 1
        for before, after in zip(flow, flow[1:], strict=False):
            op = before[3][-1].op if before[3] else "equal"
            if before[1] == "equal" and op in ("insert", "delete") and after[3] and after[3][0].op == op:
                self._lead_with_other_op(after, op)
        for node, mark, *_ in flow:
            if mark != "equal":
                node.find(w("pPr")).find(w("rPr")).insert(0, self.marks.revision(mark))
            self.body.add(node)
        flow.clear()

    def fill(self, para_node: Any, items: Sequence[Inline], style: Style) -> None:
        """Append `items` to a paragraph: consecutive items of one op share one revision wrapper."""
        wrapper: Any = None
        wrapper_op = ""
        for item in items:
            runs = [break_run(style)] if item.text is None else text_runs(item.text, style, deleted=item.op == "delete")
            if item.op == "equal":
                wrapper, wrapper_op = None, ""
                for run in runs:
                    para_node.append(run)
                continue
            if wrapper is None or wrapper_op != item.op:
                wrapper, wrapper_op = self.marks.revision(item.op), item.op
                para_node.append(wrapper)
            for run in runs:
                wrapper.append(run)

    def section(self, change: SectionChange, mode: Mode, formatting: Formatting) -> None:
        side = (change.old if mode == "from" else change.new) or change.old or change.new
        assert side is not None
        lang = self.lang if side.language == self._language else language_tag(side.language)
        style = Style(lang)
        added, removed = change.old is None, change.new is None
        base = "insert" if added else "delete" if removed else "equal"
        end = {"both": base, **MOVE_OPS}[mode]
        if side.level:
            heading_mark = end
            change_node = None
            level = min(side.level, HEADING_STYLE_LIMIT)
            if mode == "both" and change.old is not None and change.new is not None and change.old.level != change.new.level:
                change_node = element("pPrChange", {"id": self.marks.new_id(), "author": self.marks.author, "date": self.marks.stamp},
                                      element("pPr", None, element("pStyle", {"val": f"Heading{min(change.old.level, HEADING_STYLE_LIMIT)}"})))
                self.marks.revisions += 1
            head = paragraph(f"Heading{level}", lang, keep_next=True, change=change_node)
            items = [Inline(op, text) for op, text in _ops(change.heading, mode, formatting)]
            self.fill(head, items, style)
            if mode != "from":  # a bookmark names one place: the section where it stands in the new version
                bookmark(head, bookmark_name(side.id), self.marks)
            self.add(head, heading_mark, items, style)
        old_empty = change.old is None or not change.old.text
        new_empty = change.new is None or not change.new.text
        text_end = end
        if mode == "both" and base == "equal":
            text_end = "insert" if old_empty and not new_empty else "delete" if new_empty and not old_empty else "equal"
        ops = _ops(change.text, mode, formatting)
        if ops:
            for para in paragraphs(ops, text_end):
                node = paragraph("BodyText", lang)
                self.fill(node, para.items, style)
                self.add(node, para.mark, para.items, style)

    _language = ""


def layout(changeset: ChangeSet) -> list[tuple[SectionChange, Mode]]:
    """Every section once, or twice when it moved: an order whose old-side sections are the old version's order
    and whose new-side sections are the new version's."""
    olds = sorted((c for c in changeset.sections if c.old), key=lambda c: c.old.position if c.old else 0)
    news = sorted((c for c in changeset.sections if c.new), key=lambda c: c.new.position if c.new else 0)
    old_keys = [id(c) for c in olds]
    new_keys = [id(c) for c in news]
    matcher = difflib.SequenceMatcher(None, old_keys, new_keys, autojunk=False)
    out: list[tuple[SectionChange, Mode]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out.extend((c, "both") for c in news[j1:j2])
            continue
        out.extend((c, "from" if c.new is not None else "both") for c in olds[i1:i2])
        out.extend((c, "to" if c.old is not None else "both") for c in news[j1:j2])
    return out


def _end_description(info: VersionInfo, locale: str, t: Words) -> str:
    when = long_date(info.effective, locale) if info.effective else ""
    if when:
        return t.gettext("%(label)s, in force from %(date)s", label=info.label, date=when)
    return t.gettext("%(label)s (not published)", label=info.label)


def _summary_rows(changeset: ChangeSet, t: Words) -> list[list[str]]:
    classified = changeset.classification is not None or any(c.classification for c in changeset.changes)
    header = [t.gettext("Section"), t.gettext("Change"), t.gettext("Details")]
    if classified:
        header.append(t.gettext("Class"))
    rows = [header]
    for change in changeset.changes:
        side = change.new or change.old
        assert side is not None
        name = visible(side.heading) if side.level else t.gettext("Introduction (before the first heading)")
        details = [t.gettext("%(deleted)s, %(inserted)s",
                             deleted=t.ngettext("%(num)d word deleted", "%(num)d words deleted", change.words("delete")),
                             inserted=t.ngettext("%(num)d inserted", "%(num)d inserted", change.words("insert")))]
        if change.has("moved") and change.old is not None:
            details.append(t.gettext("moved from %(ref)s (section %(position)s of the old version)", ref=change.old.ref,
                                     position=change.old.position))
        if change.formatting:
            details.append(t.gettext("formatting only: whitespace, punctuation, quotes or case"))
        row = [f"{name}\n{change.ref}", ", ".join(t.change_kind(k) for k in change.ordered_kinds), "; ".join(details)]
        if classified:
            row.append("\n".join([t.classification(change.classification) if change.classification else "",
                                  *(f"• {visible(reason_sentence(r, t))}" for r in change.reasons)]))
        rows.append(row)
    return rows


def _legend_sample(text: str, lang: str, kind: str) -> Any:
    """A sample formatted like the revision kind it explains (direct formatting, not a revision: Accept All and
    Reject All leave the legend alone)."""
    extra: tuple[Any, ...]
    if kind == "insert":
        extra = (element("color", {"val": "1B5E20"}), element("u", {"val": "single"}))
    elif kind == "delete":
        extra = (element("color", {"val": "B71C1C"}), element("strike"))
    elif kind == "move":
        extra = (element("color", {"val": "2E7D32"}), element("u", {"val": "double"}))
    else:
        extra = ()
    return text_runs(text, Style(lang, extra=extra))


def redline_docx(changeset: ChangeSet, old_info: Any, new_info: Any, *, author: str, revision_date: date,
                 formatting: Formatting = "show", repo_templates: Path | None = None, generated: date | None = None) -> bytes:
    """The redline as a .docx: title block, summary of changes, legend, the text with tracked changes, sign-off.

    Every revision carries `author` and `revision_date` (the new version's publication date; the document says
    so). `formatting="hide"` leaves changes of whitespace, punctuation, quotes or case untracked (the new form).
    """
    if formatting not in FORMATTING_CHOICES:
        raise ValueError(f"formatting must be one of {FORMATTING_CHOICES}, not {formatting!r}")
    t = strings(changeset.language, repo_templates)
    old, new = VersionInfo.of(old_info), VersionInfo.of(new_info)
    lang = language_tag(changeset.locale or changeset.language)
    title = visible(changeset.new_title)
    document = new_document(lang, t.gettext("Redline — %(title)s: %(old)s → %(new)s", title=title, old=old.label, new=new.label), author=author,
                            subject=t.gettext("Redline"))
    marks = Marks(author=author or "Addendum", when=revision_date)
    writer = Writer(document, marks, lang, t)
    writer._language = changeset.language
    body = writer.body
    add = body.add

    add(simple_paragraph(t.gettext("Redline"), "Subtitle", lang))
    add(simple_paragraph(title, "Title", lang))
    facts = [[t.gettext("Site"), f"{visible(changeset.site_name)} ({changeset.site})"],
             [t.gettext("Language"), f"{t.language_name(changeset.language)} ({changeset.language})"],
             [t.gettext("From"), _end_description(old, changeset.locale, t)],
             [t.gettext("To"), _end_description(new, changeset.locale, t)],
             [t.gettext("Generated on"), long_date(generated or date.today(), changeset.locale)]]
    if changeset.classification:
        facts.append([t.gettext("Class"), t.classification(changeset.classification)])
    add(table(facts, lang, header=False, widths=(2600, 6400)))
    for reason in changeset.reasons:
        add(simple_paragraph(visible(reason_sentence(reason, t)), "ListBullet", lang))
    if changeset.old_title != changeset.new_title:
        add(simple_paragraph(t.gettext("The title changed from “%(old)s” to “%(new)s”.", old=visible(changeset.old_title), new=title), "BodyText", lang))
    add(simple_paragraph(t.gettext(
        "Every change is a tracked change by %(author)s, dated %(date)s: the day %(new)s was published, not the day each edit "
        "was made. Accept all changes to get the text of %(new)s; reject all to get the text of %(old)s.",
        author=marks.author, date=long_date(revision_date, changeset.locale), old=old.label, new=new.label), "BodyText", lang))

    add(simple_paragraph(t.gettext("Summary of changes"), "Heading1", lang))
    total = len(changeset.sections)
    totals = t.ngettext("%(changed)d of %(num)d section changed.", "%(changed)d of %(num)d sections changed.", total,
                        changed=len(changeset.changes))
    add(simple_paragraph(totals, "BodyText", lang))
    if changeset.changes:
        add(table(_summary_rows(changeset, t), lang))
    else:
        add(simple_paragraph(t.gettext("No section changed."), "BodyText", lang))

    add(simple_paragraph(t.gettext("Legend"), "Heading1", lang))
    for sample, kind, meaning in ((t.gettext("inserted"), "insert", t.gettext("text added in the new version")),
                                  (t.gettext("deleted"), "delete", t.gettext("text removed from the old version")),
                                  (t.gettext("moved"), "move", t.gettext("text moved from or to another section")),
                                  ("U+200B", "", t.gettext("an invisible character, shown by its code point"))):
        item = paragraph("ListBullet", lang)
        for run in _legend_sample(sample, lang, kind):
            item.append(run)
        for run in text_runs(" " + meaning, Style(lang)):
            item.append(run)
        add(item)
    if formatting == "hide":
        add(simple_paragraph(t.gettext("Changes of whitespace, punctuation, quotes or case only are not tracked here: rejecting all "
                                     "changes gives the old wording with the new formatting."), "BodyText", lang))

    start = simple_paragraph(t.gettext("Text with tracked changes"), "Heading1", lang)
    bookmark(start, TEXT_BOOKMARK, marks)
    writer.add(start, "equal", ())
    for change, mode in layout(changeset):
        writer.section(change, mode, formatting)
    writer.finish()

    signoff = add(simple_paragraph(t.gettext("Sign-off"), "Heading1", lang))
    bookmark(signoff, SIGNOFF_BOOKMARK, marks)
    add(simple_paragraph(t.gettext("I have reviewed the changes from %(old)s to %(new)s in this document.", old=old.label, new=new.label), "BodyText", lang))
    add(table([[t.gettext("Name"), ""], [t.gettext("Role"), ""], [t.gettext("Date"), ""],
               [t.gettext("Signature"), "\n\n"]], lang, header=False, widths=(2600, 6400)))
    return to_bytes(document)

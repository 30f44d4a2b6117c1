"""Redlines of a ChangeSet: the HTML document a reviewer signs off (inline or side by side), and the terminal diff."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from markupsafe import Markup

from addendum.compare.model import ChangeSet, Op, SectionChange, SectionSide, Segment
from addendum.compare.reasons import sentence as reason_sentence
from addendum.i18n import Words
from addendum.policy.markup import INVISIBLE
from addendum.render import stylesheet
from addendum.templates import long_date, render_template, strings

Layout = Literal["inline", "side-by-side"]
LAYOUTS: tuple[Layout, ...] = ("inline", "side-by-side")

PARAGRAPH_BREAK = re.compile(r"\n{2,}")
TERMINAL_CONTEXT_WORDS = 8


@dataclass(frozen=True)
class VersionInfo:
    """One end of a redline: how to name it, and the date it took effect (None: never published)."""

    label: str
    effective: date | None = None

    @classmethod
    def of(cls, source: Any) -> VersionInfo:
        """From a VersionInfo, a versions.Snapshot (label, effective) or a ledger PublishedVersion (id, effective)."""
        if isinstance(source, VersionInfo):
            return source
        label = getattr(source, "label", None) or getattr(source, "id", None)
        if not isinstance(label, str):
            raise TypeError(f"cannot name a redline end after {source!r}")
        effective = getattr(source, "effective", None)
        return cls(label, effective if isinstance(effective, date) else None)


@dataclass(frozen=True)
class Part:
    """Text as written, or one invisible character shown by its code point (`code`, `name`)."""

    text: str
    code: str = ""
    name: str = ""


@dataclass(frozen=True)
class Piece:
    """A run of one op, ready for a template: `<ins>`/`<del>`/plain, with its invisible characters split out."""

    op: Op
    parts: tuple[Part, ...]
    formatting: bool
    moved: str
    space: bool  # only whitespace: a template makes it visible
    breaks: bool  # holds a line break


@dataclass(frozen=True)
class Block:
    """A paragraph of a section's text; `changed` puts a change bar beside it."""

    pieces: tuple[Piece, ...]
    changed: bool


def visible(text: str) -> str:
    """Text outside the diffed body (notes, titles, reasons, the terminal): invisible characters and escape
    sequences shown by their code point, never obeyed."""
    return INVISIBLE.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", text)


def _parts(text: str) -> tuple[Part, ...]:
    parts: list[Part] = []
    last = 0
    for match in INVISIBLE.finditer(text):
        if match.start() > last:
            parts.append(Part(text[last:match.start()]))
        char = match.group()
        parts.append(Part(char, f"U+{ord(char):04X}", unicodedata.name(char, "control character")))
        last = match.end()
    if last < len(text):
        parts.append(Part(text[last:]))
    return tuple(parts)


def _piece(segment: Segment) -> Piece:
    return Piece(segment.op, _parts(segment.text), segment.formatting, segment.moved,
                 space=segment.op != "equal" and segment.text.isspace(), breaks="\n" in segment.text)


def pieces(segments: Iterable[Segment]) -> tuple[Piece, ...]:
    return tuple(_piece(s) for s in segments if s.text)


def blocks(segments: Sequence[Segment], side: Literal["both", "old", "new"] = "both") -> tuple[Block, ...]:
    """Paragraphs of a section's segments: split at blank lines inside unchanged text (a blank line that was
    deleted or inserted stays inside its paragraph, visible); `side` keeps one version's segments only."""
    skip = {"both": "", "old": "insert", "new": "delete"}[side]
    out: list[Block] = []
    current: list[Segment] = []

    def close() -> None:
        if current:
            out.append(Block(pieces(current), any(s.op != "equal" for s in current)))
            current.clear()

    for segment in segments:
        if segment.op == skip:
            continue
        if segment.op != "equal":
            current.append(segment)
            continue
        paragraphs = PARAGRAPH_BREAK.split(segment.text)
        for index, paragraph in enumerate(paragraphs):
            if index:
                close()
            if paragraph:
                current.append(Segment("equal", paragraph))
    close()
    return tuple(out)


def _heading_level(level: int) -> int:
    return min(level + 1, 6) if level else 2


def _notes(change: SectionChange, sides: dict[str, SectionSide], t: Words) -> list[str]:
    """One line each for what the kinds alone do not say: where a moved section was, what it was called."""
    notes = []
    old, new = change.old, change.new
    if change.has("moved") and old is not None:
        previous = sides.get(f"old:{old.position - 1}")
        notes.append(t.gettext("moved from %(ref)s (section %(position)s of the old version)", ref=old.ref, position=old.position)
                     + (" " + t.gettext("after “%(heading)s”", heading=visible(previous.heading) or previous.ref) if previous else ""))
    if change.has("renamed") and old is not None:
        notes.append(t.gettext("renamed; the heading was “%(heading)s”", heading=visible(old.heading)))
    if change.matched_by == "similarity" and old is not None and new is not None and old.id != new.id:
        notes.append(t.gettext("recognised by its content: its id was %(old_id)s", old_id=old.id))
    if change.split_from:
        notes.append(t.gettext("split from %(ref)s", ref=change.split_from))
    if change.merged_into:
        notes.append(t.gettext("merged into %(ref)s", ref=change.merged_into))
    if change.formatting:
        notes.append(t.gettext("formatting only: whitespace, punctuation, quotes or case"))
    return notes


def _details(change: SectionChange, t: Words) -> str:
    parts = []
    if change.has("modified") or change.has("renamed") or change.has("added") or change.has("removed"):
        parts.append(t.gettext("%(deleted)s, %(inserted)s", deleted=t.ngettext("%(num)d word deleted", "%(num)d words deleted", change.words("delete")),
                               inserted=t.ngettext("%(num)d inserted", "%(num)d inserted", change.words("insert"))))
    if change.has("moved") and change.old is not None:
        parts.append(t.gettext("moved from %(ref)s (section %(position)s of the old version)", ref=change.old.ref, position=change.old.position))
    if change.split_from:
        parts.append(t.gettext("split from %(ref)s", ref=change.split_from))
    if change.merged_into:
        parts.append(t.gettext("merged into %(ref)s", ref=change.merged_into))
    if change.formatting:
        parts.append(t.gettext("formatting only: whitespace, punctuation, quotes or case"))
    return "; ".join(parts)


def _section(change: SectionChange, sides: dict[str, SectionSide], t: Words) -> dict[str, Any]:
    side = change.new or change.old
    assert side is not None
    return {
        "id": change.id,
        "anchor": change.anchor,
        "ref": change.ref,
        "level": side.level,
        "heading_level": _heading_level(side.level),
        "heading": pieces(change.heading),
        "old_heading": pieces(s for s in change.heading if s.op != "insert"),
        "new_heading": pieces(s for s in change.heading if s.op != "delete"),
        "has_heading": bool(change.heading),
        "changed": change.changed,
        "kinds": list(change.ordered_kinds),
        "kind_labels": [t.change_kind(kind) for kind in change.ordered_kinds],
        "notes": _notes(change, sides, t),
        "blocks": blocks(change.text),
        "old_blocks": blocks(change.text, "old") if change.old else (),
        "new_blocks": blocks(change.text, "new") if change.new else (),
        "old_location": f"{change.old.file}:{change.old.line}" if change.old else "",
        "new_location": f"{change.new.file}:{change.new.line}" if change.new else "",
        "classification": change.classification,
        "classification_label": _class_label(change.classification, t),
        "reasons": [visible(reason_sentence(reason, t)) for reason in change.reasons],
        "note": visible(change.note), "impact": visible(change.impact),
    }


def _class_label(classification: str | None, t: Words) -> str:
    return t.classification(classification) if classification else ""


def _end(info: VersionInfo, locale: str, t: Words) -> dict[str, Any]:
    when = long_date(info.effective, locale) if info.effective else ""
    return {"label": info.label, "effective": info.effective, "effective_text": when,
            "short": when or info.label,
            "description": t.gettext("%(label)s, in force from %(date)s", label=info.label, date=when) if when else
            t.gettext("%(label)s (not published)", label=info.label)}


def redline_context(changeset: ChangeSet, old_info: Any, new_info: Any, *, layout: Layout = "inline",
                    changes_only: bool = False, repo_templates: Path | None = None,
                    generated: date | None = None) -> dict[str, Any]:
    """Everything templates/redline.html is given (documented at the top of the template)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    t = strings(changeset.language, repo_templates)
    old, new = VersionInfo.of(old_info), VersionInfo.of(new_info)
    sides = {f"old:{c.old.position}": c.old for c in changeset.sections if c.old}
    sections = [_section(change, sides, t) for change in changeset.sections]
    changed = [s for s in sections if s["changed"]]
    classified = changeset.classification is not None or any(s["classification"] for s in changed)
    title = visible(changeset.new_title)
    old_end, new_end = _end(old, changeset.locale, t), _end(new, changeset.locale, t)
    return {
        "title": title,
        "old_title": visible(changeset.old_title),
        "title_changed": changeset.old_title != changeset.new_title,
        "policy_id": changeset.policy_id,
        "site": {"id": changeset.site, "name": visible(changeset.site_name)},
        "language": changeset.language,
        "language_name": t.language_name(changeset.language),
        "locale": changeset.locale,
        "old": old_end,
        "new": new_end,
        "generated": generated or date.today(),
        "layout": layout,
        "changes_only": changes_only,
        "sections": changed if changes_only else sections,
        "summary": [{**s, "details": _details(change, t)}
                    for s, change in zip(sections, changeset.sections, strict=True) if s["changed"]],
        "counts": changeset.counts(),
        "total_sections": len(sections),
        "changed_sections": len(changed),
        "classified": classified,
        "classification": changeset.classification,
        "classification_label": _class_label(changeset.classification, t),
        "reasons": [visible(reason_sentence(reason, t)) for reason in changeset.reasons],
        "running_header": t.gettext("Redline — %(title)s — %(old)s → %(new)s", title=title, old=old_end["short"], new=new_end["short"]),
        "t": t,
        "css": Markup(stylesheet("redline.css")),  # our own asset file: CSS must not be HTML-escaped
    }


def redline_html(changeset: ChangeSet, old_info: Any, new_info: Any, *, layout: Layout = "inline",
                 changes_only: bool = False, repo_templates: Path | None = None, generated: date | None = None) -> str:
    """The redline document as HTML: title block, summary table, legend and the text with its changes marked.

    `old_info`/`new_info`: a VersionInfo, a versions.Snapshot or a ledger PublishedVersion. `generated`
    (default: today) is printed in the title block; pass a fixed date for reproducible output.
    """
    context = redline_context(changeset, old_info, new_info, layout=layout, changes_only=changes_only,
                              repo_templates=repo_templates, generated=generated)
    return render_template([f"redline-{changeset.policy_id}.html", "redline.html"], context, repo_templates)


# ---------------------------------------------------------------------------------------------------------
# The terminal: per changed section its path and kinds, the words deleted and inserted, a summary line.

_ANSI = {"delete": ("\x1b[9;31m", "\x1b[0m"), "insert": ("\x1b[4;32m", "\x1b[0m"), "head": ("\x1b[1m", "\x1b[0m"),
         "dim": ("\x1b[2m", "\x1b[0m")}
_PLAIN = {"delete": ("[-", "-]"), "insert": ("{+", "+}"), "head": ("", ""), "dim": ("", "")}


def _trim(text: str, keep_start: bool, keep_end: bool) -> str:
    """Unchanged text cut to a few words of context beside the changes."""
    words = re.split(r"(\s+)", text)
    limit = TERMINAL_CONTEXT_WORDS * 2
    if len(words) <= 2 * limit + 1:
        return text
    head = "".join(words[:limit]) if keep_start else ""
    tail = "".join(words[-limit:]) if keep_end else ""
    return f"{head}…{tail}" if head or tail else "…"


def _terminal_text(segments: Sequence[Segment], style: dict[str, tuple[str, str]]) -> list[str]:
    lines: list[str] = []
    for block in blocks(segments):
        if not block.changed:
            continue
        out = []
        for index, piece in enumerate(block.pieces):
            text = visible("".join(part.text for part in piece.parts))
            if piece.op == "equal":
                out.append(_trim(text, keep_start=index > 0, keep_end=index < len(block.pieces) - 1))
            else:
                start, end = style[piece.op]
                out.append(f"{start}{text}{end}")
        lines.extend("    " + line for line in "".join(out).split("\n"))
    return lines


def _signature(changeset: ChangeSet) -> tuple[Any, ...]:
    """What a reader of the terminal diff sees of a ChangeSet: equal for texts that changed the same way."""
    title = (changeset.old_title, changeset.new_title) if changeset.old_title != changeset.new_title else None
    return (title,
            tuple((c.ref, c.kinds, c.heading, c.text, c.split_from, c.merged_into,
                   c.old and (c.old.ref, c.old.file, c.old.line), c.new and (c.new.file, c.new.line)) for c in changeset.changes))


def redline_text(changesets: Sequence[ChangeSet], old_label: str, new_label: str, *, color: bool = False) -> str:
    """The terminal diff of one or more ChangeSets (e.g. every site × language): unchanged ones left out, and
    texts that changed the same way shown once under all their site/language names."""
    t = strings("en")
    style = _ANSI if color else _PLAIN
    groups: dict[tuple[Any, ...], list[ChangeSet]] = {}
    for changeset in changesets:
        if changeset.has_changes:
            groups.setdefault(_signature(changeset), []).append(changeset)
    lines: list[str] = []
    for group in groups.values():
        changeset = group[0]
        texts = ", ".join(f"{c.site}/{c.language}" for c in group)
        start, end = style["head"]
        lines.append(f"{start}{changeset.policy_id} {texts}: {old_label} → {new_label}{end}")
        if changeset.old_title != changeset.new_title:
            lines.append("  " + t.gettext("The title changed from “%(old)s” to “%(new)s”.", old=visible(changeset.old_title), new=visible(changeset.new_title)))
        for change in changeset.changes:
            lines.extend(_terminal_change(change, style, t))
    lines.append(summary_line(changesets, t))
    return "\n".join(lines) + "\n"


def _terminal_change(change: SectionChange, style: dict[str, tuple[str, str]], t: Words) -> list[str]:
    kinds = ", ".join(t.change_kind(kind) for kind in change.ordered_kinds)
    flags = ", " + t.gettext("formatting only") if change.formatting else ""
    side = change.new or change.old
    assert side is not None
    dim_start, dim_end = style["dim"]
    lines = [f"  {change.ref} ({kinds}{flags})  {dim_start}{side.file}:{side.line}{dim_end}"]
    if change.has("moved") and change.old is not None:
        lines.append("    " + t.gettext("moved from %(ref)s (section %(position)s of the old version)", ref=change.old.ref, position=change.old.position))
    if change.split_from:
        lines.append("    " + t.gettext("split from %(ref)s", ref=change.split_from))
    if change.merged_into:
        lines.append("    " + t.gettext("merged into %(ref)s", ref=change.merged_into))
    if any(s.op != "equal" for s in change.heading):
        lines.extend(_terminal_text(change.heading, style))
    lines.extend(_terminal_text(change.text, style))
    return lines


def summary_line(changesets: Sequence[ChangeSet], t: Words | None = None) -> str:
    """`2 of 6 site/language texts changed: 1 added, 3 modified, 1 moved` (sections counted over all of them)."""
    t = t or strings("en")
    changed = [c for c in changesets if c.has_changes]
    if not changed:
        return t.gettext("no changes")
    totals: dict[str, int] = {}
    for changeset in changed:
        for kind, count in changeset.counts().items():
            if kind != "unchanged" and count:
                totals[kind] = totals.get(kind, 0) + count
    details = ", ".join(f"{count} {t.change_kind(kind)}" for kind, count in totals.items())
    return t.ngettext("%(changed)d of %(num)d site/language text changed: %(details)s",
                      "%(changed)d of %(num)d site/language texts changed: %(details)s", len(changesets),
                      changed=len(changed), details=details or t.gettext("title changed"))

"""Redlines of a ChangeSet: the HTML document a reviewer signs off (inline or side by side), and the terminal diff."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from markupsafe import Markup

from addendum.compare.model import ChangeSet, Op, SectionChange, SectionSide, Segment
from addendum.compare.reasons import sentence as reason_sentence
from addendum.i18n import Words
from addendum.policy.markup import INVISIBLE, source_lines
from addendum.render import stylesheet
from addendum.templates import long_date, render_template, strings

Layout = Literal["inline", "side-by-side"]
LAYOUTS: tuple[Layout, ...] = ("inline", "side-by-side")

PARAGRAPH_BREAK = re.compile(r"\n{2,}")
TERMINAL_CONTEXT_WORDS = 8
BLOCK_CACHE_SIZE = 4096  # sections × sides × markups remembered: a few policies' worth of redlines


@dataclass(frozen=True)
class VersionInfo:
    """One end of a redline: how to name it, the date it took effect (None: never published), the commit its text
    is from ("" for the working tree) and the content hash of the text compared."""

    label: str
    effective: date | None = None
    commit: str = ""
    content_hash: str = ""
    published: date | None = None

    @classmethod
    def of(cls, source: Any, content_hash: str = "") -> VersionInfo:
        """From a VersionInfo, a versions.Snapshot (label, effective, commit) or a ledger PublishedVersion (id,
        effective, commit, published)."""
        if isinstance(source, VersionInfo):
            return source if not content_hash else replace(source, content_hash=content_hash)
        label = getattr(source, "label", None) or getattr(source, "id", None)
        if not isinstance(label, str):
            raise TypeError(f"cannot name a redline end after {source!r}")
        effective = getattr(source, "effective", None)
        version = getattr(source, "version", None) or source
        commit = getattr(source, "commit", "") or getattr(version, "commit", "")
        published = getattr(version, "published", None)
        return cls(label, effective if isinstance(effective, date) else None, commit if isinstance(commit, str) else "",
                   content_hash, published if isinstance(published, date) else None)


@dataclass(frozen=True)
class Preparation:
    """A redline made on demand: when (time-zone aware), by whom, with which tool, and whether it ends with a
    sign-off block. An archived redline has none: it is a rendering of published versions, not a document made
    on a day, and carries no date of its own."""

    when: datetime
    by: str
    tool: str
    signoff: bool = True

    def __post_init__(self) -> None:
        if self.when.tzinfo is None:
            raise ValueError("a redline's preparation time must say its time zone")


@dataclass(frozen=True)
class Part:
    """Text as the page shows it, one invisible character shown by its code point (`code`, `name`), a line break
    (`kind` "break") or the marker of a list item (`kind` "item", `text` its number, "" for a bullet). `style` is
    "strong", "em" or "code" for text inside Markdown emphasis or code."""

    text: str
    code: str = ""
    name: str = ""
    kind: str = "text"
    style: str = ""


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


def _parts(text: str, style: str = "") -> tuple[Part, ...]:
    parts: list[Part] = []
    last = 0
    for match in INVISIBLE.finditer(text):
        if match.start() > last:
            parts.append(Part(text[last:match.start()], style=style))
        char = match.group()
        parts.append(Part(char, f"U+{ord(char):04X}", unicodedata.name(char, "control character")))
        last = match.end()
    if last < len(text):
        parts.append(Part(text[last:], style=style))
    return tuple(parts)


# How the page shows each character of the Markdown source: ("text", shown, style), ("drop", "", "") for syntax,
# ("break", "", "") for a line break, ("item", number, "") for the marker of a list item.
Shown = tuple[str, str, str]
_LIST_ITEM = re.compile(r"[ ]{0,3}(?:[-*+]|(\d{1,9})[.)])(?:[ \t]+|(?=\n)|$)")
_ESCAPABLE = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_INLINE = (("code", re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)")), ("strong", re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")),
           ("em", re.compile(r"(\*)(?=[^\s*])(.+?)(?<=[^\s*])\1")),
           ("link", re.compile(r"(\[)([^\]\n]+)\]\([^)\s]*(?:\s+\"[^\"\n]*\")?\)")))


def _shown(text: str) -> list[Shown]:
    """How the archived page renders the Markdown `text`, character by character (the subset of CommonMark a
    policy uses: paragraphs, hard and soft line breaks, list items, backslash escapes, emphasis, code, links),
    so that the redline shows the text readers saw and not its syntax."""
    out: list[Shown] = [("text", char, "") for char in text]
    lines = source_lines(text)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    items = [bool(_LIST_ITEM.match(line)) and bool(line.strip()) for line in lines]
    for index, line in enumerate(lines):
        start = starts[index]
        match = _LIST_ITEM.match(line) if items[index] else None
        if match:
            out[start] = ("item", (match.group(1) or "") + (line[match.start(1) + len(match.group(1))] if match.group(1) else ""), "")
            for offset in range(start + 1, start + match.end()):
                out[offset] = ("drop", "", "")
        body = line.rstrip("\r\n")
        if len(body) == len(line) or index + 1 == len(lines):  # the text's last line end shows nothing
            for offset in range(start + len(body), start + len(line)):
                out[offset] = ("drop", "", "")
            continue
        end = start + len(body)
        for offset in range(end, start + len(line)):
            out[offset] = ("drop", "", "")
        next_blank = index + 1 < len(lines) and not lines[index + 1].strip()
        next_item = index + 1 < len(lines) and items[index + 1]
        trailing = len(body) - len(body.rstrip(" "))
        if body.strip() and (len(body) - len(body.rstrip("\\"))) % 2 == 1:
            out[end - 1] = ("drop", "", "")  # a backslash hard break
            out[end] = ("break", "", "")
        elif body.strip() and trailing >= 2:
            for offset in range(end - trailing, end):  # two spaces: a hard break
                out[offset] = ("drop", "", "")
            out[end] = ("break", "", "")
        elif not body.strip() or next_blank or next_item:
            out[end] = ("break", "", "")  # a paragraph or list item ends here
        else:
            out[end] = ("text", " ", "")  # a soft line break reads as a space
    offset = 0
    while offset < len(text) - 1:  # backslash escapes: the punctuation, not the backslash
        if text[offset] == "\\" and text[offset + 1] in _ESCAPABLE and out[offset][0] == "text":
            out[offset] = ("drop", "", "")
            offset += 2
            continue
        offset += 1
    for style, pattern in _INLINE:
        for match in pattern.finditer(text):
            if any(out[i][0] != "text" for i in (match.start(), match.end() - 1)):
                continue
            inner_start, inner_end = match.start(2), match.end(2)
            for i in range(match.start(), match.end()):
                if i < inner_start or i >= inner_end:
                    out[i] = ("drop", "", "")
                elif style != "link" and out[i][0] == "text" and not out[i][2]:
                    out[i] = ("text", out[i][1], style)
    return out


def shown_text(text: str) -> str:
    """The Markdown `text` as the redline shows it, as plain text: syntax left out, each line break a newline."""
    return "".join(shown if kind == "text" else "\n" if kind == "break" else "" for kind, shown, _ in _shown(text))


def _piece(segment: Segment, shown: Sequence[Shown] | None = None) -> Piece:
    parts: list[Part] = []
    if shown is None:
        parts.extend(_parts(segment.text))
    else:
        run: list[str] = []
        style = ""
        for kind, text, run_style in shown:
            if kind == "text" and (not run or run_style == style):
                run.append(text)
                style = run_style
                continue
            if run:
                parts.extend(_parts("".join(run), style))
                run = []
            if kind == "text":
                run, style = [text], run_style
            elif kind == "break":
                parts.append(Part("", kind="break"))
            elif kind == "item":
                parts.append(Part(text, kind="item"))
        if run:
            parts.extend(_parts("".join(run), style))
    return Piece(segment.op, tuple(parts), segment.formatting, segment.moved,
                 space=segment.op != "equal" and segment.text.isspace(), breaks="\n" in segment.text)


def pieces(segments: Iterable[Segment]) -> tuple[Piece, ...]:
    return tuple(_piece(s) for s in segments if s.text)


def _with_shown(segments: Sequence[Segment]) -> list[tuple[Segment, list[Shown]]]:
    """Each segment with how the page shows its characters: inserted and unchanged text as the new version's page
    shows it, deleted text as the old version's did."""
    old_text = "".join(s.text for s in segments if s.op != "insert")
    new_text = "".join(s.text for s in segments if s.op != "delete")
    old_shown, new_shown = _shown(old_text), _shown(new_text)
    out = []
    old_at = new_at = 0
    for segment in segments:
        size = len(segment.text)
        if segment.op == "delete":
            out.append((segment, old_shown[old_at:old_at + size]))
            old_at += size
        elif segment.op == "insert":
            out.append((segment, new_shown[new_at:new_at + size]))
            new_at += size
        else:
            before, after = old_shown[old_at:old_at + size], new_shown[new_at:new_at + size]
            if before == after:
                out.append((segment, after))
            else:  # the same characters, shown otherwise (a line became a list item, say): a change of formatting
                out.append((Segment("delete", segment.text, formatting=True), before))
                out.append((Segment("insert", segment.text, formatting=True), after))
            old_at += size
            new_at += size
    return out


def blocks(segments: Sequence[Segment], side: Literal["both", "old", "new"] = "both", markdown: bool = True) -> tuple[Block, ...]:
    """Paragraphs of a section's segments, shown as the page renders their Markdown (`markdown`=False: as written):
    split at blank lines inside unchanged text (a blank line that was deleted or inserted stays inside its paragraph,
    visible); `side` keeps one version's segments only."""
    return _cached_blocks(tuple(segments), side, markdown)


@lru_cache(maxsize=BLOCK_CACHE_SIZE)
def _cached_blocks(segments: tuple[Segment, ...], side: Literal["both", "old", "new"], markdown: bool) -> tuple[Block, ...]:
    """blocks(), remembered by the segments' own content: a server shows the same sections' redline again and again,
    and working out how the page shows each character of every section is most of a redline's cost. The key is the
    text itself, so an edit is a new key and never shows a stale rendering; Blocks are frozen, so sharing is safe."""
    skip = {"both": "", "old": "insert", "new": "delete"}[side]
    out: list[Block] = []
    current: list[tuple[Segment, Sequence[Shown]]] = []

    def close() -> None:
        if current:
            out.append(Block(tuple(_piece(s, shown) for s, shown in current if s.text),
                             any(s.op != "equal" for s, _ in current)))
            current.clear()

    for segment, shown in _with_shown([s for s in segments if s.op != skip]):
        if not markdown:
            shown = [("text", char, "") for char in segment.text]
        if segment.op != "equal":
            current.append((segment, shown))
            continue
        at = 0
        for match in [*PARAGRAPH_BREAK.finditer(segment.text), None]:
            until = match.start() if match else len(segment.text)
            if until > at:
                current.append((Segment("equal", segment.text[at:until]), _trim_breaks(shown[at:until])))
            if match:
                close()
                at = match.end()
    close()
    return tuple(out)


def _trim_breaks(shown: Sequence[Shown]) -> Sequence[Shown]:
    """A paragraph's own text, without the line breaks that end it (the paragraph's end shows those)."""
    shown = list(shown)
    while shown and shown[-1][0] in ("break", "drop"):
        shown.pop()
    return shown


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
        "rows": _rows(change),
        "old_blocks": blocks(change.text, "old") if change.old else (),
        "new_blocks": blocks(change.text, "new") if change.new else (),
        "old_location": f"{change.old.file}:{change.old.line}" if change.old else "",
        "new_location": f"{change.new.file}:{change.new.line}" if change.new else "",
        "classification": change.classification,
        "classification_label": _class_label(change.classification, t),
        "reasons": [visible(reason_sentence(reason, t)) for reason in change.reasons],
        "note": visible(change.note), "impact": visible(change.impact),
        "old_fallback": _fallback(change.old, t),
        "new_fallback": _fallback(change.new, t),
        "fallback": _fallback(change.new or change.old, t),
    }


def _rows(change: SectionChange) -> list[dict[str, Any]]:
    """Side by side, one row per paragraph: the old version's paragraph beside the new one's (a paragraph only one
    side has beside nothing), so that the columns stay aligned and a page can end between any two paragraphs."""
    rows = []
    for block in blocks(change.text):
        old = tuple(piece for piece in block.pieces if piece.op != "insert")
        new = tuple(piece for piece in block.pieces if piece.op != "delete")
        rows.append({"old": old if change.old and any(p.parts for p in old) else (),
                     "new": new if change.new and any(p.parts for p in new) else (), "changed": block.changed})
    return rows


def _fallback(side: SectionSide | None, t: Words) -> dict[str, str] | None:
    """A section shown in another language than the reader's (not yet translated): its language and the same
    notice the archived page gives it."""
    if side is None or not side.fallback:
        return None
    notice = t.gettext("This section is not yet available in %(reader)s; the %(language)s text follows.",
                       reader=t.language_name(t.language), language=t.language_name(side.language))
    return {"language": side.language, "notice": notice}


def _class_label(classification: str | None, t: Words) -> str:
    return t.classification(classification) if classification else ""


def _end(info: VersionInfo, locale: str, t: Words) -> dict[str, Any]:
    when = long_date(info.effective, locale) if info.effective else ""
    return {"label": info.label, "effective": info.effective, "effective_text": when,
            "short": when or info.label, "commit": info.commit, "content_hash": info.content_hash,
            "description": t.gettext("%(label)s, in force from %(date)s", label=info.label, date=when) if when else
            t.gettext("%(label)s (not published)", label=info.label)}


def _prepared(prepared: Preparation | None, new: VersionInfo, locale: str, t: Words) -> dict[str, Any]:
    """What the title block says about the document itself: made on demand (when, by whom, with what), or an
    archived rendering of the published version, which states no date of its making."""
    if prepared is not None:
        from babel.dates import format_datetime  # as templates.long_date: only a document that states a time needs it

        return {"on_demand": True, "signoff": prepared.signoff, "by": visible(prepared.by), "tool": prepared.tool,
                "when": prepared.when, "when_text": format_datetime(prepared.when, "long", tzinfo=prepared.when.tzinfo, locale=locale),
                "rendering": ""}
    published = long_date(new.published, locale) if new.published else ""
    rendering = (t.gettext("Rendering of the published version %(version)s, published %(date)s", version=new.label, date=published)
                 if published else t.gettext("Rendering of the published version %(version)s", version=new.label))
    return {"on_demand": False, "signoff": False, "by": "", "tool": "", "when": None, "when_text": "", "rendering": rendering}


def redline_context(changeset: ChangeSet, old_info: Any, new_info: Any, *, layout: Layout = "inline",
                    changes_only: bool = False, repo_templates: Path | None = None,
                    prepared: Preparation | None = None) -> dict[str, Any]:
    """Everything templates/redline.html is given (documented at the top of the template)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    t = strings(changeset.language, repo_templates)
    old, new = VersionInfo.of(old_info), VersionInfo.of(new_info)
    sides = {f"old:{c.old.position}": c.old for c in changeset.sections if c.old}
    sections = [_section(change, sides, t) for change in changeset.sections]
    _breadcrumbs(sections)
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
        "prepared": _prepared(prepared, new, changeset.locale, t),
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


def _breadcrumbs(sections: list[dict[str, Any]]) -> None:
    """Each section's trail of headings from the top ("Personal information › MailChimp"): a section shown without
    its parents (--changes-only, the summary) is still told apart from another of the same name."""
    trail: list[tuple[int, str]] = []
    for section in sections:
        heading = "".join(part.text for piece in (section["new_heading"] or section["old_heading"]) for part in piece.parts)
        level = section["level"]
        while trail and trail[-1][0] >= level:
            trail.pop()
        section["breadcrumb"] = [name for _, name in trail if name]
        if level:
            trail.append((level, heading))


def redline_html(changeset: ChangeSet, old_info: Any, new_info: Any, *, layout: Layout = "inline",
                 changes_only: bool = False, repo_templates: Path | None = None, prepared: Preparation | None = None) -> str:
    """The redline document as HTML: title block, summary table, legend, the text with its changes marked and, made on
    demand, a sign-off block.

    `old_info`/`new_info`: a VersionInfo, a versions.Snapshot or a ledger PublishedVersion. `prepared` says when, by
    whom and with what a redline made on demand was made; without it the document is an archived rendering of the
    published versions and states no date of its own (the same input gives the same bytes).
    """
    context = redline_context(changeset, old_info, new_info, layout=layout, changes_only=changes_only,
                              repo_templates=repo_templates, prepared=prepared)
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
    for block in blocks(segments, markdown=False):
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

"""Why a change got its suggested level, as structured objects: one rule, one section, its evidence, a neutral code.

A Reason is also the English sentence it has always been ("material: §sharing adds organisation "Hotjar""),
so diff --json, the ledger, `status` and the terminal keep reading it as text; `sentence(t)` says the same thing
in the reader's language through the catalogue, which the redline, the changelog and the archive do.
"""

from __future__ import annotations

from typing import Any

from addendum.i18n import Words

# code → the English phrase after the section reference; {kind}, {value}, {old}, {new} and {tags} are filled in.
# The English stays as it was before reasons were structured: recorded reasons in ledgers read the same.
ENGLISH = {
    "added": "is added",
    "removed": "is removed",
    "tagged": "is tagged {tags}",
    "tagged-formatting": "is tagged {tags}, but formatting alone is not material",
    "evidence-added": 'adds {kind}"{value}"',
    "evidence-removed": 'removes {kind}"{value}"',
    "evidence-changed": 'changes {kind}: "{old}" → "{new}"',
    "renamed": 'renames "{old}" → "{new}"',
    "reworded": "rewords text",
    "moved": "is moved",
    "typo": 'fixes a typo: "{old}" → "{new}"',
    "formatting-only": "changes only punctuation/whitespace/case/quotes/markup",
}
# The one reason of a first published version, whose text is all new: recorded in ledgers as it reads here.
FIRST_VERSION_REASON = "material: first published version: all of its text is new to readers"
# How the English names each kind of evidence inside a phrase ("adds organisation …", "changes a number: …").
ENGLISH_KIND = {"term": "", "organisation": "organisation ", "country": "country ", "data category": "data category ",
                "transfer safeguard": "transfer safeguard ", "legal area": "legal area ", "URL": "URL ",
                "e-mail address": "e-mail address ", "duration": "duration ", "number": "number "}
ENGLISH_CHANGED = {"URL": "a URL", "e-mail address": "an e-mail address", "duration": "a duration", "number": "a number",
                   "transfer safeguard": "the transfer safeguard"}


class Reason(str):
    """One reason: `level` (none, formatting, editorial, material), `ref` (§path), `code` (a key of ENGLISH),
    `kind` (of evidence, or ""), `values` (the evidence as the text writes it: one value, or old and new) and
    `tags`. Equal to, and hashed as, its English sentence."""

    level: str
    ref: str
    code: str
    kind: str
    values: tuple[str, ...]
    tags: tuple[str, ...]

    def __new__(cls, level: str, ref: str, code: str, kind: str = "", values: tuple[str, ...] = (),
                tags: tuple[str, ...] = ()) -> Reason:
        self = super().__new__(cls, f"{level}: {ref} {_english(code, kind, values, tags)}")
        self.level, self.ref, self.code, self.kind, self.values, self.tags = level, ref, code, kind, tuple(values), tuple(tags)
        return self

    def __reduce__(self) -> tuple[Any, ...]:  # archive workers receive reasons pickled
        return Reason, (self.level, self.ref, self.code, self.kind, self.values, self.tags)

    def at_level(self, level: str) -> Reason:
        return Reason(level, self.ref, self.code, self.kind, self.values, self.tags)

    def sentence(self, t: Words) -> str:
        """The reason in the reader's language: "inhoudelijk: §sharing voegt organisatie “Hotjar” toe"."""
        return t.gettext("%(level)s: %(reason)s", level=t.classification(self.level), reason=self.phrase(t))

    def phrase(self, t: Words) -> str:
        """The reason without its level, in the reader's language."""
        ref, values = self.ref, self.values
        first, last = (values[0] if values else ""), (values[-1] if values else "")
        tags = ", ".join(tag_label(t, tag) for tag in self.tags)
        if self.code == "added":
            return t.gettext("%(ref)s is added", ref=ref)
        if self.code == "removed":
            return t.gettext("%(ref)s is removed", ref=ref)
        if self.code == "tagged":
            return t.gettext("%(ref)s is tagged %(tags)s", ref=ref, tags=tags)
        if self.code == "tagged-formatting":
            return t.gettext("%(ref)s is tagged %(tags)s, but formatting alone is not material", ref=ref, tags=tags)
        if self.code in ("evidence-added", "evidence-removed"):
            return self._evidence(t, added=self.code == "evidence-added")
        if self.code == "evidence-changed":
            return self._changed(t, first, last)
        if self.code == "renamed":
            return t.gettext('%(ref)s renames "%(old)s" → "%(new)s"', ref=ref, old=first, new=last)
        if self.code == "reworded":
            return t.gettext("%(ref)s rewords text", ref=ref)
        if self.code == "moved":
            return t.gettext("%(ref)s is moved", ref=ref)
        if self.code == "typo":
            return t.gettext('%(ref)s fixes a typo: "%(old)s" → "%(new)s"', ref=ref, old=first, new=last)
        if self.code == "formatting-only":
            return t.gettext("%(ref)s changes only punctuation/whitespace/case/quotes/markup", ref=ref)
        return str(self).split(": ", 1)[-1]

    def _evidence(self, t: Words, added: bool) -> str:
        ref, value = self.ref, self.values[0] if self.values else ""
        if self.kind == "term":
            return t.gettext('%(ref)s adds "%(value)s"', ref=ref, value=value) if added else \
                t.gettext('%(ref)s removes "%(value)s"', ref=ref, value=value)
        kind = evidence_label(t, self.kind)
        return t.gettext('%(ref)s adds %(kind)s "%(value)s"', ref=ref, kind=kind, value=value) if added else \
            t.gettext('%(ref)s removes %(kind)s "%(value)s"', ref=ref, kind=kind, value=value)

    def _changed(self, t: Words, old: str, new: str) -> str:
        ref = self.ref
        if self.kind == "URL":
            return t.gettext('%(ref)s changes a URL: "%(old)s" → "%(new)s"', ref=ref, old=old, new=new)
        if self.kind == "e-mail address":
            return t.gettext('%(ref)s changes an e-mail address: "%(old)s" → "%(new)s"', ref=ref, old=old, new=new)
        if self.kind == "duration":
            return t.gettext('%(ref)s changes a duration: "%(old)s" → "%(new)s"', ref=ref, old=old, new=new)
        if self.kind == "transfer safeguard":
            return t.gettext('%(ref)s changes the transfer safeguard: "%(old)s" → "%(new)s"', ref=ref, old=old, new=new)
        return t.gettext('%(ref)s changes a number: "%(old)s" → "%(new)s"', ref=ref, old=old, new=new)


def _english(code: str, kind: str, values: tuple[str, ...], tags: tuple[str, ...]) -> str:
    first, last = (values[0] if values else ""), (values[-1] if values else "")
    label = ENGLISH_CHANGED.get(kind, f"a {kind}") if code == "evidence-changed" else ENGLISH_KIND.get(kind, f"{kind} ")
    return ENGLISH[code].format(kind=label, value=first, old=first, new=last, tags=", ".join(tags))


def evidence_label(t: Words, kind: str) -> str:
    """The name of a kind of evidence in the reader's language."""
    labels = {"organisation": t.pgettext("evidence", "organisation"), "country": t.pgettext("evidence", "country"),
              "data category": t.pgettext("evidence", "data category"),
              "transfer safeguard": t.pgettext("evidence", "transfer safeguard"),
              "legal area": t.pgettext("evidence", "legal area"), "URL": t.pgettext("evidence", "URL"),
              "e-mail address": t.pgettext("evidence", "e-mail address"), "duration": t.pgettext("evidence", "duration"),
              "number": t.pgettext("evidence", "number")}
    return labels.get(kind, kind)


def tag_label(t: Words, tag: str) -> str:
    """A section tag of policy.toml in the reader's language (the built-in ones; a policy's own tag as written)."""
    labels = {"controller": t.pgettext("tag", "controller"), "purposes": t.pgettext("tag", "purposes"),
              "legal-basis": t.pgettext("tag", "legal basis"), "recipients": t.pgettext("tag", "recipients"),
              "transfers": t.pgettext("tag", "transfers"), "retention": t.pgettext("tag", "retention"),
              "rights": t.pgettext("tag", "rights"), "complaint": t.pgettext("tag", "complaint"),
              "cookies": t.pgettext("tag", "cookies"), "marketing": t.pgettext("tag", "marketing"),
              "security": t.pgettext("tag", "security"), "children": t.pgettext("tag", "children")}
    return labels.get(tag, tag)


def sentence(reason: str, t: Words) -> str:
    """A reason in the reader's language; a reason recorded as text (an older ledger) as it was recorded."""
    return reason.sentence(t) if isinstance(reason, Reason) else str(reason)


# Codes whose values are the terms the rules matched in the text (the rest carry a heading or a typo's words).
_EVIDENCE_CODES = frozenset({"evidence-added", "evidence-removed", "evidence-changed"})


def reason_json(reason: str, t: Words | None = None) -> dict[str, Any]:
    """A reason as data for `diff --json` and `status --json`: its level, kind (a key of ENGLISH), section id and ref,
    the category of its evidence, the section's tags, the matched terms, the English text and the sentence in `t`'s
    language (English without `t`). A reason recorded as text (an older ledger) has only its text and sentence."""
    if not isinstance(reason, Reason):
        level, _, _ = str(reason).partition(": ")
        return {"level": level if level in ("none", "formatting", "editorial", "material") else None, "kind": None,
                "section": None, "ref": None, "category": None, "tags": [], "terms": [], "values": [],
                "text": str(reason), "sentence": str(reason)}
    section = reason.ref.removeprefix("§").rsplit(".", 1)[-1] if reason.ref.startswith("§") else None
    return {"level": reason.level, "kind": reason.code, "section": section, "ref": reason.ref,
            "category": reason.kind or None, "tags": list(reason.tags),
            "terms": list(reason.values) if reason.code in _EVIDENCE_CODES else [],
            "values": list(reason.values), "text": str(reason),
            "sentence": reason.sentence(t) if t is not None else str(reason)}

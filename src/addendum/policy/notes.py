"""The editor's notes on a version's changes: per changed section and language, a short note and its likely impact.

They live in policy.toml, so that each published version keeps the notes written for it:

    [notes.mailchimp]                 # §mailchimp, as changed in this version
    en = { note = "Transfers to MailChimp now rely on the standard contractual clauses.", impact = "None for you." }
    nl = "Doorgiften aan MailChimp steunen nu op de modelcontractbepalingen."   # a note alone

The redline's summary, the changelog and the change notice show a section's note in place of the generated
reasons. Write new notes (and delete the old ones) when preparing the next version.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from addendum.errors import Problem
from addendum.policy.model import Policy


@dataclass(frozen=True)
class Note:
    text: str
    impact: str = ""


def _note(value: Any) -> Note | None:
    if isinstance(value, str) and value.strip():
        return Note(value.strip())
    if isinstance(value, Mapping) and isinstance(value.get("note"), str) and value["note"].strip():
        impact = value.get("impact", "")
        return Note(value["note"].strip(), impact.strip() if isinstance(impact, str) else "")
    return None


def editor_notes(policy: Policy, language: str) -> dict[str, Note]:
    """Section id → the editor's note in `language` (only the valid ones: check reports the others)."""
    table = policy.settings.get("notes")
    if not isinstance(table, Mapping):
        return {}
    found = {}
    for section_id, languages in table.items():
        note = _note(languages.get(language)) if isinstance(languages, Mapping) else None
        if note is not None:
            found[section_id] = note
    return found


def problems(policy: Policy) -> Iterator[Problem]:
    """Notes of sections the policy does not have, in languages it does not have, or of the wrong shape."""
    table = policy.settings.get("notes")
    if table is None:
        return
    line = policy.config_lines.get("notes", 1)
    hint = 'write [notes.<section id>] with en = "…" or en = { note = "…", impact = "…" } per language'
    if not isinstance(table, Mapping):
        yield Problem("error", policy.config_file, line, "'notes' must be a table of section ids", hint, rule="notes")
        return
    known = set(policy.all_section_ids())
    for section_id, languages in table.items():
        if section_id not in known:
            yield Problem("error", policy.config_file, line, f"notes name section {section_id!r}, which no language has",
                          "use the id of a changed section", section=section_id, rule="notes")
            continue
        if not isinstance(languages, Mapping):
            yield Problem("error", policy.config_file, line, f"notes.{section_id} must be a table of languages", hint,
                          section=section_id, rule="notes")
            continue
        for language, value in languages.items():
            if language not in policy.languages:
                yield Problem("warning", policy.config_file, line, f"notes.{section_id} has a note in {language!r}, which is not one of the languages",
                              f"use one of {', '.join(policy.languages)}", section=section_id, rule="notes")
            elif _note(value) is None:
                yield Problem("error", policy.config_file, line, f"notes.{section_id}.{language} is not a note", hint,
                              section=section_id, rule="notes")

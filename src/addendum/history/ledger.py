"""The ledger of published versions: history/<policy>/ledger.toml, the source of truth for what was published."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import tomli_w

from addendum.errors import HistoryError, UsageError
from addendum.files import read_repository_file
from addendum.history.repository import finish_interrupted_commit
from addendum.ids import VERSION_PATTERN

LEDGER_NAME = "ledger.toml"
LEDGER_HEADER = """\
# Published versions of the policy "{policy}", oldest first.
# Written by `addendum publish`; append-only: an entry is never edited, a correction is a new version.
"""
# The hash chain: each entry records the SHA-256 of the ledger text before it (see `chain_link`).
CHAIN_FIELD = "previous_entry"
ENTRY_LINE = "[[version]]"
CORE_FIELDS = ("id", "effective", "published", "commit", "classification", "reason", "author", "summary", "hashes")


@dataclass(frozen=True)
class PublishedVersion:
    """One immutable published version, as recorded in the ledger."""

    id: str
    policy_id: str
    effective: date
    published: date
    commit: str
    classification: str
    reason: str
    author: str
    summaries: dict[str, str]
    hashes: dict[str, str]  # "site/lang" -> content hash
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """The version's folder name under history/<policy>/: its date and optional .n suffix."""
        return self.id.split("@", 1)[1]

    def hash_for(self, site_id: str, language: str) -> str | None:
        return self.hashes.get(f"{site_id}/{language}")


def ledger_path(history_dir: Path, policy_id: str) -> Path:
    return history_dir / policy_id / LEDGER_NAME


TOML_KINDS = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "an array", dict: "a table",
              date: "a date", datetime: "a date-time"}
RESTORE_HINT = "the ledger is written only by `addendum publish`; restore it from git"
TEXT_FIELDS = ("commit", "reason", "author")


def _kind(value: object) -> str:
    return TOML_KINDS.get(type(value), type(value).__name__)


def _version(policy_id: str, entry: object, number: int, where: str) -> PublishedVersion:
    """One [[version]] table as a PublishedVersion, refusing any field of the wrong shape by file and entry."""
    if not isinstance(entry, dict):
        raise HistoryError(f"{where}: entry {number} must be a [[version]] table, got {_kind(entry)}", RESTORE_HINT)
    version_id = entry.get("id")
    name = f"entry {number} ({version_id})" if isinstance(version_id, str) else f"entry {number}"

    def refuse(problem: str) -> HistoryError:
        return HistoryError(f"{where}: {name}: {problem}", RESTORE_HINT)

    for key in ("id", "effective", "published", "classification"):
        if key not in entry:
            raise refuse(f"lacks {key!r}")
    for key in ("id", "classification", *TEXT_FIELDS):
        if not isinstance(entry.get(key, ""), str):
            raise refuse(f"{key} must be text, got {_kind(entry[key])}")
    summaries, hashes = entry.get("summary", {}), entry.get("hashes", {})
    if not isinstance(summaries, dict):
        raise refuse(f"summary must be a table of language = text, got {_kind(summaries)}")
    if not isinstance(hashes, dict):
        raise refuse(f'hashes must be a table of "site/lang" = text, got {_kind(hashes)}')
    for key, table, shape in (("summary", summaries, "language = text"), ("hashes", hashes, '"site/lang" = text')):
        wrong = next((value for value in table.values() if not isinstance(value, str)), None)
        if wrong is not None:
            raise refuse(f"{key} must be a table of {shape}, got {_kind(wrong)} in it")
    return PublishedVersion(
        id=entry["id"], policy_id=policy_id, effective=entry["effective"], published=entry["published"],
        commit=entry.get("commit", ""), classification=entry["classification"],
        reason=entry.get("reason", ""), author=entry.get("author", ""),
        summaries=dict(summaries), hashes=dict(hashes),
        extra={k: v for k, v in entry.items() if k not in CORE_FIELDS},
    )


def read_ledger(history_dir: Path, policy_id: str) -> list[PublishedVersion]:
    """Published versions, oldest first; an absent ledger means nothing was published yet."""
    path = ledger_path(history_dir, policy_id)
    finish_interrupted_commit(history_dir.parent)  # a publish killed after its commit has not written the ledger yet
    if not path.is_file():
        return []
    try:
        # history/ sits at the top of the repository: the ledger must not be a link leading out of it.
        data = tomllib.loads(read_repository_file(history_dir.parent, path).decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise HistoryError(f"{path}: {exc}", RESTORE_HINT) from None
    return _versions(policy_id, data, str(path))


def _versions(policy_id: str, data: dict[str, Any], where: str) -> list[PublishedVersion]:
    """Every [[version]] entry of a parsed ledger, checked for shape and consistency."""
    entries = data.get("version", [])
    if not isinstance(entries, list):
        mistake = " (write [[version]], not [version])" if isinstance(entries, dict) else ""
        raise HistoryError(f"{where}: 'version' must be an array of [[version]] tables, got {_kind(entries)}{mistake}",
                           RESTORE_HINT)
    versions = [_version(policy_id, entry, number, where) for number, entry in enumerate(entries, start=1)]
    _require_consistent(versions, where)
    return versions


def _require_consistent(versions: list[PublishedVersion], where: str) -> None:
    """Refuse a ledger that a reader could misread: bad ids or dates, duplicates, versions out of order."""
    hint = RESTORE_HINT
    seen: set[str] = set()
    previous: PublishedVersion | None = None
    for version in versions:
        match = VERSION_PATTERN.fullmatch(version.id)
        if match is None or match["policy"] != version.policy_id:
            raise HistoryError(f"{where}: {version.id!r} is not a version id of policy {version.policy_id}", hint)
        for name in ("effective", "published"):
            value = getattr(version, name)
            if not isinstance(value, date) or isinstance(value, datetime):
                raise HistoryError(f"{where}: {version.id}: {name} must be a date (YYYY-MM-DD), got {value!r}", hint)
        if match["date"] != version.effective.isoformat():
            raise HistoryError(f"{where}: {version.id} does not carry its effective date {version.effective}", hint)
        if version.id in seen:
            raise HistoryError(f"{where}: version {version.id} is recorded twice", hint)
        if previous is not None and version.effective < previous.effective:
            raise HistoryError(f"{where}: {version.id} takes effect before {previous.id}, which is listed earlier", hint)
        seen.add(version.id)
        previous = version


def last_changed(history_dir: Path, policy_id: str, site_id: str, language: str, content_hash: str,
                 until: str | None = None) -> date | None:
    """The date this text took effect for this site and language: the effective date of the first version of the
    latest run of published versions (up to version `until`, when given) that all had exactly this text."""
    versions = read_ledger(history_dir, policy_id)
    if until is not None:
        versions = versions[:next((i + 1 for i, v in enumerate(versions) if v.id == until), len(versions))]
    found: date | None = None
    for version in reversed(versions):
        if version.hash_for(site_id, language) == content_hash:
            found = version.effective
        elif found is not None:
            break
    return found


def next_version_id(policy_id: str, effective: date, taken: set[str]) -> str:
    """`policy@YYYY-MM-DD`, or with `.2`, `.3`… when versions on that effective date exist already."""
    base = f"{policy_id}@{effective.isoformat()}"
    if base not in taken:
        return base
    number = 2
    while f"{base}.{number}" in taken:
        number += 1
    return f"{base}.{number}"


def entry_table(version: PublishedVersion) -> dict[str, Any]:
    """The version as a ledger entry: core fields in a fixed order, then the extra ones (tables last)."""
    table: dict[str, Any] = {"id": version.id, "effective": version.effective, "published": version.published,
                             "commit": version.commit, "classification": version.classification,
                             "reason": version.reason, "author": version.author,
                             "summary": dict(version.summaries), "hashes": dict(sorted(version.hashes.items()))}
    for key, value in version.extra.items():
        if key in CORE_FIELDS:
            raise UsageError(f"extra ledger field {key!r} would replace a core field", "give the extra field another name")
        table[key] = value
    return table


def append_entries(existing: str | None, policy_id: str, versions: list[PublishedVersion]) -> str:
    """The ledger text with entries appended, each linked to the one before it (CHAIN_FIELD); earlier bytes are kept
    exactly, so the git diff only adds lines."""
    text = existing if existing is not None else LEDGER_HEADER.format(policy=policy_id)
    linked = []
    for version in versions:
        text += ("" if text.endswith("\n") else "\n") + "\n"
        version = replace(version, extra={**version.extra, CHAIN_FIELD: chain_link(text)})
        try:
            entry = tomli_w.dumps({"version": [entry_table(version)]})
        except TypeError as exc:
            raise UsageError(f"version {version.id} has a field TOML cannot hold: {exc}",
                             "extra fields take strings, numbers, booleans, dates, lists and tables") from None
        text += entry
        linked.append(version)
    parsed = _versions(policy_id, tomllib.loads(text), LEDGER_NAME)
    if versions and parsed[-len(versions):] != linked:
        raise HistoryError("the ledger entry did not read back as written", "report this: no file was changed")
    return text


# ---------------------------------------------------------------------------------------------- the hash chain
#
# An entry's bytes are the ledger's lines from its `[[version]]` line up to the next one (or the end), without the
# blank lines that end them, each line ending in "\n" (a "\r\n" counts as "\n": a checkout with Windows line endings
# verifies). An entry's CHAIN_FIELD is "sha256:" + the SHA-256 of the bytes from the start of the previous entry
# that carries one (or from the start of the file) up to its own `[[version]]` line, taken the same way. In a ledger
# written by `publish` alone that is the previous entry's bytes; the first entry that carries one links to everything
# before it (the header and any entries written before the chain existed), so none of it can change unnoticed.


@dataclass(frozen=True)
class LedgerEntry:
    """One [[version]] entry as bytes in the ledger file: where it starts, what it hashes to, what it links to."""

    number: int  # 1-based
    line: int  # the line of its [[version]] header
    version_id: str
    data: bytes
    link: str | None  # its CHAIN_FIELD, None when it carries none
    expected_link: str  # what its CHAIN_FIELD must be

    @property
    def digest(self) -> str:
        """"sha256:" + the SHA-256 of the entry's bytes: what the next entry links to and a timestamp token covers."""
        return "sha256:" + hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    """Where the chain does not hold: the line to look at, and what is wrong there."""

    line: int
    message: str


def _canonical(lines: list[str]) -> bytes:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").split("\n")


def _entry_starts(lines: list[str]) -> list[int]:
    return [index for index, line in enumerate(lines) if line.strip() == ENTRY_LINE]


def chain_link(text_before: str) -> str:
    """The CHAIN_FIELD of an entry that would start right after `text_before` (a ledger's text so far)."""
    lines = _lines(text_before)
    tables = tomllib.loads(text_before).get("version", [])
    starts = _entry_starts(lines)
    linked = [start for start, table in zip(starts, tables, strict=False) if isinstance(table, dict) and CHAIN_FIELD in table]
    begin = linked[-1] if linked else 0
    return "sha256:" + hashlib.sha256(_canonical(lines[begin:])).hexdigest()


def ledger_entries(text: str) -> tuple[list[LedgerEntry], list[ChainBreak]]:
    """The ledger's entries as bytes, and every place its hash chain breaks. Each break names the line of the entry
    that no longer has the bytes the next entry recorded (or of the entry that leaves the chain)."""
    lines = _lines(text)
    tables = tomllib.loads(text).get("version", [])
    tables = tables if isinstance(tables, list) else []
    starts = _entry_starts(lines)
    breaks: list[ChainBreak] = []
    if len(starts) != len(tables):
        breaks.append(ChainBreak(1, f"{len(tables)} [[version]] entries, but {len(starts)} lines that are exactly "
                                    f"{ENTRY_LINE}: entries are not delimited as `publish` writes them"))
        return [], breaks
    entries: list[LedgerEntry] = []
    begin, begin_line = 0, 0  # where the bytes the next link covers begin: the last linked entry, else the file
    for number, (start, table) in enumerate(zip(starts, tables, strict=True), start=1):
        end = starts[number] if number < len(starts) else len(lines)
        link = table.get(CHAIN_FIELD) if isinstance(table, dict) else None
        version_id = str(table.get("id", f"entry {number}")) if isinstance(table, dict) else f"entry {number}"
        expected = "sha256:" + hashlib.sha256(_canonical(lines[begin:start])).hexdigest()
        entry = LedgerEntry(number, start + 1, version_id, _canonical(lines[start:end]),
                            link if isinstance(link, str) or link is None else repr(link), expected)
        entries.append(entry)
        chain_started = any(e.link is not None for e in entries[:-1])
        if entry.link is None:
            if chain_started:
                breaks.append(ChainBreak(entry.line, f"{version_id} carries no {CHAIN_FIELD}, but the entries before it "
                                                     "are chained: an entry was added or rewritten by hand"))
            continue
        if entry.link != expected:
            covered = next((e for e in entries if e.line == begin_line), None)
            if covered is not None:
                line, what = covered.line, f"{covered.version_id} (line {covered.line})"
            else:
                line, what = 1, "the ledger's header" + (" and the entries before the chain" if number > 1 else "")
            breaks.append(ChainBreak(line, f"{what}: not what {version_id} (line {entry.line}) recorded ({CHAIN_FIELD} "
                                           f"{entry.link[:19]}…; it now hashes to {expected[:19]}…); one of the two was changed"))
        begin, begin_line = start, start + 1
    return entries, breaks


def chain_start(entries: list[LedgerEntry]) -> LedgerEntry | None:
    """The first entry that carries a link: the entries before it were written before the ledger was chained."""
    return next((entry for entry in entries if entry.link is not None), None)

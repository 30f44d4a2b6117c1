"""Documents for readers: a policy's text as it stands now, on a date, at a version or a revision, dated from the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from babel.dates import format_date

from addendum.config import Repo
from addendum.errors import UsageError
from addendum.files import write_atomic
from addendum.history.ledger import PublishedVersion, last_changed
from addendum.history.versions import (
    WORKTREE,
    NothingInForceError,
    Snapshot,
    find_version,
    in_force_periods,
    published_versions,
    require_in_force,
    revision_snapshot,
    snapshot,
    version_snapshot,
)
from addendum.policy.check import require_valid
from addendum.policy.model import load_policy
from addendum.policy.resolve import ResolvedPolicy, resolve
from addendum.render import Format, render_policy

# What render and show write: the template formats, or a Word document (bytes) for reading and filing.
DocumentFormat = Literal["html", "md", "text", "docx"]


@dataclass(frozen=True)
class ShownText:
    """A policy's text for one site and language at some point, and what a reader should know about that point."""

    text: str
    snapshot: Snapshot
    notes: tuple[str, ...]
    document: bytes = b""  # the .docx, when that was asked for (text is then empty)




def _successor_note(repo: Repo, version: PublishedVersion, day: date, today: date) -> list[str]:
    """What followed `version`: announced but not yet in effect (on `day` or today), or in force since."""
    versions = published_versions(repo, version.policy_id)
    following = versions[versions.index(version) + 1:]
    if not following:
        return []
    successor = following[0]
    if successor.effective <= version.effective:
        return [f"never in force: replaced by {successor.id} before it took effect on {_english_date(version.effective)}"]
    announced = successor.published <= day < successor.effective or successor.effective > today
    if announced:
        return [f"upcoming: {successor.id} effective {_english_date(successor.effective)} "
                f"(published {_english_date(successor.published)})"]
    return [f"superseded by {successor.id}, effective {_english_date(successor.effective)}"]


def _english_date(day: date) -> str:
    return format_date(day, "long", locale="en_GB")


def show_text(repo: Repo, policy_id: str, *, at: date | None = None, version: str | None = None, rev: str | None = None,
              site_id: str | None = None, language: str | None = None, fmt: DocumentFormat = "text",
              today: date | None = None) -> ShownText:
    """The text readers of one site in one language saw on a date (default: today), at a version or a revision."""
    if sum(x is not None for x in (at, version, rev)) > 1:
        raise UsageError("give only one of --at, --version and --rev")
    today = today or date.today()
    notes: list[str] = []
    if version is not None:
        shot = version_snapshot(repo, find_version(repo, policy_id, version))
    elif rev is not None:
        shot = snapshot(repo, policy_id, None) if rev == WORKTREE else revision_snapshot(repo, policy_id, rev)
    else:
        shot = version_snapshot(repo, require_in_force(repo, policy_id, at or today, NothingInForceError))
        notes.append(f"{shot.label} was in force on {_english_date(at or today)} "
                     f"(effective {_english_date(shot.effective or today)})")
    if shot.version is not None:
        notes.extend(_successor_note(repo, shot.version, at or today, today))
    policy = shot.policy
    resolved = resolve(policy, site_id or policy.default_site, policy.require_language(language or policy.default_language))
    until = shot.version.id if shot.version else None
    if fmt == "docx":
        return ShownText("", shot, tuple(notes), render_snapshot_docx(repo, resolved, until=until))
    text = render_snapshot_text(repo, resolved, fmt, until=until)
    return ShownText(text, shot, tuple(notes))


def _dated(repo: Repo, resolved: ResolvedPolicy, until: str | None, last_changed_on: date | None) -> tuple[date | None, list[date]]:
    when = last_changed_on or last_changed(repo.history_dir, resolved.policy_id, resolved.site, resolved.language,
                                           resolved.content_hash(), until)
    versions = published_versions(repo, resolved.policy_id)
    # A version replaced before it took effect (a `.1` by its `.2`) was never in force: not an earlier version of the text.
    earlier = [p.version.effective for p in in_force_periods(versions)
               if not p.never_in_force and (when is None or p.version.effective < when)]
    return when, earlier[::-1]


def render_snapshot_text(repo: Repo, resolved: ResolvedPolicy, fmt: Format, *, until: str | None = None,
                         last_changed_on: date | None = None) -> str:
    """The page for one site × language, dated from the ledger: the day this text took effect (looking no later
    than version `until`, when given; or `last_changed_on`) and, newest first, the versions in force before it."""
    when, earlier = _dated(repo, resolved, until, last_changed_on)
    return render_policy(resolved, fmt, when, repo.templates_dir, earlier_versions=earlier)


def render_snapshot_docx(repo: Repo, resolved: ResolvedPolicy, *, until: str | None = None,
                         last_changed_on: date | None = None) -> bytes:
    """The same text, dated the same way, as a Word document for reading and filing."""
    from addendum.render.word.document import policy_docx

    when, earlier = _dated(repo, resolved, until, last_changed_on)
    return policy_docx(resolved, when, repo.templates_dir, earlier_versions=earlier)


def render_document(repo: Repo, policy_id: str, site_id: str | None, language: str | None, fmt: DocumentFormat,
                    output: Path | None = None, last_changed_on: date | None = None) -> str | bytes:
    """The working tree's text for one site and language (a .docx as bytes); refuses a policy with errors; writes
    atomically."""
    policy = load_policy(repo.root, policy_id)
    require_valid(policy)
    resolved = resolve(policy, site_id or policy.default_site, language or policy.default_language)
    if fmt == "docx":
        data = render_snapshot_docx(repo, resolved, last_changed_on=last_changed_on)
        if output is not None:
            write_atomic(output, data)
        return data
    text = render_snapshot_text(repo, resolved, fmt, last_changed_on=last_changed_on)
    if output is not None:
        write_atomic(output, text)
    return text

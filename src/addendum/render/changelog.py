"""The changelog of a policy: every published version, newest first, as Markdown, HTML and an Atom feed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, cast

from addendum import paths
from addendum.compare.classify import classified_changes
from addendum.compare.materiality import Level, max_level
from addendum.compare.reasons import sentence as reason_sentence
from addendum.config import Repo
from addendum.errors import HistoryError
from addendum.history.ledger import PublishedVersion, ledger_path
from addendum.history.versions import InForce, in_force_periods, load_version, published_versions, replaced_version
from addendum.i18n import Words
from addendum.policy.model import Policy
from addendum.render import stylesheet
from addendum.templates import long_date, render_template, strings

Format = Literal["md", "html"]


@dataclass(frozen=True)
class ChangedSection:
    section_id: str
    ref: str
    heading: str
    kinds: tuple[str, ...]
    words_deleted: int
    words_inserted: int
    classification: Level
    reasons: tuple[str, ...]
    sites: tuple[str, ...]  # the sites where this section changed; all of them when it changed everywhere
    redline: str  # archive path of the redline anchor, relative to history/
    note: str = ""  # the editor's note on it (policy.toml [notes]), shown in place of its reasons
    impact: str = ""


@dataclass(frozen=True)
class ChangelogEntry:
    version: PublishedVersion
    previous: PublishedVersion | None
    summary: str
    suggested: str
    reasons: tuple[str, ...]
    changes: tuple[ChangedSection, ...]
    in_force: InForce | None = None  # until when, and what superseded it


def _changes(policy_id: str, language: str, old: Policy, new: Policy, version: PublishedVersion,
             t: Words) -> tuple[list[ChangedSection], list[str]]:
    by_section: dict[str, ChangedSection] = {}
    reasons: list[str] = []
    for site_id in new.sites:
        if site_id not in old.sites:
            continue
        changeset = classified_changes(old, new, site_id, language)
        noted = {change.ref for change in changeset.changes if change.note}
        for reason in changeset.reasons:
            shown = reason_sentence(reason, t)
            if getattr(reason, "ref", None) not in noted and shown not in reasons:
                reasons.append(shown)
        for change in changeset.changes:
            known = by_section.get(change.id)
            if known is not None:
                by_section[change.id] = replace(known, sites=(*known.sites, site_id))
                continue
            side = change.new or change.old
            assert side is not None
            redline = paths.redline_page(policy_id, version.slug, site_id, language) + "#" + change.anchor
            by_section[change.id] = ChangedSection(
                change.id, change.ref, side.heading, tuple(change.ordered_kinds), change.words("delete"), change.words("insert"),
                cast(Level, change.classification or "none"), tuple(reason_sentence(r, t) for r in change.reasons), (site_id,), redline,
                change.note, change.impact)
    return list(by_section.values()), reasons


# The Markdown, HTML and Atom outputs of one language share their entries; the ledger's bytes key them, so a
# new version (or a changed ledger) is never answered from the cache.
_entries_cache: dict[tuple[str, str, str, bytes], list[ChangelogEntry]] = {}


def changelog_entries(repo: Repo, policy_id: str, language: str) -> list[ChangelogEntry]:
    """Every published version, newest first, with what changed against its predecessor in `language`."""
    ledger = ledger_path(repo.history_dir, policy_id)
    key = (str(repo.root), policy_id, language, ledger.read_bytes() if ledger.is_file() else b"")
    if key not in _entries_cache:
        _entries_cache.clear()  # one policy and language at a time is all the outputs need
        _entries_cache[key] = _changelog_entries(repo, policy_id, language)
    return _entries_cache[key]


def _changelog_entries(repo: Repo, policy_id: str, language: str) -> list[ChangelogEntry]:
    versions = published_versions(repo, policy_id)
    t = strings(language, repo.templates_dir)
    entries: list[ChangelogEntry] = []
    loaded: dict[str, Policy] = {}
    periods = {period.version.id: period for period in in_force_periods(versions)}
    for version in versions:
        policy = loaded[version.id] = load_version(repo, version)
        # Against the version it replaces in force: a `.2` against what was in force before its date, as its notice.
        previous = replaced_version(versions, version)
        previous_policy = loaded[previous.id] if previous is not None else None
        changes: list[ChangedSection] = []
        computed: list[str] = []
        if previous_policy is not None and language in policy.languages:
            changes, computed = _changes(policy_id, language, previous_policy, policy, version, t)
        recorded_reasons = version.extra.get("reasons")
        summary = version.summaries.get(language) or version.summaries.get(policy.default_language, "")
        entries.append(ChangelogEntry(
            version, previous, summary,
            str(version.extra.get("suggested") or ("material" if previous is None else max_level(c.classification for c in changes))),
            # The reasons computed now read in the changelog's language; a ledger's recorded ones are English text.
            () if previous is None else tuple(computed or recorded_reasons or ()), tuple(changes), periods[version.id]))
    return entries[::-1]


def _context(repo: Repo, policy_id: str, language: str | None, link_base: str) -> dict[str, Any]:
    versions = published_versions(repo, policy_id)
    if not versions:
        raise HistoryError(f"policy {policy_id} has no published versions yet", f"publish one with `addendum publish {policy_id} …`")
    latest = load_version(repo, versions[-1])
    language = latest.require_language(language or latest.default_language)
    return {
        "policy_id": policy_id,
        "title": latest.title(language),
        "language": language,
        "locale": latest.locale(language),
        "sites": list(latest.sites),
        "default_site": latest.default_site,
        "controller": latest.controller,
        "entries": changelog_entries(repo, policy_id, language),
        "link": lambda archive_path: paths.url(link_base, archive_path) if link_base else paths.link(paths.changelog(policy_id, language), archive_path),
        "t": strings(language, repo.templates_dir),
        "css": stylesheet(),
    }


def changelog_document(repo: Repo, policy_id: str, language: str | None, fmt: Format, link_base: str | None = None) -> str:
    """The changelog as Markdown or HTML. Links point into the archive: relative (link_base "") or under a base URL."""
    base = repo.setting("archive.base_url") if link_base is None else link_base
    context = _context(repo, policy_id, language, base)
    name = f"changelog.{fmt}"
    return render_template([f"changelog-{policy_id}.{fmt}", name], context, repo.templates_dir)


def entry_id(version: PublishedVersion, language: str) -> str:
    """A feed entry id that never changes when the feed is rebuilt."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"addendum:{version.id}:{language}").urn


def _midnight(day: Any) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def atom_feed(repo: Repo, policy_id: str, language: str | None) -> bytes:
    """An Atom feed of the published versions, newest first; rebuilt byte for byte from the same ledger."""
    base = repo.setting("archive.base_url")
    context = _context(repo, policy_id, language, base)
    t, locale, language = context["t"], context["locale"], context["language"]
    entries: list[ChangelogEntry] = context["entries"]
    def href(path: str) -> str:  # absolute under archive.base_url, else relative to the feed in history/<policy>/
        return paths.url(base, path) if base else paths.link(paths.feed(policy_id, language), path)

    from feedgen.feed import FeedGenerator  # only the Atom feed needs it: `changelog` starts without it

    feed = FeedGenerator()
    feed.id(uuid.uuid5(uuid.NAMESPACE_URL, f"addendum:{policy_id}:{language}").urn)
    feed.title(context["title"] + " — " + t.gettext("Changelog"))
    feed.language(language)
    feed.link(href=href(paths.changelog(policy_id, language)), rel="alternate")
    feed.link(href=href(paths.feed(policy_id, language)), rel="self")
    feed.author(name=context["controller"].name, email=context["controller"].email or None)
    feed.updated(_midnight(entries[0].version.published))
    for entry in reversed(entries):  # feedgen prepends, so the newest ends up first
        version = entry.version
        item = feed.add_entry()
        item.id(entry_id(version, language))
        item.title(t.gettext("%(version)s, effective %(date)s", version=version.id, date=long_date(version.effective, locale)))
        item.updated(_midnight(version.published))
        item.published(_midnight(version.published))
        item.link(href=href(paths.version_page(policy_id, version.slug, context["default_site"], language)))
        item.summary(render_template("changelog-entry.txt", {**context, "entry": entry}, repo.templates_dir))
    return bytes(feed.atom_str(pretty=True))

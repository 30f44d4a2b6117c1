"""What a policy's public endpoints answer: the policies, their published versions, and the version in force on a date."""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path
from typing import Any

from addendum import paths
from addendum.config import Repo
from addendum.errors import AddendumError, UsageError
from addendum.history.ledger import PublishedVersion, ledger_path
from addendum.history.versions import known_policy_ids, load_version, published_versions
from addendum.ids import LANGUAGE_PATTERN, require_id

API_FORMAT = "addendum-api/1"
HISTORY_PREFIX = "/history/"


class NotFound(UsageError):
    """What was asked about does not exist: no such policy, nothing in force that day, no such site or language."""


# Ledgers by file identity: a server answers the same question thousands of times a second, and the ledger changes
# only when a version is published (append-only, so its size changes with it).
_LEDGERS: dict[Path, tuple[tuple[int, int, int], list[PublishedVersion]]] = {}


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_mtime_ns, found.st_size, found.st_ino


def versions_of(repo: Repo, policy_id: str) -> list[PublishedVersion]:
    """The published versions of a known policy, oldest first (NotFound for a policy the repository does not know)."""
    require_id(policy_id, "policy")
    path = ledger_path(repo.history_dir, policy_id)
    signature = _signature(path)
    cached = _LEDGERS.get(path)
    if signature is not None and cached is not None and cached[0] == signature:
        return cached[1]
    if signature is None and not (repo.policies_dir / policy_id / "policy.toml").is_file():
        known = ", ".join(known_policy_ids(repo)) or "none yet"
        raise NotFound(f"no policy {policy_id!r}", f"known policies: {known}")
    versions = published_versions(repo, policy_id)
    if signature is not None:
        _LEDGERS[path] = (signature, versions)
    return versions


# Archive links by version folder: each answer lists which of a version's five archived files exist, and the folder's
# own signature tells when that may have changed (a file written, replaced or removed there changes its mtime and its
# ctime, and ctime cannot be set back). As git does for its index, a folder changed within the last RACY_NS may change
# again within the same tick of the file system's clock without its times showing it, so its links are looked up
# afresh until it has been still for longer.
_LINKS: dict[tuple[str, str], tuple[tuple[int, int, int], dict[str, Any]]] = {}
RACY_NS = 2_000_000_000
MAX_CACHED_FOLDERS = 4096


def _archive_links(repo: Repo, version: PublishedVersion, site_id: str, language: str) -> dict[str, Any]:
    """The archived files of one version for one site and language: served here under /history/, and their public
    address from archive.base_url; only files that exist in the archive are listed."""
    base_url = str(repo.setting("archive.base_url") or "")
    folder = paths.version_dir(version.policy_id, version.slug, site_id, language)
    full = os.path.join(repo.history_dir, folder)
    try:
        found = os.stat(full)
    except OSError:
        return {}  # no folder, no files: nothing to list, whether or not the folder appears later
    signature = (found.st_mtime_ns, found.st_ctime_ns, found.st_ino)
    key = (full, base_url)
    cached = _LINKS.get(key)
    if cached is not None and cached[0] == signature:
        return cached[1]
    links: dict[str, Any] = {}
    for kind, name in (("page", paths.VERSION_PAGE), ("pdf", paths.VERSION_PDF), ("json", paths.VERSION_JSON),
                       ("redline", paths.REDLINE_PAGE), ("redline_pdf", paths.REDLINE_PDF)):
        if os.path.isfile(os.path.join(full, name)):
            path = f"{folder}/{name}"
            links[kind] = {"href": HISTORY_PREFIX + path, "url": paths.url(base_url, path) if base_url else None}
    if time.time_ns() - max(found.st_mtime_ns, found.st_ctime_ns) > RACY_NS:
        if len(_LINKS) >= MAX_CACHED_FOLDERS:
            _LINKS.pop(next(iter(_LINKS)))
        _LINKS[key] = (signature, links)
    return links


def version_json(repo: Repo, version: PublishedVersion, site_id: str | None = None, language: str | None = None) -> dict[str, Any]:
    """One published version as the API shows it; with a site and language, that text's hash and archive links."""
    entry: dict[str, Any] = {
        "id": version.id, "effective": version.effective.isoformat(), "published": version.published.isoformat(),
        "classification": version.classification, "summary": dict(version.summaries),
        "texts": sorted(version.hashes),
    }
    if site_id is not None and language is not None:
        entry["site"], entry["language"] = site_id, language
        entry["content_hash"] = version.hash_for(site_id, language)
        entry["archive"] = _archive_links(repo, version, site_id, language)
    return entry


def policy_list(repo: Repo) -> dict[str, Any]:
    """`GET /api/policies`: every policy with a published version or a folder in policies/, and its latest version."""
    policies = []
    for policy_id in known_policy_ids(repo):
        versions = versions_of(repo, policy_id)
        latest = versions[-1] if versions else None
        texts = sorted(latest.hashes) if latest else []
        policies.append({
            "id": policy_id,
            "latest_version": latest.id if latest else None,
            "effective": latest.effective.isoformat() if latest else None,
            "sites": sorted({key.split("/")[0] for key in texts}),
            "languages": sorted({key.split("/")[1] for key in texts}),
            "versions": f"/api/policies/{policy_id}/versions",
        })
    return {"format": API_FORMAT, "policies": policies}


def version_list(repo: Repo, policy_id: str) -> dict[str, Any]:
    """`GET /api/policies/{id}/versions`: every published version, newest first."""
    versions = versions_of(repo, policy_id)
    return {"format": API_FORMAT, "policy": policy_id, "versions": [version_json(repo, v) for v in reversed(versions)]}


def _default_text(version: PublishedVersion) -> tuple[str, str]:
    """The site and language a version was published for first (its ledger lists them site/lang, sorted)."""
    site, language = sorted(version.hashes)[0].split("/")
    return site, language


def version_at(repo: Repo, policy_id: str, day: date, site_id: str | None = None, language: str | None = None) -> dict[str, Any]:
    """`GET /api/policies/{id}/at/{date}`: the version in force on `day` for one site and language (default: the
    policy's default site and language), and the next version already announced, if any."""
    if site_id is not None:
        require_id(site_id, "site")
    if language is not None and not LANGUAGE_PATTERN.fullmatch(language):
        raise UsageError(f"{language!r} is not a language code", "language codes look like en, nl or pt-BR")
    versions = versions_of(repo, policy_id)
    current, upcoming = in_force_among(versions, day)
    if current is None:
        hint = f"the first version, {upcoming.id}, takes effect on {upcoming.effective.isoformat()}" if upcoming else "nothing is published yet"
        raise NotFound(f"no version of {policy_id} was in force on {day.isoformat()}", hint)
    if site_id is None or language is None:
        default_site, default_language = _policy_defaults(repo, policy_id, current)
        site_id, language = site_id or default_site, language or default_language
    if current.hash_for(site_id, language) is None:
        raise NotFound(f"{current.id} has no text for site {site_id!r} in language {language!r}",
                       f"it was published for: {', '.join(sorted(current.hashes))}")
    return {
        "format": API_FORMAT, "policy": policy_id, "date": day.isoformat(), "site": site_id, "language": language,
        "in_force": version_json(repo, current, site_id, language),
        "upcoming": version_json(repo, upcoming, site_id, language) if upcoming is not None else None,
    }


def in_force_among(versions: list[PublishedVersion], day: date) -> tuple[PublishedVersion | None, PublishedVersion | None]:
    """(the version in force on `day`, the first one taking effect after it) among versions oldest first."""
    current: PublishedVersion | None = None
    for version in versions:
        if version.effective > day:
            return current, version
        current = version
    return current, None


# The policy's default site and language, by the ledger entry they were read for (policy.toml may name them).
_DEFAULTS: dict[tuple[Path, str], tuple[str, str]] = {}


def _policy_defaults(repo: Repo, policy_id: str, version: PublishedVersion) -> tuple[str, str]:
    key = (repo.root, version.id)
    if key not in _DEFAULTS:
        try:
            policy = load_version(repo, version)
            _DEFAULTS[key] = (policy.default_site, policy.default_language)
        except AddendumError:  # a damaged archived source: the API still answers from the ledger
            _DEFAULTS[key] = _default_text(version)
    return _DEFAULTS[key]


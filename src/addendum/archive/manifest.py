"""The archive's plan and manifest: which files each published version needs, and what history/manifest.json records."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from addendum import __version__, paths
from addendum.config import Repo
from addendum.errors import HistoryError
from addendum.history.ledger import PublishedVersion, ledger_path
from addendum.history.versions import known_policy_ids, published_versions, require_policy
from addendum.ids import VERSION_PATTERN
from addendum.templates import builtin_dir

MANIFEST_FORMAT = "addendum-archive-manifest/1"
JSON_FORMAT = "addendum-archived-version/1"
PDF_VARIANT = "pdf/a-3u"
RECORD_NAMES = (paths.VERSION_PAGE, paths.VERSION_PDF, paths.VERSION_JSON, paths.REDLINE_PAGE, paths.REDLINE_PDF)
RECORD_KINDS = {paths.VERSION_PAGE: "page", paths.VERSION_PDF: "pdf", paths.VERSION_JSON: "json",
                paths.REDLINE_PAGE: "redline", paths.REDLINE_PDF: "redline-pdf"}
MANIFEST_SAVE_SECONDS = 2.0

FindingKind = Literal["missing", "changed", "unrecorded", "not-archived", "text", "ledger", "rebuild", "chain", "signature",
                      "timestamp"]


@dataclass(frozen=True)
class Finding:
    """Something in the archive that is not as the manifest or the ledger says it should be."""

    kind: FindingKind
    path: str  # relative to history/, or a version id for findings about a version's text
    detail: str

    def format(self) -> str:
        where = self.path if VERSION_PATTERN.fullmatch(self.path) else f"history/{self.path}"
        return f"{self.kind}: {where}: {self.detail}"


@dataclass(frozen=True)
class View:
    """One published version as one site's readers saw it in one language: the unit the archive is built from."""

    policy_id: str
    version: PublishedVersion
    previous: PublishedVersion | None  # the last earlier version that had this site and language
    site_id: str
    language: str
    last_changed: date  # the effective date of the version that last changed this text
    siblings: tuple[str, ...]  # every "site/lang" this version was published for

    @property
    def key(self) -> str:
        return f"{self.site_id}/{self.language}"

    @property
    def folder(self) -> str:
        return paths.version_dir(self.policy_id, self.version.slug, self.site_id, self.language)

    def path(self, name: str) -> str:
        return f"{self.folder}/{name}"

    @property
    def names(self) -> tuple[str, ...]:
        """The files of this view; the first version of a text has no redline."""
        return RECORD_NAMES if self.previous is not None else RECORD_NAMES[:3]

    def entry(self, name: str, data: bytes, toolchain: str, built: str = "") -> dict[str, Any]:
        """The manifest entry of one of this view's files; `built` is when it was rendered (the files themselves
        carry no date), "" for a file found already in place."""
        entry: dict[str, Any] = {
            "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "kind": RECORD_KINDS[name],
            "policy": self.policy_id, "version": self.version.id, "commit": self.version.commit,
            "site": self.site_id, "language": self.language, "content_hash": self.version.hashes[self.key],
            "toolchain": toolchain,
        }
        if built:
            entry["built"] = built
        if name in (paths.REDLINE_PAGE, paths.REDLINE_PDF) and self.previous is not None:
            entry["previous"] = self.previous.id
            entry["previous_content_hash"] = self.previous.hashes[self.key]
        return entry


@dataclass
class Manifest:
    """history/manifest.json in memory: every archived file, the inputs of each policy's listings, the toolchains."""

    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    listings: dict[str, str] = field(default_factory=dict)
    toolchains: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        used = {str(entry.get("toolchain")) for entry in self.files.values()}
        toolchains = {key: value for key, value in self.toolchains.items() if key in used}
        document = {"format": MANIFEST_FORMAT, "files": self.files, "listings": self.listings, "toolchains": toolchains}
        return (json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


@dataclass(frozen=True)
class PolicyPlan:
    policy_id: str
    versions: tuple[PublishedVersion, ...]
    views: tuple[View, ...]
    listing_names: tuple[str, ...]
    listing_key: str


@dataclass(frozen=True)
class ArchiveReport:
    """What a run of the archive did."""

    policies: tuple[PolicyPlan, ...]
    written: tuple[str, ...]  # paths relative to the output folder
    kept: int  # files already archived and left as they were
    findings: tuple[Finding, ...]
    jobs: int
    seconds: float
    dry_run: bool = False
    sealed: tuple[str, ...] = ()  # the manifest signed, it and ledger entries timestamped: one line each

    def index_pages(self) -> list[str]:
        """The entry page of each archived policy, relative to the archive's folder."""
        return [paths.policy_index(plan.policy_id) for plan in self.policies if plan.versions]


# ---------------------------------------------------------------------------------------------- manifest


def build_time() -> str:
    """This moment in the local time zone, to the second, with its offset: when an archived file was built."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def manifest_path(history_dir: Path) -> Path:
    return history_dir / paths.MANIFEST


def manifest_bytes(history_dir: Path) -> bytes | None:
    """The manifest's bytes as they are now (None before the first archive run): what sealing compares with."""
    path = manifest_path(history_dir)
    return path.read_bytes() if path.is_file() else None


def read_manifest(history_dir: Path) -> Manifest | None:
    """The manifest, or None when the archive has none yet."""
    path = manifest_path(history_dir)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HistoryError(f"{path}: not a manifest ({exc})", "restore history/manifest.json from git") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or not isinstance(data.get("files"), dict):
        raise HistoryError(f"{path}: not an archive manifest of format {MANIFEST_FORMAT}", "restore history/manifest.json from git")
    return Manifest(dict(data["files"]), dict(data.get("listings", {})), dict(data.get("toolchains", {})))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- planning


def plan_views(versions: Sequence[PublishedVersion]) -> list[View]:
    """Every version × site × language the ledger records, oldest first, each knowing its predecessor: the version
    it replaces in force (for a `.2`, the one in force before their date, not the `.1` that never took effect)."""
    views: list[View] = []
    earlier: dict[str, list[PublishedVersion]] = {}
    changed_on: dict[str, date] = {}
    for version in versions:
        siblings = tuple(sorted(version.hashes))
        for key in siblings:
            site_id, _, language = key.partition("/")
            previous = next((v for v in reversed(earlier.get(key, [])) if v.effective < version.effective), None)
            if previous is None or previous.hashes[key] != version.hashes[key]:
                changed_on[key] = version.effective
            views.append(View(version.policy_id, version, previous, site_id, language, changed_on[key], siblings))
            earlier.setdefault(key, []).append(version)
    return views


def listing_names(policy_id: str, versions: Sequence[PublishedVersion]) -> tuple[str, ...]:
    """A policy's index pages (index.html and one per language), changelogs and feeds."""
    if not versions:
        return ()
    names = [paths.policy_index(policy_id)] + [paths.policy_index(policy_id, language) for language in languages_of(versions)]
    for language in languages_of(versions[-1:]):
        names += [paths.changelog(policy_id, language, "html"), paths.changelog(policy_id, language, "md"), paths.feed(policy_id, language)]
    return tuple(names)


def languages_of(versions: Sequence[PublishedVersion]) -> list[str]:
    """Every language any of these versions was published in."""
    return sorted({key.partition("/")[2] for version in versions for key in version.hashes})


def _files_digest(*folders: Path, suffix: str = "") -> str:
    digest = hashlib.sha256()
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.rglob(f"*{suffix}") if p.is_file()):
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def toolchain(repo: Repo) -> dict[str, str]:
    """What a rendering depends on besides the version itself: a rebuild is byte-identical only with the same."""
    def version_of(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return ""

    return {"addendum": __version__, "code": "sha256:" + _code_digest(), "weasyprint": version_of("weasyprint"),
            "fonttools": version_of("fonttools"), "templates": "sha256:" + _files_digest(builtin_dir(), repo.templates_dir)}


@lru_cache(maxsize=1)
def _code_digest() -> str:
    """The package's own code and data (word lists): a change to how a page or a redline is built changes what
    a rebuild gives."""
    package = Path(__file__).resolve().parents[1]
    return hashlib.sha256((_files_digest(package, suffix=".py") + _files_digest(package, suffix=".toml")).encode()).hexdigest()


def toolchain_id(chain: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(chain, sort_keys=True).encode()).hexdigest()[:16]


def plan_policy(repo: Repo, policy_id: str, chain_id: str) -> PolicyPlan:
    versions = tuple(published_versions(repo, policy_id))
    names = listing_names(policy_id, versions)
    ledger = ledger_path(repo.history_dir, policy_id)
    digest = hashlib.sha256(chain_id.encode() + b"\0" + "\0".join(names).encode() + b"\0")
    if ledger.is_file():
        digest.update(ledger.read_bytes())
    return PolicyPlan(policy_id, versions, tuple(plan_views(versions)), names, "sha256:" + digest.hexdigest())


def archived_policy_ids(repo: Repo) -> list[str]:
    """The repository's policies, and any other that has a ledger under history/."""
    return known_policy_ids(repo)


def require_policies(repo: Repo, policy_ids: Sequence[str] | None) -> list[str]:
    """The policies asked for (all when none), each known to the repository."""
    if not policy_ids:
        return known_policy_ids(repo)
    return [require_policy(repo, policy_id) for policy_id in policy_ids]

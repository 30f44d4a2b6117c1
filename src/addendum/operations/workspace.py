"""What the editor's workspace shows: each policy's versions, status matrix and check findings, and the draft."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from addendum.config import Repo
from addendum.errors import AddendumError, HistoryError
from addendum.errors import Problem as Finding
from addendum.history.repository import open_work_tree
from addendum.history.versions import LATEST, WORKTREE, known_policy_ids, published_versions
from addendum.ids import require_id
from addendum.operations.changes import PolicyDiff, classified_diff, policy_status
from addendum.operations.suggestions import version_log_with_suggestions
from addendum.policy.check import CheckResult, check
from addendum.policy.model import Policy, load_policy
from addendum.publish.log import VersionLog
from addendum.publish.status import PolicyStatus

PLACEHOLDER_RULES = ("undefined-placeholder", "pending-variable")
ARCHIVE_FILE_LIMIT = 512 * 1024 * 1024  # a zip built in memory: refuse an archive larger than this


@dataclass(frozen=True)
class PolicyCard:
    """One policy in the list: its id, title, latest version, and whether the working tree holds unpublished changes."""

    policy_id: str
    title: str
    latest: str | None
    errors: int
    warnings: int


@dataclass(frozen=True)
class PolicyOverview:
    """One policy's page: versions, status matrix (None when the working tree does not load) and check findings."""

    policy_id: str
    title: str
    log: VersionLog | None
    status: PolicyStatus | None
    check: CheckResult
    placeholders: frozenset[tuple[str, str]]  # (section id, column label) whose text holds a placeholder finding
    problem: str  # why the log or the status could not be shown, if so

    def cell(self, section_id: str, column: str, state: str | None) -> str | None:
        """The matrix cell: ok / stale / missing, or placeholders where the check found one in that text."""
        if state is None:
            return None
        if (section_id, column) in self.placeholders:
            return "placeholders"
        return "ok" if state == "up-to-date" else state


@dataclass(frozen=True)
class DraftView:
    """The draft page: the comparison asked for, its suggested class and reasons, and what can be chosen."""

    policy_id: str
    from_ref: str
    to_ref: str
    site_id: str
    language: str
    diff: PolicyDiff
    versions: tuple[str, ...]
    sites: tuple[str, ...]
    languages: tuple[str, ...]

    @property
    def from_choices(self) -> tuple[str, ...]:
        return (LATEST, *self.versions, WORKTREE) if self.versions else (WORKTREE,)

    @property
    def to_choices(self) -> tuple[str, ...]:
        return (WORKTREE, LATEST, *self.versions) if self.versions else (WORKTREE,)


def _title(repo: Repo, policy_id: str) -> str:
    try:
        policy = load_policy(repo.root, policy_id)
        return policy.title(policy.default_language)
    except AddendumError:
        return policy_id


def policy_cards(repo: Repo) -> list[PolicyCard]:
    """Every policy of the repository, for the workspace's first page."""
    cards = []
    for policy_id in known_policy_ids(repo):
        versions = published_versions(repo, policy_id)
        result = check(repo.root, policy_id, repo.settings) if (repo.policies_dir / policy_id).is_dir() else CheckResult(policy_id, ())
        cards.append(PolicyCard(policy_id, _title(repo, policy_id), versions[-1].id if versions else None,
                                len(result.errors), len(result.warnings)))
    return cards


def _column_of(finding: Finding, policy_id: str) -> str | None:
    """The status column a finding's file belongs to: `nl` for policies/P/nl.md, `site/nl` for sites/site/nl.md."""
    prefix = f"policies/{policy_id}/"
    if not finding.file.startswith(prefix) or not finding.file.endswith(".md"):
        return None
    parts = finding.file[len(prefix):-3].split("/")
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 3 and parts[0] == "sites":
        return f"{parts[1]}/{parts[2]}"
    return None


def policy_overview(repo: Repo, policy_id: str) -> PolicyOverview:
    """Versions with the suggested class next to the editor's, the status matrix and the check's findings."""
    require_id(policy_id, "policy")
    result = check(repo.root, policy_id, repo.settings)
    log: VersionLog | None = None
    status: PolicyStatus | None = None
    problems = []
    try:
        log = version_log_with_suggestions(repo, policy_id)
    except AddendumError as exc:
        problems.append(exc.format().removeprefix("error: "))
    try:
        status = policy_status(repo, policy_id)
    except AddendumError as exc:  # e.g. an undefined placeholder: the text cannot be resolved, the findings say where
        problems.append(exc.format().removeprefix("error: "))
    placeholders = {(f.section, column) for f in result.problems if f.section and f.rule in PLACEHOLDER_RULES
                    for column in [_column_of(f, policy_id)] if column is not None}
    if result.loaded:
        placeholders |= _pending_cells(load_policy(repo.root, policy_id))
    return PolicyOverview(policy_id, _title(repo, policy_id), log, status, result, frozenset(placeholders), "\n".join(problems))


def _pending_cells(policy: Policy) -> set[tuple[str, str]]:
    """(section id, column) of every text that uses a site variable some site lists as pending (`{{ site.KEY }}`):
    that site's readers see a placeholder there."""
    keys = {key for site in policy.sites.values() for key in site.pending}
    if not keys:
        return set()
    uses = re.compile(r"\{\{\s*site\.(?:" + "|".join(re.escape(k) for k in sorted(keys)) + r")\s*\}\}")
    cells = set()
    for language, document in policy.documents.items():
        cells |= {(section.id, language) for section in document.sections if uses.search(section.heading_line + section.body)}
    for site in policy.sites.values():
        for language, document in site.overrides.items():
            cells |= {(section.id, f"{site.id}/{language}") for section in document.sections
                      if uses.search(section.heading_line + section.body)}
    return cells


def draft_view(repo: Repo, policy_id: str, from_ref: str | None = None, to_ref: str | None = None,
               site_id: str | None = None, language: str | None = None) -> DraftView:
    """The working tree (or TO) against the last published version (or FROM), for one site and language."""
    versions = tuple(v.id for v in reversed(published_versions(repo, policy_id)))
    from_ref = from_ref or (LATEST if versions else WORKTREE)
    to_ref = to_ref or WORKTREE
    if not versions and from_ref == WORKTREE and to_ref == WORKTREE:
        raise HistoryError(f"{policy_id} has no published version to compare the working tree with",
                           "publish a first version; the draft then shows what changed since")
    current = load_policy(repo.root, policy_id)
    site_id = site_id or current.default_site
    language = language or current.default_language
    diff = classified_diff(repo, policy_id, from_ref, to_ref, site_id, language)
    return DraftView(policy_id, from_ref, to_ref, site_id, language, diff, versions, tuple(current.sites), current.languages)


def editor_identity(repo: Repo) -> str | None:
    """Who the workspace's redlines name as their preparer: git's identity here (None when git does not know one, and
    each redline then says how to set it). A server asks once, not three git processes per redline."""
    try:
        return open_work_tree(repo.root).identity()
    except HistoryError:
        return None


def archive_zip(repo: Repo, policy_id: str) -> bytes:
    """history/POLICY/ as a zip: the ledger, every version's source and archived files (links are left out)."""
    require_id(policy_id, "policy")
    folder = repo.history_dir / policy_id
    if not folder.is_dir():
        raise HistoryError(f"{policy_id} has nothing in history/ yet", f"publish a version, then run: addendum archive {policy_id}")
    buffer = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            total += path.stat().st_size
            if total > ARCHIVE_FILE_LIMIT:
                raise HistoryError(f"the archive of {policy_id} is larger than {ARCHIVE_FILE_LIMIT // (1024 * 1024)} MB",
                                   "download history/ with git or from the archive's host instead")
            bundle.write(path, Path(policy_id, path.relative_to(folder)).as_posix())
    return buffer.getvalue()

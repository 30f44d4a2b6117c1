"""Published versions, read side: a policy as it stood at a version, a date or a revision, checked against the ledger."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

from addendum.config import Repo
from addendum.errors import HistoryError, UsageError
from addendum.history.ledger import LEDGER_NAME, PublishedVersion, ledger_path, read_ledger
from addendum.history.repository import open_work_tree, require_revision
from addendum.ids import DATE_PATTERN, VERSION_PATTERN, parse_date, require_id
from addendum.paths import SLUG_PATTERN
from addendum.policy.model import Policy, load_policy, load_policy_files, read_policy_files, unknown_policy
from addendum.policy.resolve import resolve

SOURCE_FOLDER = "source"
WORKTREE = "worktree"
LATEST = "latest"
ChangeKind = Literal["added", "removed", "changed", "moved"]


class NothingInForceError(HistoryError):
    """`show` found no published version in force on the day asked about (exit 1, like a search that found nothing).
    Everywhere else, diff and redline included, having nothing in force is a plain HistoryError (exit 2)."""

    exit_code = 1


@dataclass(frozen=True)
class Snapshot:
    """A policy as it stood at some point: a published version, the version in force on a date, a commit, or now."""

    policy: Policy
    label: str
    version: PublishedVersion | None
    effective: date | None
    commit: str = ""  # the commit its text is from; "" for the working tree




# ---------------------------------------------------------------------------------------------------------------
# Which policies there are


def known_policy_ids(repo: Repo) -> list[str]:
    """The repository's policies: those in policies/, and any other that has a ledger under history/ (retired)."""
    ids = set(repo.policy_ids())
    if repo.history_dir.is_dir():
        ids |= {p.parent.name for p in repo.history_dir.glob(f"*/{LEDGER_NAME}")}
    return sorted(ids)


def require_policy(repo: Repo, policy_id: str) -> str:
    """`policy_id`, when the repository knows it (in policies/ or by its ledger); else the one error every command
    gives for an unknown policy, naming the known ones. Every read of a policy's history passes here first."""
    require_id(policy_id, "policy")
    if (repo.policies_dir / policy_id / "policy.toml").is_file() or ledger_path(repo.history_dir, policy_id).is_file():
        return policy_id
    raise unknown_policy(policy_id, known_policy_ids(repo))


# ---------------------------------------------------------------------------------------------------------------
# Reading published versions


def published_versions(repo: Repo, policy_id: str) -> list[PublishedVersion]:
    """Every published version of the policy, oldest first, from its ledger alone (no git needed)."""
    return read_ledger(repo.history_dir, require_policy(repo, policy_id))


def find_version(repo: Repo, policy_id: str, version_id: str) -> PublishedVersion:
    """A published version by its id (`privacy@2018-05-19`) or its date part (`2018-05-19.2`)."""
    require_policy(repo, policy_id)
    if SLUG_PATTERN.fullmatch(version_id):
        version_id = f"{policy_id}@{version_id}"
    match = VERSION_PATTERN.fullmatch(version_id)
    if match is None:
        raise UsageError(f"{version_id!r} is not a version id", "version ids look like privacy@2018-05-19 (or privacy@2018-05-19.2)")
    if match["policy"] != policy_id:
        raise UsageError(f"version {version_id} belongs to policy {match['policy']}, not {policy_id}")
    versions = published_versions(repo, policy_id)
    for version in versions:
        if version.id == version_id:
            return version
    known = ", ".join(v.id for v in versions[-5:])
    raise HistoryError(f"{policy_id} has no published version {version_id}",
                       f"its latest versions: {known}" if known else f"nothing of {policy_id} is published yet")


def in_force(repo: Repo, policy_id: str, day: date) -> tuple[PublishedVersion | None, PublishedVersion | None]:
    """(the version in force on `day`, the first version announced to take effect after it)."""
    current: PublishedVersion | None = None
    for version in published_versions(repo, policy_id):
        if version.effective > day:
            return current, version
        current = version
    return current, None


@dataclass(frozen=True)
class InForce:
    """When a published version is (or was) the one in force: from its effective date until the day before its
    successor takes effect. A version whose successor takes effect on the same date (a `.2`) was never in force."""

    version: PublishedVersion
    successor: PublishedVersion | None  # the next version in the ledger
    until: date | None  # its last day in force; None while nothing later is published, or when never in force

    @property
    def never_in_force(self) -> bool:
        return self.successor is not None and self.successor.effective <= self.version.effective


def in_force_periods(versions: Sequence[PublishedVersion]) -> list[InForce]:
    """Each version's time in force, versions oldest first (the ledger's order: effective dates never go back)."""
    periods = []
    for index, version in enumerate(versions):
        successor = versions[index + 1] if index + 1 < len(versions) else None
        until = successor.effective - timedelta(days=1) if successor and successor.effective > version.effective else None
        periods.append(InForce(version, successor, until))
    return periods


def replaced_version(versions: Sequence[PublishedVersion], version: PublishedVersion) -> PublishedVersion | None:
    """The version `version` replaces in force: the last earlier one that takes effect before it. For a `.2` that is
    the version in force before their shared date, not the `.1` it replaced before it ever took effect."""
    earlier = [v for v in versions[: versions.index(version)] if v.effective < version.effective]
    return earlier[-1] if earlier else None


def version_folder(repo: Repo, version: PublishedVersion) -> Path:
    return repo.history_dir / version.policy_id / version.slug


def is_source_file(name: str) -> bool:
    """Whether a path relative to a policy folder is one of the files that make the policy."""
    parts = name.split("/")
    if len(parts) == 1:
        return name == "policy.toml" or name.endswith(".md")
    return len(parts) == 3 and parts[0] == "sites" and parts[2].endswith(".md")


def working_files(repo: Repo, policy_id: str) -> dict[str, str]:
    """The source files of a policy in the working tree."""
    folder = repo.policies_dir / require_id(policy_id, "policy")
    if not (folder / "policy.toml").is_file():
        load_policy(repo.root, policy_id)  # raises the usual "no policy" error with the known ones
    return {name: text for name, text in read_policy_files(folder, repo.root).items() if is_source_file(name)}


def version_files(repo: Repo, version: PublishedVersion) -> tuple[dict[str, str], str]:
    """(the source files of a published version, where they were read) — from history/, or else its git commit."""
    folder = version_folder(repo, version) / SOURCE_FOLDER
    where = folder.relative_to(repo.root).as_posix()
    if folder.is_dir():
        return {n: t for n, t in read_policy_files(folder, repo.root).items() if is_source_file(n)}, where
    if version.commit:
        try:
            work_tree = open_work_tree(repo.root)
            files = work_tree.files_at(version.commit, f"policies/{version.policy_id}")
            return {n: b.decode("utf-8") for n, b in files.items() if is_source_file(n)}, f"{version.commit[:10]}:policies/{version.policy_id}"
        except (HistoryError, UnicodeDecodeError):
            pass
    raise HistoryError(f"the source of {version.id} is missing: {where}",
                       f"restore it from git (git checkout HEAD -- {where}); the ledger alone cannot rebuild the text")


def content_hashes(policy: Policy) -> dict[str, str]:
    """The content hash of the resolved text of every site × language."""
    return {f"{site}/{language}": resolve(policy, site, language).content_hash()
            for site in policy.sites for language in policy.languages}


# Policies already checked against a version's hashes, by id() (the entry holds the policy, so the id stays its own):
# load_policy_files returns the same Policy for the same files, and checking resolves every site × language.
_VERIFIED: dict[int, tuple[Policy, str, tuple[tuple[str, str], ...]]] = {}


def verified_policy(version: PublishedVersion, files: Mapping[str, str], where: str) -> Policy:
    policy = load_policy_files(version.policy_id, files, where)
    recorded_hashes = tuple(sorted(version.hashes.items()))
    known = _VERIFIED.get(id(policy))
    if known is not None and known[0] is policy and known[1:] == (version.id, recorded_hashes):
        return policy
    actual = content_hashes(policy)
    for key, recorded in sorted(version.hashes.items()):
        if actual.get(key) != recorded:
            raise HistoryError(f"{where} does not match the ledger for {version.id}: the {key} text hashes to "
                               f"{actual.get(key, 'nothing')}, the ledger records {recorded}",
                               f"the archived source was changed after publishing; restore it with: git checkout HEAD -- {where}")
    if len(_VERIFIED) >= 64:
        _VERIFIED.pop(next(iter(_VERIFIED)), None)
    _VERIFIED[id(policy)] = (policy, version.id, recorded_hashes)
    return policy


def source_texts(files: Mapping[str, bytes]) -> dict[str, str]:
    """The source files among committed blobs, as text."""
    return {n: c.decode("utf-8", "replace") for n, c in files.items() if is_source_file(n)}


def load_version(repo: Repo, version: PublishedVersion) -> Policy:
    """The policy as published in `version`, read from history/ and checked against the ledger's content hashes."""
    files, where = version_files(repo, version)
    return verified_policy(version, files, where)


# ---------------------------------------------------------------------------------------------------------------
# Snapshots


def snapshot(repo: Repo, policy_id: str, ref: str | None) -> Snapshot:
    """The policy at `ref`: a version id, a date (the version in force that day), `latest`, a git revision,
    or None / "worktree" for the working tree. An unknown policy is refused by the first read of it (require_policy),
    except at a git revision, where a policy since removed may still be found."""
    require_id(policy_id, "policy")
    if ref is None or ref == WORKTREE:
        return Snapshot(load_policy(repo.root, policy_id), "working tree", None, None)
    if VERSION_PATTERN.fullmatch(ref) or re.fullmatch(r"\d{4}-\d{2}-\d{2}\.\d+", ref):  # a version, maybe mistyped
        return version_snapshot(repo, find_version(repo, policy_id, ref))
    if DATE_PATTERN.fullmatch(ref) or re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", ref):
        return date_snapshot(repo, policy_id, parse_date(ref))
    if ref == LATEST:
        versions = published_versions(repo, policy_id)
        if not versions:
            raise HistoryError(f"{policy_id} has no published version yet", _publish_hint(policy_id))
        return version_snapshot(repo, versions[-1])
    return revision_snapshot(repo, policy_id, ref)


def version_snapshot(repo: Repo, version: PublishedVersion) -> Snapshot:
    return Snapshot(load_version(repo, version), version.id, version, version.effective, version.commit)


def date_snapshot(repo: Repo, policy_id: str, day: date) -> Snapshot:
    return version_snapshot(repo, require_in_force(repo, policy_id, day))


def require_in_force(repo: Repo, policy_id: str, day: date,
                     error: type[HistoryError] = HistoryError) -> PublishedVersion:
    """The version in force on `day`; `error` (a HistoryError by default) says why there is none."""
    current, upcoming = in_force(repo, policy_id, day)
    if current is not None:
        return current
    if upcoming is None:
        raise error(f"{policy_id} has no published version yet", _publish_hint(policy_id))
    raise error(f"no version of {policy_id} was in force on {day.isoformat()}: the first, "
                f"{upcoming.id}, took effect on {upcoming.effective.isoformat()}",
                f"ask for a date on or after {upcoming.effective.isoformat()}")


def revision_snapshot(repo: Repo, policy_id: str, revision: str) -> Snapshot:
    """The policy's files as committed at a git revision; its version when that text was published."""
    require_revision(revision)
    work_tree = open_work_tree(repo.root)
    commit = work_tree.resolve_commit(revision)
    raw = work_tree.files_at(commit, f"policies/{policy_id}")
    if "policy.toml" not in raw:
        require_policy(repo, policy_id)  # an id the repository never knew gets the usual answer, not this one
        raise HistoryError(f"policy {policy_id} does not exist at {revision} ({commit[:10]})",
                           f"see where it changed with: git log --oneline -- policies/{policy_id}")
    try:
        files = {name: content.decode("utf-8") for name, content in raw.items() if is_source_file(name)}
    except UnicodeDecodeError:
        raise HistoryError(f"a file of policies/{policy_id} at {revision} is not UTF-8 text") from None
    policy = load_policy_files(policy_id, files, f"{revision}:policies/{policy_id}")
    hashes = content_hashes(policy)
    version = next((v for v in reversed(published_versions(repo, policy_id)) if v.hashes == hashes), None)
    return Snapshot(policy, f"{revision} ({commit[:10]})", version, version.effective if version else None, commit)


def _publish_hint(policy_id: str) -> str:
    return f"publish one with: addendum publish {policy_id} --effective YYYY-MM-DD --summary TEXT --material"

"""Publishing: the committed policy recorded as a dated, immutable version (ledger entry, archived source, tag)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date
from typing import Any

from addendum import paths
from addendum.config import Repo
from addendum.errors import HistoryError, UsageError
from addendum.files import read_repository_file
from addendum.history.ledger import CHAIN_FIELD, PublishedVersion, append_entries, ledger_entries, ledger_path, next_version_id
from addendum.history.repository import NewTag, WorkTree, open_work_tree
from addendum.history.versions import SOURCE_FOLDER, content_hashes, load_version, published_versions, source_texts, working_files
from addendum.ids import LANGUAGE_PATTERN, require_id
from addendum.policy.check import require_valid
from addendum.policy.model import Policy, load_policy
from addendum.seal.timestamps import request_token, tsa_settings

CLASSIFICATIONS = ("material", "editorial")
DEFAULT_LANGUAGE_KEY = "default"  # in `summaries`: the policy's default language, whichever it is


def publish(repo: Repo, policy_id: str, *, effective: date, published: date | None = None, classification: str,
            summaries: Mapping[str, str], reason: str = "", extra: Mapping[str, Any] | None = None,
            today: date | None = None, dry_run: bool = False) -> PublishedVersion:
    """Record the committed policy as a published version: ledger entry, archived source and annotated tag,
    in one commit that contains nothing else. Refuses anything that would make the record wrong.

    `summaries` maps language codes (or DEFAULT_LANGUAGE_KEY, for whichever is the default) to what changed,
    for readers; the default language is required. `extra` is recorded in the ledger entry as given (a gate
    adds its suggested class, reasons, urgency…). `today` fixes the date for "published" and its checks;
    `dry_run` checks everything and returns the version without recording it.
    """
    require_id(policy_id, "policy")
    today = today or date.today()
    published = published or today
    if classification not in CLASSIFICATIONS:
        raise UsageError(f"classification {classification!r} is not one of {', '.join(CLASSIFICATIONS)}",
                         "say --material when readers must be told before it takes effect, else --editorial")
    if published > today:
        raise UsageError(f"the published date {published.isoformat()} is in the future",
                         "publish on the day the text is announced; --effective is the date it takes effect")
    work_tree = open_work_tree(repo.root)  # finishes first a publish that was killed after its commit
    head = work_tree.head()
    if head is None:
        raise HistoryError("the repository has no commits yet", f"commit the policy first: addendum commit {policy_id} -m …")
    _require_committed(repo, work_tree, head, policy_id)
    policy = load_policy(repo.root, policy_id)
    require_valid(policy)
    clean_summaries = _summaries(policy, summaries)

    versions = published_versions(repo, policy_id)
    previous = versions[-1] if versions else None
    hashes = content_hashes(policy)
    if previous is not None:
        if effective < previous.effective:
            raise UsageError(f"effective date {effective.isoformat()} is before that of the previous version, "
                             f"{previous.id} (effective {previous.effective.isoformat()})",
                             "versions take effect in the order they are published; choose a later date")
        if hashes == previous.hashes and dict(load_version(repo, previous).titles) == dict(policy.titles):
            raise UsageError(f"nothing a reader sees has changed since {previous.id}",
                             "edit and commit the policy first; `addendum log` lists unpublished changes")
    version_id = next_version_id(policy_id, effective, {v.id for v in versions})
    slug = version_id.split("@", 1)[1]
    folder = f"history/{policy_id}/{slug}"
    if (repo.root / folder).exists() or work_tree.files_at(head, folder):
        raise HistoryError(f"{folder} exists already, but the ledger has no version {version_id}",
                           "the history folder was changed by hand; restore it from git before publishing")
    if work_tree.tag_target(version_id) is not None:
        raise HistoryError(f"version id {version_id} exists already as a git tag, but not in the ledger",
                           f"a tag is only a mirror of the ledger: inspect it (git show {version_id}) and delete it if stray")

    version = PublishedVersion(
        id=version_id, policy_id=policy_id, effective=effective, published=published,
        commit=work_tree.last_commit_touching(f"policies/{policy_id}") or head, classification=classification,
        reason=reason.strip(), author=work_tree.identity(), summaries=clean_summaries, hashes=hashes, extra=dict(extra or {}),
    )
    ledger = ledger_path(repo.history_dir, policy_id)
    existing = read_repository_file(repo.root, ledger).decode("utf-8") if ledger.is_file() else None
    text = append_entries(existing, policy_id, [version])
    entry = ledger_entries(text)[0][-1]
    version = replace(version, extra={**version.extra, CHAIN_FIELD: entry.link})  # as the ledger records it
    files = {f"history/{policy_id}/{ledger.name}": text.encode("utf-8")}
    tsa = tsa_settings(repo) if not dry_run else None
    if tsa is not None:  # the token lands in the same commit as the entry it covers
        files[f"history/{paths.ledger_timestamp(policy_id, slug)}"] = request_token(tsa, entry.digest, f"the ledger entry of {version_id}")
    files.update({f"{folder}/{SOURCE_FOLDER}/{name}": text.encode("utf-8")
                  for name, text in working_files(repo, policy_id).items()})
    if not dry_run:
        work_tree.commit(_publish_message(version, policy), write=files, tags=[NewTag(version.id, _tag_message(version, policy))])
    return version


def _summaries(policy: Policy, summaries: Mapping[str, str]) -> dict[str, str]:
    clean = {}
    for key, text in summaries.items():
        language = policy.default_language if key == DEFAULT_LANGUAGE_KEY else key
        if not LANGUAGE_PATTERN.fullmatch(language) or language not in policy.languages:
            raise UsageError(f"a summary is given in {language!r}, which is not a language of {policy.id}",
                             f"its languages are: {', '.join(policy.languages)}")
        if text.strip():
            clean[language] = text.strip()
    if policy.default_language not in clean:
        raise UsageError(f"a summary in {policy.default_language} (the default language) is required",
                         'say in a sentence what changed for readers: --summary "…"')
    return {language: clean[language] for language in policy.languages if language in clean}


def publishing_commit(repo: Repo, policy_id: str) -> tuple[str, date] | None:
    """The commit a publication would record for the policy, and the day it was committed (None before any commit,
    or when git no longer has it)."""
    work_tree = open_work_tree(repo.root)
    commit = work_tree.last_commit_touching(f"policies/{policy_id}")
    day = work_tree.commit_date(commit) if commit else None
    return (commit, day) if commit and day else None


def commit_dates(repo: Repo, commits: list[str]) -> dict[str, date]:
    """The day each commit was made, for those git has (a shallow clone may not; a copy outside git has none)."""
    if not commits:
        return {}
    try:
        work_tree = open_work_tree(repo.root)
    except HistoryError:
        return {}
    return work_tree.commit_dates(commits)


def _require_committed(repo: Repo, work_tree: WorkTree, head: str, policy_id: str) -> None:
    committed = source_texts(work_tree.files_at(head, f"policies/{policy_id}"))
    working = working_files(repo, policy_id)
    dirty = [f"{name} ({'untracked' if name not in committed else 'deleted' if name not in working else 'modified'})"
             for name in sorted(set(committed) | set(working)) if committed.get(name) != working.get(name)]
    if dirty:
        raise HistoryError(f"policies/{policy_id} has uncommitted changes: {', '.join(dirty)}",
                           f'commit them first (addendum commit {policy_id} -m "…"), or undo them')
    ledger = f"history/{policy_id}/ledger.toml"
    on_disk = read_repository_file(repo.root, repo.root / ledger) if (repo.root / ledger).is_file() else None
    if on_disk != work_tree.file_at(head, ledger):
        raise HistoryError(f"{ledger} differs from the last commit",
                           f"the ledger is written only by publish; restore it with: git checkout HEAD -- {ledger}")


def _publish_message(version: PublishedVersion, policy: Policy) -> str:
    lines = [f"Publish {version.id}", "",
             f"Effective {version.effective.isoformat()}, published {version.published.isoformat()}, {version.classification}."]
    if version.reason:
        lines.append(f"Reason: {version.reason}")
    lines.append("")
    lines.extend(f"{language}: {text}" for language, text in version.summaries.items())
    lines += ["", f"Policy: {policy.id}", f"Version: {version.id}"]
    return "\n".join(lines) + "\n"


def _tag_message(version: PublishedVersion, policy: Policy) -> str:
    summary = version.summaries.get(policy.default_language, "")
    return f"{version.id}: effective {version.effective.isoformat()} ({version.classification})\n\n{summary}"


def sync_tags(repo: Repo, policy_id: str) -> list[tuple[str, str]]:
    """Recreate missing version tags from the ledger; (version id, created | present | differs | not in git)."""
    work_tree = open_work_tree(repo.root)
    if work_tree.is_shallow():
        raise HistoryError("this is a shallow clone: the commits the tags belong on are not here",
                           "fetch the full history first: git fetch --unshallow")
    report, create = [], []
    for version in published_versions(repo, policy_id):
        target = work_tree.first_commit_adding(f"history/{policy_id}/{version.slug}/{SOURCE_FOLDER}/policy.toml")
        existing = work_tree.tag_target(version.id)
        if target is None:
            report.append((version.id, "not in git"))
        elif existing is None:
            create.append((NewTag(version.id, _tag_message(version, load_version(repo, version))), target))
            report.append((version.id, "created"))
        else:
            report.append((version.id, "present" if existing == target else "differs"))
    work_tree.create_tags(create)
    return report

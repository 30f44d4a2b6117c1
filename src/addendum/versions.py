"""Published versions: a policy as it stood at a version, a date or a revision; committing, publishing and the log."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from babel.dates import format_date

from .check import require_valid
from .config import Repo
from .errors import HistoryError, UsageError
from .history import NewTag, NothingToCommit, WorkTree, open_work_tree, require_revision
from .ids import DATE_PATTERN, LANGUAGE_PATTERN, VERSION_PATTERN, parse_date, require_id
from .ledger import PublishedVersion, append_entries, last_changed, ledger_path, next_version_id, read_ledger
from .markup import PREAMBLE_ID
from .paths import SLUG_PATTERN
from .policy import Policy, Section, load_policy, load_policy_files, parse_document, read_policy_files
from .render import Format, render_policy
from .resolve import ResolvedPolicy, resolve
from .templates import long_date

SOURCE_FOLDER = "source"
WORKTREE = "worktree"
LATEST = "latest"
CLASSIFICATIONS = ("material", "editorial")
DEFAULT_LANGUAGE_KEY = "default"  # in `summaries`: the policy's default language, whichever it is
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


@dataclass(frozen=True)
class SourceChange:
    """A section (or policy.toml) that differs between two states of a policy's files."""

    file: str  # relative to the policy folder: en.md, sites/cavallo/en.md, policy.toml
    language: str
    site: str  # "" for the policy's own text
    section: str  # "" for a change to policy.toml
    ref: str  # §path.of.ids
    kind: ChangeKind

    def describe(self) -> str:
        where = f"{self.ref} ({self.language}{', site ' + self.site if self.site else ''})" if self.section else self.file
        return f"{self.kind:<8} {where}"

    def as_json(self) -> dict[str, str]:
        return {"file": self.file, "language": self.language, "site": self.site, "section": self.section,
                "ref": self.ref, "kind": self.kind}


@dataclass(frozen=True)
class CommitResult:
    commit: str
    message: str
    changes: tuple[SourceChange, ...]


MAX_LOGGED_REASONS = 8


@dataclass(frozen=True)
class VersionLog:
    """The published versions of a policy, newest first, and what has changed since the latest."""

    policy_id: str
    today: date
    versions: tuple[PublishedVersion, ...]
    in_force: PublishedVersion | None
    since: PublishedVersion | None
    unpublished: tuple[SourceChange, ...]
    default_language: str
    locales: Mapping[str, str]  # every language of the policy, in its order, to its Babel locale
    # version id → (suggested class, reasons), from the ledger or worked out again for versions that lack them
    suggestions: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)

    def lines(self, language: str | None = None) -> list[str]:
        """The log as terminal lines: dates and summaries in `language` (default: the policy's default language)."""
        language = language or self.default_language
        if language not in self.locales:
            raise UsageError(f"policy {self.policy_id} has no language {language!r}",
                             f"its languages are: {', '.join(self.locales)}")
        locale = self.locales[language]
        width = max((len(v.id) for v in self.versions), default=0)
        out = []
        for version in self.versions:
            out.append(f"{version.id:<{width}}  {self.status(version):<10}  effective {long_date(version.effective, locale)}"
                       f" · published {long_date(version.published, locale)} · {version.classification}")
            summary = version.summaries.get(language) or version.summaries.get(self.default_language, "")
            out.append(f"    {summary}")
            if version.reason:
                out.append(f"    reason: {version.reason}")
            suggested, reasons = self.suggestions.get(version.id, ("", ()))
            if suggested:
                out.append(f"    suggested: {suggested}")
                out.extend(f"      {reason}" for reason in reasons[:MAX_LOGGED_REASONS])
                if len(reasons) > MAX_LOGGED_REASONS:
                    out.append(f"      … and {len(reasons) - MAX_LOGGED_REASONS} more (addendum changelog {self.policy_id})")
        if self.since is None:
            sections = {c.section for c in self.unpublished if c.section}
            out.append(f"Not published yet ({len(sections)} sections). Publish with: addendum publish {self.policy_id} "
                       "--effective YYYY-MM-DD --summary TEXT --material")
        elif not self.unpublished:
            out += ["", f"No unpublished changes since {self.since.id}."]
        else:
            out += ["", f"Unpublished changes since {self.since.id}:"]
            out.extend(f"  {change.describe()}" for change in self.unpublished)
        return out

    def _suggestion_json(self, version: PublishedVersion) -> dict[str, Any]:
        suggested, reasons = self.suggestions.get(version.id, ("", ()))
        return {"suggested": suggested, "reasons": list(reasons)} if suggested else {}

    def status(self, version: PublishedVersion) -> str:
        if version == self.in_force:
            return "in force"
        return "upcoming" if version.effective > self.today else "superseded"

    def as_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy_id,
            "today": self.today.isoformat(),
            "versions": [{**version_json(v), "status": self.status(v), **self._suggestion_json(v)} for v in self.versions],
            "unpublished": {"since": self.since.id if self.since else None,
                            "changes": [c.as_json() for c in self.unpublished]},
        }


@dataclass(frozen=True)
class ShownText:
    """A policy's text for one site and language at some point, and what a reader should know about that point."""

    text: str
    snapshot: Snapshot
    notes: tuple[str, ...]


# ---------------------------------------------------------------------------------------------------------------
# Reading published versions


def published_versions(repo: Repo, policy_id: str) -> list[PublishedVersion]:
    """Every published version of the policy, oldest first, from its ledger alone (no git needed)."""
    return read_ledger(repo.history_dir, require_id(policy_id, "policy"))


def find_version(repo: Repo, policy_id: str, version_id: str) -> PublishedVersion:
    """A published version by its id (`privacy@2018-05-19`) or its date part (`2018-05-19.2`)."""
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
    return {name: text for name, text in read_policy_files(folder).items() if is_source_file(name)}


def version_files(repo: Repo, version: PublishedVersion) -> tuple[dict[str, str], str]:
    """(the source files of a published version, where they were read) — from history/, or else its git commit."""
    folder = version_folder(repo, version) / SOURCE_FOLDER
    where = folder.relative_to(repo.root).as_posix()
    if folder.is_dir():
        return {n: t for n, t in read_policy_files(folder).items() if is_source_file(n)}, where
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


def _verified(version: PublishedVersion, files: Mapping[str, str], where: str) -> Policy:
    policy = load_policy_files(version.policy_id, files, where)
    actual = content_hashes(policy)
    for key, recorded in sorted(version.hashes.items()):
        if actual.get(key) != recorded:
            raise HistoryError(f"{where} does not match the ledger for {version.id}: the {key} text hashes to "
                               f"{actual.get(key, 'nothing')}, the ledger records {recorded}",
                               f"the archived source was changed after publishing; restore it with: git checkout HEAD -- {where}")
    return policy


def load_version(repo: Repo, version: PublishedVersion) -> Policy:
    """The policy as published in `version`, read from history/ and checked against the ledger's content hashes."""
    files, where = version_files(repo, version)
    return _verified(version, files, where)


# ---------------------------------------------------------------------------------------------------------------
# Snapshots


def snapshot(repo: Repo, policy_id: str, ref: str | None) -> Snapshot:
    """The policy at `ref`: a version id, a date (the version in force that day), `latest`, a git revision,
    or None / "worktree" for the working tree."""
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
    return Snapshot(load_version(repo, version), version.id, version, version.effective)


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
        raise HistoryError(f"policy {policy_id} does not exist at {revision} ({commit[:10]})",
                           f"see where it changed with: git log --oneline -- policies/{policy_id}")
    try:
        files = {name: content.decode("utf-8") for name, content in raw.items() if is_source_file(name)}
    except UnicodeDecodeError:
        raise HistoryError(f"a file of policies/{policy_id} at {revision} is not UTF-8 text") from None
    policy = load_policy_files(policy_id, files, f"{revision}:policies/{policy_id}")
    hashes = content_hashes(policy)
    version = next((v for v in reversed(published_versions(repo, policy_id)) if v.hashes == hashes), None)
    return Snapshot(policy, f"{revision} ({commit[:10]})", version, version.effective if version else None)


def _publish_hint(policy_id: str) -> str:
    return f"publish one with: addendum publish {policy_id} --effective YYYY-MM-DD --summary TEXT --material"


# ---------------------------------------------------------------------------------------------------------------
# What changed between two states of the files


def _file_language(name: str) -> tuple[str, str]:
    """(language, site) of a Markdown file's path relative to the policy folder."""
    parts = name.removesuffix(".md").split("/")
    return (parts[-1], parts[1]) if len(parts) == 3 else (parts[0], "")


def source_changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[SourceChange]:
    """Sections added, removed, changed or moved, per Markdown file; policy.toml as a whole."""
    changes: list[SourceChange] = []
    for name in sorted(set(old) | set(new), key=lambda n: (n.count("/"), n != "policy.toml", n)):
        if old.get(name) == new.get(name):
            continue
        if not name.endswith(".md"):
            kind: ChangeKind = "added" if name not in old else "removed" if name not in new else "changed"
            changes.append(SourceChange(name, "", "", "", "", kind))
            continue
        language, site = _file_language(name)
        before = _sections(old.get(name), language, name)
        after = _sections(new.get(name), language, name)
        for section_id, section in after.items():
            previous = before.get(section_id)
            if previous is None:
                kind = "added"
            elif (previous.heading, previous.body) != (section.heading, section.body):
                kind = "changed"
            elif (previous.path, previous.level) != (section.path, section.level):
                kind = "moved"
            else:
                continue
            changes.append(SourceChange(name, language, site, section_id, section.ref, kind))
        changes.extend(SourceChange(name, language, site, section_id, section.ref, "removed")
                       for section_id, section in before.items() if section_id not in after)
    return changes


def _sections(text: str | None, language: str, name: str) -> dict[str, Section]:
    if text is None:
        return {}
    document, _ = parse_document(text, language, name)
    return {s.id: s for s in document.sections if s.id != PREAMBLE_ID or s.body.strip()}


# ---------------------------------------------------------------------------------------------------------------
# Committing a policy


def commit_policy(repo: Repo, policy_id: str, message: str, *, dry_run: bool = False) -> CommitResult:
    """Check the policy, then commit its folder alone, with trailers naming the policy and the changed sections."""
    policy = load_policy(repo.root, policy_id)
    require_valid(policy)
    if not message.strip():
        raise UsageError("the commit message is empty", 'say what changed and why: -m "Name the new payment provider"')
    work_tree = open_work_tree(repo.root)
    head = work_tree.head()
    committed = work_tree.files_at(head, f"policies/{policy_id}") if head else {}
    changes = source_changes(_decoded(committed), working_files(repo, policy_id))
    sections = list(dict.fromkeys(c.section for c in changes if c.section))
    trailers = [f"Policy: {policy_id}"] + ([f"Sections: {', '.join(sections)}"] if sections else [])
    full_message = message.strip() + "\n\n" + "\n".join(trailers) + "\n"
    if dry_run:
        return CommitResult("", full_message, tuple(changes))
    try:
        commit = work_tree.commit(full_message, add=[f"policies/{policy_id}"])
    except NothingToCommit:
        raise HistoryError(f"nothing to commit: policies/{policy_id} is as the last commit has it",
                           "edit the policy first; `addendum log` shows what is not yet published") from None
    return CommitResult(commit, full_message, tuple(changes))


def _decoded(files: Mapping[str, bytes]) -> dict[str, str]:
    return {n: c.decode("utf-8", "replace") for n, c in files.items() if is_source_file(n)}


# ---------------------------------------------------------------------------------------------------------------
# Publishing


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
    work_tree = open_work_tree(repo.root)
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
    existing = ledger.read_text(encoding="utf-8") if ledger.is_file() else None
    files = {f"history/{policy_id}/{ledger.name}": append_entries(existing, policy_id, [version]).encode("utf-8")}
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


def _require_committed(repo: Repo, work_tree: WorkTree, head: str, policy_id: str) -> None:
    committed = _decoded(work_tree.files_at(head, f"policies/{policy_id}"))
    working = working_files(repo, policy_id)
    dirty = [f"{name} ({'untracked' if name not in committed else 'deleted' if name not in working else 'modified'})"
             for name in sorted(set(committed) | set(working)) if committed.get(name) != working.get(name)]
    if dirty:
        raise HistoryError(f"policies/{policy_id} has uncommitted changes: {', '.join(dirty)}",
                           f'commit them first (addendum commit {policy_id} -m "…"), or undo them')
    ledger = f"history/{policy_id}/ledger.toml"
    on_disk = (repo.root / ledger).read_bytes() if (repo.root / ledger).is_file() else None
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


# ---------------------------------------------------------------------------------------------------------------
# The log and point-in-time text


def version_log(repo: Repo, policy_id: str, today: date | None = None) -> VersionLog:
    """Published versions newest first, the one in force today, and the changes not yet published."""
    today = today or date.today()
    versions = published_versions(repo, policy_id)
    latest = versions[-1] if versions else None
    working = working_files(repo, policy_id)
    before: dict[str, str] = {}
    if latest is not None:
        before, where = version_files(repo, latest)
        policy = _verified(latest, before, where)
    else:
        policy = load_policy(repo.root, policy_id)
    current, _ = in_force(repo, policy_id, today)
    return VersionLog(policy_id, today, tuple(reversed(versions)), current, latest, tuple(source_changes(before, working)),
                      policy.default_language, {language: policy.locale(language) for language in policy.languages})


def version_json(version: PublishedVersion) -> dict[str, Any]:
    return {"id": version.id, "effective": version.effective.isoformat(), "published": version.published.isoformat(),
            "classification": version.classification, "reason": version.reason, "author": version.author,
            "commit": version.commit, "summary": version.summaries, "hashes": version.hashes,
            "extra": _jsonable(version.extra)}


def _jsonable(value: Any) -> Any:
    """TOML values as JSON ones: dates and date-times as ISO 8601 text."""
    if isinstance(value, date):  # datetime is a date too
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _successor_note(repo: Repo, version: PublishedVersion, day: date, today: date) -> list[str]:
    """What followed `version`: announced but not yet in effect (on `day` or today), or in force since."""
    versions = published_versions(repo, version.policy_id)
    following = versions[versions.index(version) + 1:]
    if not following:
        return []
    successor = following[0]
    announced = successor.published <= day < successor.effective or successor.effective > today
    if announced:
        return [f"upcoming: {successor.id} effective {_english_date(successor.effective)} "
                f"(published {_english_date(successor.published)})"]
    return [f"superseded by {successor.id}, effective {_english_date(successor.effective)}"]


def _english_date(day: date) -> str:
    return format_date(day, "long", locale="en_GB")


def show_text(repo: Repo, policy_id: str, *, at: date | None = None, version: str | None = None, rev: str | None = None,
              site_id: str | None = None, language: str | None = None, fmt: Format = "text",
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
    text = render_snapshot_text(repo, resolved, fmt, until=shot.version.id if shot.version else None)
    return ShownText(text, shot, tuple(notes))


def render_snapshot_text(repo: Repo, resolved: ResolvedPolicy, fmt: Format, *, until: str | None = None,
                         last_changed_on: date | None = None) -> str:
    """The page for one site × language, dated from the ledger: the day this text took effect (looking no later
    than version `until`, when given; or `last_changed_on`) and, newest first, the versions in force before it."""
    when = last_changed_on or last_changed(repo.history_dir, resolved.policy_id, resolved.site, resolved.language,
                                           resolved.content_hash(), until)
    versions = published_versions(repo, resolved.policy_id)
    earlier = [v.effective for v in versions if when is None or v.effective < when]
    return render_policy(resolved, fmt, when, repo.templates_dir, earlier_versions=earlier[::-1])

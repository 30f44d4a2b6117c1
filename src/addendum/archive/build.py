"""The archive: every published version × site × language as HTML, PDF/A and JSON under history/, with a manifest.

Two kinds of files. A *record* (a version's page, PDF, JSON, redline) is written once and never rewritten: it is
the proof of what readers were shown. A *listing* (a policy's index pages, changelogs, feeds) is rebuilt when the
ledger gains a version. history/manifest.json lists both with their SHA-256. Rendering is deterministic: the
same version renders to the same bytes (fixed PDF identifier, fonts subset by Addendum itself, no date inside any
file), so anyone can rebuild a version and compare; when each file was built is recorded in the manifest.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import time
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from addendum import paths
from addendum.archive.manifest import (
    MANIFEST_SAVE_SECONDS,
    ArchiveReport,
    Finding,
    Manifest,
    PolicyPlan,
    View,
    build_time,
    listing_names,
    manifest_bytes,
    manifest_path,
    plan_policy,
    read_manifest,
    require_policies,
    sha256_file,
    toolchain,
    toolchain_id,
)
from addendum.archive.pages import forget_loaded_versions, render_listings, render_view
from addendum.archive.sealing import require_seal_settings, seal_archive
from addendum.archive.shards import MergeReport, Shard, manifest_digest, merge, partial_of
from addendum.config import Repo
from addendum.errors import AddendumError, ConfigError, HistoryError, PolicyFormatError, RenderError, UsageError
from addendum.files import write_atomic
from addendum.history.ledger import LEDGER_NAME, PublishedVersion
from addendum.history.versions import SOURCE_FOLDER
from addendum.processes import die_with_parent, folder_lock, stop_if_orphaned, worker_context
from addendum.progress import NoProgress, Progress

# ---------------------------------------------------------------------------------------------- work in workers


Action = Literal["write", "restore", "adopt"]


@dataclass(frozen=True)
class ViewTask:
    """Render some files of one view. write: missing; restore: missing but recorded (write only the recorded
    bytes); adopt: present but not recorded (record it if it is what a fresh rendering gives)."""

    repo: Repo
    out_root: Path
    view: View
    actions: tuple[tuple[str, Action, str], ...]  # (file name, action, recorded sha256 for restore)
    toolchain: str


@dataclass(frozen=True)
class ListingTask:
    repo: Repo
    policy_id: str
    versions: tuple[PublishedVersion, ...]


@dataclass(frozen=True)
class TaskResult:
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    written: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    listings: dict[str, bytes] = field(default_factory=dict)
    policy_id: str = ""
    error: tuple[str, str, str] | None = None  # (error class name, message, hint), re-raised in the parent


def _perform_view(task: ViewTask) -> TaskResult:
    view = task.view
    rendered = render_view(task.repo, view, [name for name, _, _ in task.actions])
    entries: dict[str, dict[str, Any]] = {}
    written: list[str] = []
    findings: list[Finding] = []
    for name, action, recorded in task.actions:
        path, data = view.path(name), rendered[name]
        target = task.out_root / path
        sha = hashlib.sha256(data).hexdigest()
        if action == "adopt":
            if target.read_bytes() == data:
                entries[path] = view.entry(name, data, task.toolchain)
            else:
                findings.append(Finding("unrecorded", path, "not in the manifest, and not what this version renders to; left alone "
                                                             "(delete it to let `addendum archive` write it)"))
        elif action == "restore" and sha != recorded:
            findings.append(Finding("missing", path, "recorded in the manifest but missing, and a fresh rendering differs from the "
                                                     "recorded bytes; restore the file from git"))
        else:
            stop_if_orphaned()  # a worker whose run was killed writes nothing more: a new run may be under way
            write_atomic(target, data)
            written.append(path)
            if action == "write":
                entries[path] = view.entry(name, data, task.toolchain, build_time())
    return TaskResult(entries=entries, written=tuple(written), findings=tuple(findings))


def _perform(task: ViewTask | ListingTask) -> TaskResult:
    """Run one task, in a worker process or in this one. Errors come back as data: they must cross processes."""
    stop_if_orphaned()
    try:
        if isinstance(task, ListingTask):
            return TaskResult(listings=render_listings(task.repo, task.policy_id, task.versions), policy_id=task.policy_id)
        return _perform_view(task)
    except PolicyFormatError as exc:
        return TaskResult(error=("HistoryError", f"the archived sources of a published version do not load:\n{exc.format()}",
                                 "restore the version's sources under history/ from git"))
    except AddendumError as exc:
        return TaskResult(error=(type(exc).__name__, exc.message, exc.hint))


def _raise(error: tuple[str, str, str]) -> None:
    kinds: dict[str, type[AddendumError]] = {cls.__name__: cls for cls in (HistoryError, RenderError, UsageError, ConfigError)}
    raise kinds.get(error[0], RenderError)(error[1], error[2])


def default_jobs(repo: Repo) -> int:
    """archive.jobs from addendum.toml, or one worker per core this process may use."""
    configured = int(repo.setting("archive.jobs") or 0)
    if configured > 0:
        return configured
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _results(tasks: Sequence[ViewTask | ListingTask], jobs: int) -> Generator[TaskResult, None, None]:
    if jobs <= 1 or len(tasks) <= 1:
        yield from map(_perform, tasks)
        return
    # Each worker dies with this process, even when it is killed outright (SIGKILL leaves it no time to stop them).
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=worker_context(),
                             initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        futures: list[Future[TaskResult]] = [pool.submit(_perform, task) for task in tasks]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


# ---------------------------------------------------------------------------------------------- the run


def _view_tasks(repo: Repo, plan: PolicyPlan, out_root: Path, manifest: Manifest, chain_id: str,
                findings: list[Finding], shard: Shard | None) -> tuple[list[ViewTask], int]:
    """What must be rendered for a policy's views (a shard's share of them); what is archived already is left alone,
    and only re-hashed."""
    tasks: list[ViewTask] = []
    kept = 0
    for view in plan.views:
        if shard is not None and not shard.owns(view.folder):
            continue
        actions: list[tuple[str, Action, str]] = []
        for name in view.names:
            path = view.path(name)
            recorded = manifest.files.get(path)
            target = out_root / path
            if not target.exists():
                actions.append((name, "restore", recorded["sha256"]) if recorded else (name, "write", ""))
            elif recorded is None:
                actions.append((name, "adopt", ""))
            else:
                kept += 1
                if sha256_file(target) != recorded.get("sha256"):
                    findings.append(Finding("changed", path, "not as the manifest records it; left alone (see `addendum verify`)"))
        if actions:
            tasks.append(ViewTask(repo, out_root, view, tuple(actions), chain_id))
    return tasks, kept


def _listings_current(plan: PolicyPlan, out_root: Path, manifest: Manifest) -> bool:
    if manifest.listings.get(plan.policy_id) != plan.listing_key:
        return False
    return all((out_root / name).is_file() and name in manifest.files for name in plan.listing_names)


def _apply_listings(result: TaskResult, out_root: Path, manifest: Manifest, chain_id: str, findings: list[Finding],
                    plan: PolicyPlan, dry_run: bool) -> list[str]:
    """Write the listings that changed; a listing that is not as the manifest recorded it is reported, not overwritten."""
    written: list[str] = []
    blocked = False
    for path, data in sorted(result.listings.items()):
        target = out_root / path
        recorded = manifest.files.get(path)
        entry = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "kind": "listing", "policy": plan.policy_id,
                 "toolchain": chain_id}
        if target.is_file():
            on_disk = sha256_file(target)
            if on_disk == entry["sha256"]:
                if recorded is not None and recorded.get("built"):
                    entry["built"] = recorded["built"]
                manifest.files[path] = entry
                continue
            if recorded is None or on_disk != recorded["sha256"]:
                blocked = True
                findings.append(Finding("changed" if recorded else "unrecorded", path,
                                        "not as the manifest records it; left alone (restore it from git, or delete it to let "
                                        "`addendum archive` rebuild it)"))
                continue
        entry["built"] = build_time()
        if not dry_run:
            write_atomic(target, data)
            manifest.files[path] = entry
        written.append(path)
    if not blocked:
        manifest.listings[plan.policy_id] = plan.listing_key
    return written


def build(repo: Repo, policy_ids: Sequence[str] | None, out_root: Path, *, jobs: int | None = None,
          progress: Progress | None = None, dry_run: bool = False, shard: Shard | None = None,
          seal: Callable[[ArchiveReport, bytes | None], ArchiveReport] | None = None) -> ArchiveReport:
    """Archive every published version not archived yet into `out_root` (history/ or a folder to compare with).

    One run at a time: the run holds a lock on `out_root` (its workers too, until the last has ended), so a run
    started while a killed one's workers still end waits for them instead of writing beside them. A `shard` builds
    only its share, and records it in its partial manifest instead of manifest.json (see archive/shards.py).
    `seal` runs under the same lock, given the report and the manifest's bytes before the run: a second
    run cannot change the manifest between its build and its signature."""
    if dry_run:
        return _build(repo, policy_ids, out_root, jobs=jobs, progress=progress, dry_run=True, shard=shard)
    with folder_lock(out_root, "`addendum archive`"):
        remove_unfinished_writes(out_root)
        before = manifest_bytes(out_root)
        report = _build(repo, policy_ids, out_root, jobs=jobs, progress=progress, dry_run=False, shard=shard)
        return seal(report, before) if seal is not None else report


# What write_atomic leaves behind when a process is killed between creating its temporary file and renaming it.
_UNFINISHED = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def remove_unfinished_writes(out_root: Path) -> None:
    """Delete the temporary files of archive writes that a killed run left half done (under the run's lock, so no
    live writer owns them). The ledger and each version's sources are publish's, and are left alone."""
    for folder, subfolders, files in os.walk(out_root):
        subfolders[:] = [name for name in subfolders if name != SOURCE_FOLDER]
        for name in files:
            if _UNFINISHED.fullmatch(name) and not name.startswith(f".{LEDGER_NAME}."):
                (Path(folder) / name).unlink(missing_ok=True)


def _build(repo: Repo, policy_ids: Sequence[str] | None, out_root: Path, *, jobs: int | None,
           progress: Progress | None, dry_run: bool, shard: Shard | None) -> ArchiveReport:
    started = time.perf_counter()
    forget_loaded_versions()
    ids = require_policies(repo, policy_ids)
    base_digest = manifest_digest(out_root)
    manifest = read_manifest(out_root) or Manifest()
    base = copy.deepcopy(manifest)
    chain = toolchain(repo)
    chain_id = toolchain_id(chain)
    plans = [plan_policy(repo, policy_id, chain_id) for policy_id in ids]
    findings: list[Finding] = []
    tasks: list[ViewTask | ListingTask] = []
    kept = 0
    for plan in plans:
        listings_owned = shard is None or shard.owns(paths.policy_index(plan.policy_id))
        if plan.versions and listings_owned and not _listings_current(plan, out_root, manifest):
            tasks.append(ListingTask(repo, plan.policy_id, plan.versions))
        view_tasks, plan_kept = _view_tasks(repo, plan, out_root, manifest, chain_id, findings, shard)
        tasks.extend(view_tasks)
        kept += plan_kept
    workers = max(1, jobs or default_jobs(repo))
    if dry_run:
        would = [task.view.path(name) for task in tasks if isinstance(task, ViewTask) for name, action, _ in task.actions
                 if action != "adopt"]
        would += [name for task in tasks if isinstance(task, ListingTask) for name in listing_names(task.policy_id, task.versions)]
        return ArchiveReport(tuple(plans), tuple(would), kept, tuple(findings), workers, time.perf_counter() - started, dry_run=True)
    written: list[str] = []
    by_policy = {plan.policy_id: plan for plan in plans}
    if tasks:
        manifest.toolchains[chain_id] = chain

    def save() -> None:
        if shard is None:
            _save(out_root, manifest)
        else:  # a shard's run always leaves its partial manifest, empty when its share was archived already
            write_atomic(out_root / shard.file_name, partial_of(shard, base_digest, base, policy_ids or (), manifest, written).to_bytes())

    saved = time.monotonic()
    progress = progress or NoProgress()
    progress.start("archive", len(tasks))
    results = _results(tasks, workers)
    try:
        for result in results:
            if result.error:
                _raise(result.error)
            manifest.files.update(result.entries)
            written.extend(result.written)
            findings.extend(result.findings)
            if result.policy_id:
                written.extend(_apply_listings(result, out_root, manifest, chain_id, findings, by_policy[result.policy_id], dry_run))
            progress.advance()
            if time.monotonic() - saved > MANIFEST_SAVE_SECONDS:
                save()
                saved = time.monotonic()
    finally:
        results.close()  # ends the pool and its workers now, not whenever the generator is collected
        progress.finish()
        if tasks or shard is not None:
            save()
    return ArchiveReport(tuple(plans), tuple(sorted(written)), kept, tuple(findings), workers, time.perf_counter() - started)


def _save(out_root: Path, manifest: Manifest) -> None:
    data = manifest.to_bytes()
    path = manifest_path(out_root)
    if not path.is_file() or path.read_bytes() != data:
        write_atomic(path, data)


def archive(repo: Repo, policy_ids: Sequence[str] | None = None, *, jobs: int | None = None,
            progress: Progress | None = None, dry_run: bool = False, shard: Shard | None = None) -> ArchiveReport:
    """`addendum archive`: archive what is missing under the repository's history/, in parallel; never rewrite a record;
    then sign and timestamp the manifest (and timestamp the ledger entries) as configured. A shard writes a partial
    manifest only: the merge that joins the shares seals the whole."""
    if not dry_run:
        require_seal_settings(repo)  # a key git would commit, or a TSA without CA certificates: refused before any work

    def seal(report: ArchiveReport, before: bytes | None) -> ArchiveReport:
        return replace(report, sealed=seal_archive(repo, [plan.policy_id for plan in report.policies], before))

    return build(repo, policy_ids, repo.history_dir, jobs=jobs, progress=progress, dry_run=dry_run, shard=shard,
                 seal=None if shard is not None else seal)


def merge_shards(repo: Repo, partials: Sequence[Path]) -> tuple[MergeReport, tuple[str, ...]]:
    """`addendum archive merge`: join the shards' partial manifests, then sign and timestamp the whole as `archive`
    does (a shard seals nothing: only the merged manifest is the archive's)."""
    require_seal_settings(repo)
    ids = require_policies(repo, None)
    sealed: tuple[str, ...] = ()

    def seal(before: bytes | None) -> None:  # under merge's lock, as `archive` seals under its own
        nonlocal sealed
        sealed = seal_archive(repo, ids, before)

    return merge(repo.history_dir, partials, seal=seal), sealed

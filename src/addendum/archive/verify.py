"""Checking the archive: every file against the manifest, every version's text against the ledger, and a rebuild."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from addendum import paths
from addendum.archive.build import build
from addendum.archive.manifest import (
    Finding,
    Manifest,
    PolicyPlan,
    View,
    archived_policy_ids,
    plan_policy,
    read_manifest,
    require_policies,
    sha256_file,
    toolchain,
    toolchain_id,
)
from addendum.archive.pages import archived_text_hash, forget_loaded_versions, resolved_view
from addendum.archive.sealing import TOKEN_KIND, check_seals
from addendum.config import Repo
from addendum.errors import AddendumError, HistoryError
from addendum.history.ledger import LEDGER_NAME, ledger_path
from addendum.history.repository import WorkTree, open_work_tree
from addendum.history.versions import SOURCE_FOLDER, content_hashes, is_source_file
from addendum.policy.model import load_policy_files
from addendum.progress import Progress


@dataclass(frozen=True)
class VerifyReport:
    policies: tuple[str, ...]
    files: int  # archived files hashed against the manifest
    views: int  # version × site × language texts checked against the ledger
    findings: tuple[Finding, ...]
    rebuilt: int = 0  # files rendered again and compared byte for byte
    notes: tuple[str, ...] = ()  # the evidence that holds, and what is not there: chain, signature, timestamps
    signature: str = "none"  # the manifest's SSH signature: "valid: signed by …", "invalid: …" or "none"
    timestamp: str = "none"  # the manifest's RFC 3161 token, likewise

    @property
    def intact(self) -> bool:
        return not self.findings


def _check_files(history: Path, recorded: dict[str, dict[str, Any]]) -> Iterator[Finding]:
    for path, entry in sorted(recorded.items()):
        target = history / path
        if not target.is_file():
            yield Finding("missing", path, "in the manifest but not on disk; restore it from git")
            continue
        actual = sha256_file(target)
        if actual != entry.get("sha256"):
            yield Finding("changed", path, f"SHA-256 {actual[:16]}…, the manifest records {str(entry.get('sha256'))[:16]}…")


def _check_coverage(history: Path, plan: PolicyPlan, recorded: dict[str, dict[str, Any]]) -> Iterator[Finding]:
    """Published versions the archive lacks, and archived versions the ledger no longer lists."""
    for view in plan.views:
        absent = [name for name in view.names if view.path(name) not in recorded and not (history / view.path(name)).exists()]
        if absent:
            yield Finding("not-archived", view.folder, f"{view.version.id} is published but {', '.join(absent)} not archived; "
                                                       "run `addendum archive`")
    for name in plan.listing_names:
        if name not in recorded and not (history / name).exists():
            yield Finding("not-archived", name, "not archived; run `addendum archive`")
    published = {version.id for version in plan.versions}
    for version_id in sorted({str(e["version"]) for e in recorded.values() if "version" in e} - published):
        yield Finding("ledger", version_id, "archived, but the ledger no longer lists this version; restore the ledger from git")


def _check_unrecorded(history: Path, policy_id: str, manifest: Manifest) -> Iterator[Finding]:
    folder = history / policy_id
    if not folder.is_dir():
        return
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        parts = path.relative_to(folder).parts
        # Besides the archive: the ledger, each version's sources (both written by `publish`) and the timestamp tokens.
        if parts[0] in (LEDGER_NAME, paths.TIMESTAMPS) or (len(parts) > 1 and parts[1] == SOURCE_FOLDER):
            continue
        relative = path.relative_to(history).as_posix()
        if relative not in manifest.files:
            yield Finding("unrecorded", relative, "not in the manifest")


def _check_texts(repo: Repo, plan: PolicyPlan, recorded: dict[str, dict[str, Any]]) -> Iterator[Finding]:
    """Each view's archived JSON and its version's sources hash to the ledger's content hash; so did each file when archived."""
    unloadable: set[str] = set()
    for view in plan.views:
        ledger_hash = view.version.hashes[view.key]
        recorded_hashes = {recorded[view.path(n)].get("content_hash") for n in view.names if view.path(n) in recorded}
        if recorded_hashes - {ledger_hash}:
            yield Finding("ledger", view.folder, f"archived for content hash {', '.join(sorted(map(str, recorded_hashes - {ledger_hash})))}; "
                                                 f"the ledger records {ledger_hash} for {view.version.id} {view.key}")
        yield from _check_json(repo.history_dir, view, ledger_hash)
        if view.version.id in unloadable:
            continue
        try:
            resolved_view(repo, view)
        except AddendumError as exc:  # sources changed (HistoryError) or no longer even load (PolicyFormatError)
            unloadable.add(view.version.id)
            yield Finding("text", view.version.id, exc.format().removeprefix("error: ").splitlines()[0])


def _check_json(history: Path, view: View, ledger_hash: str) -> Iterator[Finding]:
    path = history / view.path(paths.VERSION_JSON)
    if not path.is_file():
        return
    try:
        archived = archived_text_hash(json.loads(path.read_bytes()))
    except (ValueError, KeyError, TypeError) as exc:
        yield Finding("text", view.path(paths.VERSION_JSON), f"not an archived version's JSON ({exc})")
        return
    if archived != ledger_hash:
        yield Finding("text", view.path(paths.VERSION_JSON), f"its sections hash to {archived}; the ledger records {ledger_hash}")


def _work_tree(repo: Repo) -> WorkTree | None:
    """The git work tree, when the repository is one with commits (an exported copy of history/ is not)."""
    try:
        work_tree = open_work_tree(repo.root)
        return work_tree if work_tree.head() else None
    except HistoryError:
        return None


def _check_git(repo: Repo, work_tree: WorkTree, plan: PolicyPlan) -> Iterator[Finding]:
    """The ledger is as committed, and the text committed at each version's commit hashes as the ledger says."""
    ledger = ledger_path(repo.history_dir, plan.policy_id)
    relative = ledger.relative_to(repo.root).as_posix()
    committed = work_tree.file_at(work_tree.head() or "HEAD", relative)
    if committed is not None and ledger.is_file() and ledger.read_bytes() != committed:
        yield Finding("ledger", ledger.relative_to(repo.history_dir).as_posix(),
                      f"differs from the last commit; only `addendum publish` writes it: restore it with git checkout HEAD -- {relative}")
    for version in plan.versions:
        if not version.commit:
            continue
        try:
            files = work_tree.files_at(version.commit, f"policies/{plan.policy_id}")
            policy = load_policy_files(plan.policy_id, {n: b.decode("utf-8") for n, b in files.items() if is_source_file(n)},
                                       f"{version.commit[:10]}:policies/{plan.policy_id}")
        except (AddendumError, UnicodeDecodeError):
            continue  # a shallow clone lacks the commit: the archived sources, checked above, are what there is
        actual = content_hashes(policy)
        for key, recorded in sorted(version.hashes.items()):
            if actual.get(key) != recorded:
                yield Finding("text", version.id, f"the text committed at {version.commit[:10]} hashes to {actual.get(key, 'nothing')} "
                                                  f"for {key}; the ledger records {recorded}")


def _toolchain_note(manifest: Manifest, entry: dict[str, Any], current: dict[str, str]) -> str:
    then = manifest.toolchains.get(str(entry.get("toolchain")), {})
    changed = [f"{key} changed" if str(now).startswith("sha256:") else f"{key} {then.get(key) or '?'} then, {now} now"
               for key, now in sorted(current.items()) if then.get(key) != now]
    return f" (archived with another toolchain: {'; '.join(changed)})" if changed else ""


_PDF_OBJECT = re.compile(rb"(?m)^(\d+) (\d+) obj\b")


def _pdf_objects(data: bytes) -> dict[str, bytes]:
    starts = list(_PDF_OBJECT.finditer(data))
    return {f"{m[1].decode()} {m[2].decode()}": data[m.start():starts[i + 1].start() if i + 1 < len(starts) else len(data)]
            for i, m in enumerate(starts)}


def first_difference(archived: bytes, fresh: bytes) -> str:
    """Where two renderings of a file part: for PDFs the first object that differs, and what kind it is (a font,
    the metadata…), so that a difference can be traced to its cause; else the first differing byte."""
    if archived.startswith(b"%PDF") and fresh.startswith(b"%PDF"):
        old, new = _pdf_objects(archived), _pdf_objects(fresh)
        for number in sorted(set(old) | set(new), key=lambda key: tuple(map(int, key.split()))):
            if old.get(number) != new.get(number):
                kind = re.search(rb"/(?:Type|Subtype)\s*/(\w+)", old.get(number) or new.get(number) or b"")
                what = f" ({kind[1].decode()})" if kind else ""
                return f"; the first differing PDF object is {number} obj{what}"
        return "; every PDF object is the same, the cross-reference table or trailer differs"
    at = next((i for i, (a, b) in enumerate(zip(archived, fresh, strict=False)) if a != b), min(len(archived), len(fresh)))
    return f"; the first difference is at byte {at}"


def _rebuild(repo: Repo, ids: Sequence[str], manifest: Manifest, jobs: int | None, progress: Progress | None) -> tuple[list[Finding], int]:
    """Render every selected policy again into a temporary folder and compare each archived file byte for byte."""
    findings: list[Finding] = []
    compared = 0
    current = toolchain(repo)
    with tempfile.TemporaryDirectory(prefix="addendum-rebuild-") as folder:
        fresh_root = Path(folder)
        build(repo, ids, fresh_root, jobs=jobs, progress=progress)
        for path, entry in sorted(manifest.files.items()):
            archived = repo.history_dir / path
            if entry.get("policy") not in ids or not archived.is_file() or entry.get("kind") == TOKEN_KIND:
                continue
            fresh = fresh_root / path
            compared += 1
            if not fresh.is_file():
                findings.append(Finding("rebuild", path, "a rebuild does not produce this file"))
            elif (fresh_bytes := fresh.read_bytes()) != (archived_bytes := archived.read_bytes()):
                findings.append(Finding("rebuild", path, "differs from a fresh rendering of the same version"
                                                         + first_difference(archived_bytes, fresh_bytes)
                                                         + _toolchain_note(manifest, entry, current)))
    return findings, compared


def verify_archive(repo: Repo, policy_ids: Sequence[str] | None = None, *, rebuild: bool = False, jobs: int | None = None,
                   progress: Progress | None = None) -> VerifyReport:
    """`addendum verify`: re-hash every archived file, check every version's text; with `rebuild`, render again and compare."""
    manifest = read_manifest(repo.history_dir)
    if manifest is None:
        raise HistoryError(f"{repo.history_dir / 'manifest.json'} does not exist: there is no archive to verify",
                           "build it with `addendum archive`")
    forget_loaded_versions()
    ids = require_policies(repo, policy_ids) if policy_ids else \
        sorted(set(archived_policy_ids(repo)) | {str(e.get("policy")) for e in manifest.files.values()})
    chain_id = toolchain_id(toolchain(repo))
    findings: list[Finding] = []
    files = views = 0
    work_tree = _work_tree(repo)
    broken: set[str] = set()
    for policy_id in ids:
        try:
            plan = plan_policy(repo, policy_id, chain_id)
        except HistoryError as exc:  # a ledger that no longer reads is a finding like any other change to it
            findings.append(Finding("ledger", ledger_path(repo.history_dir, policy_id).relative_to(repo.history_dir).as_posix(),
                                    exc.message.split(": ", 1)[-1]))
            broken.add(policy_id)
            continue
        recorded = {path: entry for path, entry in manifest.files.items() if entry.get("policy") == policy_id}
        files += len(recorded)
        views += len(plan.views)
        findings += _check_files(repo.history_dir, recorded)
        findings += _check_coverage(repo.history_dir, plan, recorded)
        findings += _check_unrecorded(repo.history_dir, policy_id, manifest)
        findings += _check_texts(repo, plan, recorded)
        if work_tree is not None:
            findings += _check_git(repo, work_tree, plan)
    seals = check_seals(repo, [policy_id for policy_id in ids if policy_id not in broken])
    findings += seals.findings
    rebuilt = 0
    if rebuild:
        rebuild_findings, rebuilt = _rebuild(repo, ids, manifest, jobs, progress)
        findings += rebuild_findings
    return VerifyReport(tuple(ids), files, views, tuple(findings), rebuilt, seals.notes, seals.signature, seals.timestamp)

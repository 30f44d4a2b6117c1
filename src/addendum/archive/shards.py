"""An archive built on many machines: each shard renders its share of the missing files, `merge` joins their manifests.

A shard owns a version × site × language folder by a hash of the folder's path (so a version's page, PDF, JSON and
redline are rendered together, from one load of its sources, and shards balance), and a policy's listings by a hash
of the path of its index page. It writes its files into history/ as a one-machine run would, and, instead of
history/manifest.json, a partial manifest history/manifest-K-of-N.json of what it wrote. Every shard starts from the
same commit; the partial records the manifest it started from, and `merge` refuses partials of another start.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from addendum.archive.manifest import Manifest, manifest_bytes, manifest_path, read_manifest, sha256_file
from addendum.errors import HistoryError, UsageError
from addendum.files import write_atomic
from addendum.processes import folder_lock

PARTIAL_FORMAT = "addendum-archive-partial/1"
SHARD_PATTERN = re.compile(r"(\d{1,6})/(\d{1,6})")
SHARD_HINT = "give --shard K/N with 1 ≤ K ≤ N: this machine's share K of N shards, e.g. --shard 1/3"


@dataclass(frozen=True)
class Shard:
    """Share `number` of `count` of the archive's missing files."""

    number: int
    count: int

    @property
    def label(self) -> str:
        return f"{self.number}/{self.count}"

    @property
    def file_name(self) -> str:
        return f"manifest-{self.number}-of-{self.count}.json"

    def owns(self, path: str) -> bool:
        """Whether this shard renders the files under `path` (a version's folder, or a policy's index page)."""
        digest = hashlib.sha256(path.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.number - 1


def parse_shard(text: str) -> Shard:
    """`K/N` as a Shard; anything else is the user's error, with what to give instead."""
    match = SHARD_PATTERN.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"--shard {text!r} is not K/N", SHARD_HINT)
    number, count = int(match[1]), int(match[2])
    if count < 1 or not 1 <= number <= count:
        raise UsageError(f"--shard {text}: K must be between 1 and N (N ≥ 1)", SHARD_HINT)
    return Shard(number, count)


def manifest_digest(history_dir: Path) -> str:
    """The SHA-256 of history/manifest.json as it is, "" when there is none: what a shard started from."""
    path = manifest_path(history_dir)
    return sha256_file(path) if path.is_file() else ""


@dataclass
class Partial:
    """One shard's partial manifest: the files it wrote or recorded, the listings it rebuilt, their toolchains."""

    shard: Shard
    base: str  # manifest_digest() of the history/ the shard started from
    policies: tuple[str, ...]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    listings: dict[str, str] = field(default_factory=dict)
    toolchains: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        used = {str(entry.get("toolchain")) for entry in self.files.values()}
        document = {"format": PARTIAL_FORMAT, "shard": [self.shard.number, self.shard.count], "base": self.base,
                    "policies": list(self.policies), "files": self.files, "listings": self.listings,
                    "toolchains": {key: value for key, value in self.toolchains.items() if key in used}}
        return (json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def partial_of(shard: Shard, base_digest: str, base: Manifest, policies: Sequence[str], manifest: Manifest,
               written: Sequence[str]) -> Partial:
    """What a shard's run added to the manifest it started from (`base`), as its partial manifest."""
    rewritten = set(written)
    files = {path: entry for path, entry in manifest.files.items() if path in rewritten or base.files.get(path) != entry}
    listings = {key: value for key, value in manifest.listings.items() if base.listings.get(key) != value}
    return Partial(shard, base_digest, tuple(policies), files, listings, dict(manifest.toolchains))


def read_partial(path: Path) -> Partial:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not a partial manifest ({exc})", "pass the manifest-K-of-N.json each shard wrote") from None
    shard = data.get("shard") if isinstance(data, dict) else None
    if (not isinstance(data, dict) or data.get("format") != PARTIAL_FORMAT or not isinstance(data.get("files"), dict)
            or not isinstance(shard, list) or len(shard) != 2 or not all(isinstance(n, int) for n in shard)
            or not 1 <= shard[0] <= shard[1]):
        raise UsageError(f"{path}: not a partial manifest of format {PARTIAL_FORMAT}",
                         "pass the manifest-K-of-N.json each `addendum archive --shard K/N` wrote")
    return Partial(Shard(shard[0], shard[1]), str(data.get("base", "")), tuple(data.get("policies", ())), dict(data["files"]),
                   dict(data.get("listings", {})), dict(data.get("toolchains", {})))


# ---------------------------------------------------------------------------------------------- merge


@dataclass(frozen=True)
class MergeReport:
    shards: int
    files: int  # entries the partials recorded
    copied: tuple[str, ...]  # files copied into history/ from a shard's folder
    removed: tuple[str, ...]  # partial manifests inside history/, now part of manifest.json


def _check_shards(partials: Sequence[tuple[Path, Partial]], base: str) -> None:
    first_path, first = partials[0]
    count = first.shard.count
    seen: dict[int, Path] = {}
    for path, partial in partials:
        if partial.shard.count != count:
            raise UsageError(f"{path} is shard {partial.shard.label}, {first_path} is one of {count} shards",
                             "merge the partial manifests of one run of N shards")
        if partial.shard.number in seen:
            raise UsageError(f"shard {partial.shard.label} is given twice: {seen[partial.shard.number]} and {path}",
                             "pass each shard's manifest-K-of-N.json once")
        seen[partial.shard.number] = path
        if partial.policies != first.policies:
            raise UsageError(f"{path} archived {', '.join(partial.policies) or 'every policy'}, {first_path} "
                             f"{', '.join(first.policies) or 'every policy'}", "run every shard with the same POLICY arguments")
        if partial.base != base:
            raise UsageError(f"{path} was built from another history/manifest.json than this one",
                             "build every shard from the commit you merge into, then merge again")
    missing = [f"{number}/{count}" for number in range(1, count + 1) if number not in seen]
    if missing:
        raise UsageError(f"shard(s) {', '.join(missing)} missing: the merged archive would be incomplete",
                         f"pass the manifest-K-of-N.json of all {count} shards")


def merge(history_dir: Path, partial_paths: Sequence[Path], seal: Callable[[bytes | None], None] | None = None) -> MergeReport:
    """`addendum archive merge`: join the shards' partial manifests into history/manifest.json, copying each shard's
    files from the folder its partial manifest is in when that is not history/ itself. Refuses, before writing
    anything, a conflict (the same path with different bytes), a file whose bytes are not what its shard recorded,
    and a set of shards that is not complete. `seal` runs under the same lock, given the manifest's bytes
    before the merge."""
    if not partial_paths:
        raise UsageError("no partial manifest given", "addendum archive merge history/manifest-*-of-N.json")
    with folder_lock(history_dir, "`addendum archive`"):
        before = manifest_bytes(history_dir)
        base = manifest_digest(history_dir)
        partials = [(path, read_partial(path)) for path in partial_paths]
        _check_shards(partials, base)
        partials.sort(key=lambda item: item[1].shard.number)
        merged = read_manifest(history_dir) or Manifest()
        owners: dict[str, tuple[Path, dict[str, Any]]] = {}
        copies: list[tuple[Path, Path, str]] = []
        home = history_dir.resolve()
        for path, partial in partials:
            root = path.resolve().parent
            for relative, entry in sorted(partial.files.items()):
                sha = str(entry.get("sha256", ""))
                earlier = owners.get(relative)
                if earlier is not None and earlier[1].get("sha256") != sha:
                    raise HistoryError(f"history/{relative}: conflict: {earlier[0]} records sha256 {earlier[1].get('sha256')}, "
                                       f"{path} records {sha}", "rebuild both shards from the same commit with the same toolchain")
                recorded = merged.files.get(relative)
                if recorded is not None and recorded.get("kind") != "listing" and recorded.get("sha256") != sha:
                    raise HistoryError(f"history/{relative}: conflict: the archive records sha256 {recorded.get('sha256')}, "
                                       f"{path} records {sha}", "an archived record is never rewritten: see `addendum verify`")
                owners[relative] = (path, entry)
                source, target = root / relative, home / relative
                if not source.is_file() or sha256_file(source) != sha:
                    raise HistoryError(f"{source}: not the file {path} records (sha256 {sha})",
                                       "copy the shard's whole history/ folder next to its partial manifest")
                if root != home and not (target.is_file() and sha256_file(target) == sha):
                    if target.exists() and (recorded is None or recorded.get("kind") != "listing"):
                        raise HistoryError(f"history/{relative}: conflict: already there with other bytes than {path} records",
                                           "see `addendum verify`; delete it if it is not a record, then merge again")
                    copies.append((source, target, relative))
            merged.listings.update(partial.listings)
            merged.toolchains.update(partial.toolchains)
        for source, target, _ in copies:
            write_atomic(target, source.read_bytes())
        merged.files.update({relative: entry for relative, (_, entry) in owners.items()})
        write_atomic(manifest_path(history_dir), merged.to_bytes())
        removed = []
        for path, _ in partials:
            if path.resolve().parent == home:
                path.unlink(missing_ok=True)
                removed.append(path.name)
        if seal is not None:
            seal(before)
    return MergeReport(len(partials), len(owners), tuple(relative for _, _, relative in copies), tuple(removed))

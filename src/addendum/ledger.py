"""The ledger of published versions: history/<policy>/ledger.toml, the source of truth for what was published."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from .errors import HistoryError

LEDGER_NAME = "ledger.toml"


@dataclass(frozen=True)
class PublishedVersion:
    """One immutable published version, as recorded in the ledger."""

    id: str
    policy_id: str
    effective: date
    published: date
    commit: str
    classification: str
    reason: str
    author: str
    summaries: dict[str, str]
    hashes: dict[str, str]  # "site/lang" -> content hash
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """The version's folder name under history/<policy>/: its date and optional .n suffix."""
        return self.id.split("@", 1)[1]

    def hash_for(self, site_id: str, language: str) -> str | None:
        return self.hashes.get(f"{site_id}/{language}")


def ledger_path(history_dir: Path, policy_id: str) -> Path:
    return history_dir / policy_id / LEDGER_NAME


def _version(policy_id: str, entry: dict[str, Any], where: str) -> PublishedVersion:
    try:
        return PublishedVersion(
            id=str(entry["id"]), policy_id=policy_id, effective=entry["effective"], published=entry["published"],
            commit=str(entry.get("commit", "")), classification=str(entry["classification"]),
            reason=str(entry.get("reason", "")), author=str(entry.get("author", "")),
            summaries=dict(entry.get("summary", {})), hashes=dict(entry.get("hashes", {})),
            extra={k: v for k, v in entry.items() if k not in {"id", "effective", "published", "commit", "classification",
                                                              "reason", "author", "summary", "hashes"}},
        )
    except KeyError as exc:
        raise HistoryError(f"{where}: a version entry lacks {exc.args[0]!r}", "restore the ledger from git") from None


def read_ledger(history_dir: Path, policy_id: str) -> list[PublishedVersion]:
    """Published versions, oldest first; an absent ledger means nothing was published yet."""
    path = ledger_path(history_dir, policy_id)
    if not path.is_file():
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise HistoryError(f"{path}: {exc}", "restore the ledger from git: it is written only by `addendum publish`") from None
    return [_version(policy_id, entry, str(path)) for entry in data.get("version", [])]


def last_changed(history_dir: Path, policy_id: str, site_id: str, language: str, content_hash: str) -> date | None:
    """The effective date of the latest published version whose text for this site and language is this text."""
    for version in reversed(read_ledger(history_dir, policy_id)):
        if version.hash_for(site_id, language) == content_hash:
            return version.effective
    return None

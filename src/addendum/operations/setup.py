"""`addendum init`: a new policy repository with everything a team needs to start, in its first commit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from addendum.config import CONFIG_NAME, SCHEMA, Option
from addendum.errors import HistoryError, UsageError
from addendum.history.repository import WorkTree, init_repository, open_work_tree
from addendum.ids import require_id
from addendum.templates import builtin_dir, render_template

GITIGNORE = """\
# Local state of addendum: subscribers, the outbox, keys. Personal data never enters git.
.addendum/
*.eml
"""
DEFAULT_POLICY_ID = "privacy"
# Titles for the policies teams start with most; any other id gets its own name as a title, to be edited.
STARTER_TITLES = {"privacy": "Privacy policy", "terms": "Terms of use", "cookies": "Cookie policy"}
STARTER_FILES = ("policy.toml", "en.md")


@dataclass(frozen=True)
class InitResult:
    """What `init` made: the items created (for the user to read), the starter policy, and the first commit."""

    created: tuple[str, ...]
    starter_policy: str | None  # None when policies/ held policies already
    commit: str


def toml_value(value: Any) -> str:
    """A default from config.SCHEMA as TOML writes it (JSON strings and numbers are valid TOML)."""
    return json.dumps(value, ensure_ascii=False)


def config_tables() -> list[dict[str, Any]]:
    """The keys of config.SCHEMA grouped by TOML table, in SCHEMA order: what the scaffold addendum.toml shows."""
    tables: dict[str, list[Option]] = {}
    for option in SCHEMA:
        tables.setdefault(option.key.rsplit(".", 1)[0], []).append(option)
    return [{"name": name, "options": [{"key": o.key, "leaf": o.key.rsplit(".", 1)[1], "doc": o.doc,
                                        "default": toml_value(o.default), "choices": list(o.choices)} for o in options]}
            for name, options in tables.items()]


def config_text() -> str:
    """The commented addendum.toml that `init` writes: every key, none set."""
    return render_template("scaffold/addendum.toml", {"tables": config_tables()})


def starter_policy_files(policy_id: str) -> dict[str, str]:
    """policy.toml and en.md of a starter policy that passes `addendum check`, keyed by path in the policy folder."""
    title = STARTER_TITLES.get(policy_id, policy_id.replace("-", " ").capitalize())
    return {
        "policy.toml": render_template("scaffold/policy/policy.toml", {"policy_id": policy_id, "title": title}),
        # Read, not rendered: its {{ … }} are the policy's own placeholders, filled when the policy is rendered.
        "en.md": (builtin_dir() / "scaffold" / "policy" / "en.md").read_text(encoding="utf-8"),
    }


def _require_identity(work_tree: WorkTree) -> None:
    """Stop before anything is written when git could not make the first commit."""
    try:
        work_tree.identity()
    except HistoryError as exc:
        raise HistoryError(f"cannot make the first commit: {exc.message}", f"{exc.hint}; then run addendum init again") from None


def _is_empty(folder: Path) -> bool:
    return not folder.exists() or (folder.is_dir() and not any(folder.iterdir()))


def init_policy_repository(target: Path, policy_id: str = DEFAULT_POLICY_ID) -> InitResult:
    """Create a policy repository in `target` and commit it; refuses to overwrite an existing one.

    Writes a commented addendum.toml, a starter policy in policies/<policy_id>/ (unless policies/ holds policies
    already), templates/ and history/, and a .gitignore that keeps local state out of git; a new git repository
    unless `target` is inside one. Only these files go into the commit, whatever else the work tree holds.
    """
    require_id(policy_id, "policy")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {target}: {exc.strerror or exc}", "choose a folder you may write to") from None
    if (target / CONFIG_NAME).exists():
        raise UsageError(f"{target / CONFIG_NAME} already exists", "this folder is already a policy repository")
    existing_policies = sorted(p.parent.name for p in (target / "policies").glob("*/policy.toml"))
    starter = None if existing_policies else policy_id
    if starter and not _is_empty(target / "policies" / starter):
        raise UsageError(f"{target / 'policies' / starter} exists but holds no policy.toml",
                         "choose another id for the starter policy with --policy ID, or move that folder away")
    created = ["git repository"] if init_repository(target) else []
    work_tree = open_work_tree(target)
    _require_identity(work_tree)

    files = {CONFIG_NAME: config_text()}
    created.append(CONFIG_NAME)
    if starter:
        files.update({f"policies/{starter}/{name}": text for name, text in starter_policy_files(starter).items()})
        created.append(f"policies/{starter}/ ({', '.join(STARTER_FILES)})")
    for folder in ("templates", "history"):
        if _is_empty(target / folder):
            # git keeps no empty folder; the placeholder shows where overrides and the archive go.
            files[f"{folder}/.gitkeep"] = ""
            created.append(f"{folder}/")
    gitignore = target / ".gitignore"
    existing = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    if ".addendum/" not in existing:
        files[".gitignore"] = existing + ("\n" if existing and not existing.endswith("\n") else "") + GITIGNORE
        created.append(".gitignore" if not existing else ".gitignore (added .addendum/)")

    where = work_tree.prefix.rstrip("/")
    message = f"Start a policy repository{' in ' + where if where else ''}\n\nCreated by addendum init.\n"
    commit = work_tree.commit(message, write={path: text.encode("utf-8") for path, text in files.items()})
    return InitResult(tuple(created), starter, commit)

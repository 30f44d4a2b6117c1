"""`addendum init`: a new policy repository with everything a team needs to start."""

from __future__ import annotations

from pathlib import Path

from addendum.config import CONFIG_NAME
from addendum.errors import UsageError
from addendum.files import write_atomic
from addendum.history.repository import init_repository
from addendum.templates import builtin_dir

GITIGNORE = """\
# Local state of addendum: subscribers, the outbox, keys. Personal data never enters git.
.addendum/
*.eml
"""


def init_policy_repository(target: Path) -> list[str]:
    """Create the skeleton in `target`; returns what was created. Refuses to overwrite an existing repository."""
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {target}: {exc.strerror or exc}", "choose a folder you may write to") from None
    if (target / CONFIG_NAME).exists():
        raise UsageError(f"{target / CONFIG_NAME} already exists", "this folder is already a policy repository")
    created = []
    if init_repository(target):
        created.append("git repository")
    write_atomic(target / CONFIG_NAME, (builtin_dir() / "scaffold" / "addendum.toml").read_text(encoding="utf-8"))
    created.append(CONFIG_NAME)
    for folder in ("policies", "templates", "history"):
        (target / folder).mkdir(exist_ok=True)
        keep = target / folder / ".gitkeep"
        if not any((target / folder).iterdir()):
            keep.touch()
        created.append(folder + "/")
    gitignore = target / ".gitignore"
    existing = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    if ".addendum/" not in existing:
        write_atomic(gitignore, existing + ("\n" if existing and not existing.endswith("\n") else "") + GITIGNORE)
        created.append(".gitignore")
    return created

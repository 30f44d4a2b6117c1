"""Git: the only module that talks to it. Reads policy files at any revision and records published versions."""

from __future__ import annotations

from pathlib import Path

import git

from .errors import HistoryError


def init_repository(path: Path) -> bool:
    """Make `path` a git repository unless it is inside one already; True when one was created."""
    try:
        git.Repo(path, search_parent_directories=True)
        return False
    except git.InvalidGitRepositoryError:
        git.Repo.init(path)
        return True
    except git.NoSuchPathError as exc:
        raise HistoryError(f"{path} does not exist", "create the folder first") from exc

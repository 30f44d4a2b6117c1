"""Files of a policy repository: read only inside it (no link leading out), written whole or not at all."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from addendum.errors import UsageError


def user_cache(name: str) -> Path:
    """A folder of the user's cache (XDG_CACHE_HOME, else ~/.cache) for answers Addendum keeps to save time: outside
    any repository, so that no commit can put one there."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "addendum" / name


def write_atomic(path: Path, data: str | bytes, mode: int | None = None) -> None:
    """Write `data` to `path` whole or not at all; a path that cannot be written is the user's error, not a crash."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}", "choose a folder that exists and that you may write to") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode if mode is not None else 0o644)
        os.replace(temporary, path)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}", "check the free space and permissions there") from None
        raise


class OutsideRepository(UsageError):
    """A file or folder of the repository is a symbolic link that leads out of it (or round in a circle)."""

    def __init__(self, file: str, target: str, reason: str = "") -> None:
        self.reason = reason or f"a symbolic link to {target}, outside the repository"
        super().__init__(f"{file} is {self.reason}",
                         "replace the link with the file itself (git stores a link as a link, so a contributed change "
                         "can carry one that points anywhere); links to files inside the repository are allowed")
        self.file = file
        self.target = target


def _shown(root: Path, path: Path) -> str:
    """`path` as the user knows it: relative to the repository when it lies there before links are resolved."""
    absolute = path if path.is_absolute() else root / path
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        return str(absolute)


def inside_repository(root: Path, path: Path) -> Path:
    """The real location of `path` (every symbolic link on the way resolved), refused unless it lies inside `root`.

    Every file Addendum reads from a policy repository's work tree goes through here: git stores symbolic links,
    so a contributed change can carry a link to /etc/passwd or to a file in the editor's home folder, and
    following it would print or archive that file. Raises OutsideRepository naming the file and where it leads.
    """
    top = root.resolve()
    absolute = path if path.is_absolute() else root / path
    try:
        target = absolute.resolve()
    except (OSError, RuntimeError):  # a circle of links: RuntimeError before Python 3.13, OSError after
        raise OutsideRepository(_shown(root, absolute), "", "a symbolic link in a circle of links, which leads nowhere") from None
    if not target.is_relative_to(top):
        raise OutsideRepository(_shown(root, absolute), str(target))
    return target


def repository_files(root: Path, folder: Path, wanted: Callable[[str], bool] = lambda name: True,
                     refused: list[OutsideRepository] | None = None) -> Iterator[tuple[str, Path]]:
    """The regular files under `folder` whose relative path is `wanted`, as (that path, real location), in name order.

    Links are followed only where they stay inside `root`; a link leading out, to a wanted file or to a folder,
    raises OutsideRepository, or is skipped and added to `refused` when a list is given (to report every one at
    once). A folder reached twice through links is walked once.
    """
    seen: set[Path] = set()

    def refuse(problem: OutsideRepository) -> None:
        if refused is None:
            raise problem
        refused.append(problem)

    def walk(current: Path, relative: str) -> Iterator[tuple[str, Path]]:
        real = current.resolve()
        if real in seen:
            return
        seen.add(real)
        for entry in sorted(current.iterdir(), key=lambda p: p.name):
            name = f"{relative}{entry.name}"
            if not entry.is_symlink():
                if entry.is_dir():
                    yield from walk(entry, name + "/")
                elif entry.is_file() and wanted(name):
                    yield name, real / entry.name
                continue
            try:
                resolved = inside_repository(root, entry)
            except OutsideRepository as problem:
                if wanted(name) or (problem.target and Path(problem.target).is_dir()):
                    refuse(problem)
                continue
            if resolved.is_dir():
                yield from walk(entry, name + "/")
            elif resolved.is_file() and wanted(name):
                yield name, resolved

    try:
        inside_repository(root, folder)
    except OutsideRepository as problem:
        refuse(problem)
        return
    if folder.is_dir():
        yield from walk(folder, "")


def read_repository_file(root: Path, path: Path) -> bytes:
    """The bytes of a file inside the repository; a link leading out of it is refused unread."""
    return inside_repository(root, path).read_bytes()

"""Git: the only module that talks to it. Reads files at any revision and a file's history, and commits atomically."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO

from addendum.errors import HistoryError, UsageError
from addendum.files import inside_repository, write_atomic
from addendum.ids import VERSION_PATTERN

# A policy file is text of some kilobytes; anything this large is not one, and is not read into memory.
MAX_BLOB_BYTES = 16 * 1024 * 1024
GIT_TIMEOUT_SECONDS = 600
ZERO_OID = "0" * 40

# Branches, tags, HEAD, hashes, with ~n/^n steps: no option, no range, no reflog or path syntax.
REVISION_PATTERN = re.compile(
    r"^(?!.*\.\.)(?!.*//)(?!.*/\.)(?!.*\.lock(?:[/~^]|$))(?!.*/(?:[~^]|$))"
    r"[A-Za-z0-9_][A-Za-z0-9._/+@-]{0,199}(?:[~^][0-9]{0,3}){0,8}$"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")

# Variables that point git at another repository, index or object store than the one we mean.
_LOCATION_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR",
                       "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_PREFIX", "GIT_SHALLOW_FILE",
                       "GIT_GRAFT_FILE", "GIT_REPLACE_REF_BASE", "GIT_QUARANTINE_PATH")
_LOG_FORMAT = "--format=%x1e%H%x1f%P%x1f%cI%x1f%an <%ae>%x1f%s"
# Options that fix the output of `git log` whatever a repository's configuration says.
_LOG_OPTIONS = ("--no-decorate", "--no-color", "--no-show-signature", "--no-relative", "--no-ext-diff", "--no-textconv",
                "--encoding=UTF-8", "--no-abbrev", "--raw", "-z", "-M", "--first-parent", "--diff-merges=first-parent")


def require_revision(value: str) -> str:
    """A git revision a user typed, refused unless it is plainly a branch, tag, hash or HEAD~n."""
    if not REVISION_PATTERN.fullmatch(value):
        raise UsageError(f"{value!r} is not a git revision this command accepts",
                         "give a branch, tag or commit hash, optionally with ~N or ^N (e.g. main, HEAD~2, 3f2a1c9)")
    return value


def require_tag_name(value: str) -> str:
    if not VERSION_PATTERN.fullmatch(value):
        raise UsageError(f"{value!r} is not a version id", "version ids look like privacy@2018-05-19 or privacy@2018-05-19.2")
    return value


def require_repository_path(value: str) -> str:
    """A path inside a repository, as git names it: relative, forward slashes, no `..`, no control characters."""
    parts = value.split("/")
    if (not value or len(value) > 1000 or value.startswith(("-", ":")) or _CONTROL.search(value)
            or any(part in ("", ".", "..") for part in parts)):
        raise UsageError(f"{value!r} is not a path inside the repository",
                         "give the file's path relative to the repository's top folder, e.g. docs/privacy.md")
    return value


def init_repository(path: Path) -> bool:
    """Make `path` a git repository unless it is inside one already; True when one was created."""
    import git  # GitPython costs a tenth of a second to import: only `init` needs it

    try:
        git.Repo(path, search_parent_directories=True)
        return False
    except git.InvalidGitRepositoryError:
        git.Repo.init(path)
        return True
    except git.NoSuchPathError as exc:
        raise HistoryError(f"{path} does not exist", "create the folder first") from exc


class GitFailed(HistoryError):
    """A git command exited with an error."""


class NothingToCommit(HistoryError):
    """The files to commit are exactly as HEAD has them."""


def _digest(path: Path) -> str:
    """The SHA-256 of a regular file's bytes; "" for a missing file (or a link, which is never written through)."""
    if path.is_symlink() or not path.is_file():
        return ""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# In the git folder while a commit is under way (see WorkTree.commit); its presence means one was interrupted.
JOURNAL_NAME = "addendum-commit.json"


@dataclass(frozen=True)
class PendingCommit:
    """A commit being made: its files, as git paths from the top of the work tree, and its parent."""

    commit: str
    parent: str | None
    write: tuple[str, ...]  # files whose contents the commit sets (written into the work tree after the index)
    add: tuple[str, ...]  # folders whose work-tree state the commit took (only the index follows)
    # The SHA-256 of each written file as the work tree had it when the commit was made ("" where it had none):
    # a file still so is ours to write, whatever it was (untracked too); one changed since is its editor's.
    found: tuple[tuple[str, str], ...] = ()

    def as_json(self) -> dict[str, object]:
        return {"commit": self.commit, "parent": self.parent, "write": list(self.write), "add": list(self.add),
                "found": dict(self.found)}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> PendingCommit:
        commit, parent, write, add = data["commit"], data["parent"], data["write"], data["add"]
        if not (isinstance(commit, str) and (parent is None or isinstance(parent, str)) and isinstance(write, list)
                and isinstance(add, list)):
            raise TypeError("not a commit journal")
        found = data.get("found", {})
        if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
            raise TypeError("not a commit journal")
        for path in (*write, *add):
            require_repository_path(path)  # a journal naming `../x` is not ours: refuse it, write nothing
        return cls(commit, parent, tuple(write), tuple(add), tuple(sorted(found.items())))


@dataclass(frozen=True)
class Git:
    """How to run git for one repository: the folder commands run in, and their environment."""

    cwd: Path
    env: Mapping[str, str]
    timeout: float = GIT_TIMEOUT_SECONDS

    def command(self, args: Sequence[str]) -> list[str]:
        return ["git", *args]

    def run(self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None) -> bytes:
        try:
            done = subprocess.run(self.command(args), cwd=self.cwd, env={**self.env, **(env or {})}, input=input,
                                  capture_output=True, timeout=self.timeout, check=False)
        except FileNotFoundError:
            raise _git_missing() from None
        except subprocess.TimeoutExpired:
            raise HistoryError(f"git {args[0]} did not finish within {self.timeout:g} seconds",
                               f"another git process may hold a lock in {self.cwd}, or the repository is very large or "
                               "on a slow disk; check with `git status` there and try again") from None
        if done.returncode != 0:
            message = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise GitFailed(f"git {args[0]} failed: {message[-1] if message else f'exit {done.returncode}'}")
        return done.stdout

    def text(self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None) -> str:
        return self.run(*args, input=input, env=env).decode("utf-8", "replace").strip()

    def resolve_commit(self, revision: str) -> str:
        """The full hash of the commit a validated revision names."""
        require_revision(revision)
        try:
            return self.text("rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}")
        except GitFailed:
            raise HistoryError(f"unknown revision {revision!r}",
                               "check the name with `git log --oneline`; a shallow clone or one without tags lacks "
                               "old commits — use a version id or a date, which the ledger answers on its own") from None


def _git_missing() -> HistoryError:
    return HistoryError("git is not installed", "install git (e.g. apt-get install git) and make sure it is on PATH")


def _base_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _LOCATION_VARIABLES}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_LITERAL_PATHSPECS="1", GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    return env


# ---------------------------------------------------------------------------------------------------------------
# Reading objects and history


def read_blobs(repository: Git, object_ids: Sequence[str], limit: int = MAX_BLOB_BYTES) -> dict[str, bytes]:
    """The contents of blobs through one `git cat-file --batch`; a blob over `limit` bytes is refused unread."""
    wanted = list(dict.fromkeys(object_ids))
    if not wanted:
        return {}
    try:
        process = subprocess.Popen(repository.command(["cat-file", "--batch"]), cwd=repository.cwd,
                                   env=dict(repository.env), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL)
    except FileNotFoundError:
        raise _git_missing() from None
    assert process.stdin is not None and process.stdout is not None
    # A separate writer, so a long request list never deadlocks against git's full output pipe.
    writer = threading.Thread(target=_feed, args=(process.stdin, wanted), daemon=True)
    writer.start()
    blobs: dict[str, bytes] = {}
    try:
        for object_id in wanted:
            header = process.stdout.readline().split()
            if len(header) != 3:
                raise HistoryError(f"git object {object_id} is missing from the repository",
                                   "the repository is incomplete (shallow or partial clone); fetch its full history")
            kind, size = header[1].decode(), int(header[2])
            if kind != "blob":
                raise HistoryError(f"git object {object_id} is a {kind}, not a file")
            if size > limit:
                raise HistoryError(f"a version of the file is {size:,} bytes; the limit is {limit:,}",
                                   "a policy file this large is not text a reader sees; check the path")
            blobs[object_id] = process.stdout.read(size)
            process.stdout.read(1)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        writer.join()
    return blobs


def _feed(stream: IO[bytes], object_ids: list[str]) -> None:
    try:
        stream.write("".join(f"{oid}\n" for oid in object_ids).encode())
        stream.close()
    except (BrokenPipeError, ValueError):
        pass  # the reader stopped early (an error or an oversized blob) and killed git


@dataclass(frozen=True)
class FileChange:
    """One commit of a file's history: what the commit did to the file, as `git log --raw` reports it."""

    commit: str
    parents: tuple[str, ...]
    committed: datetime
    author: str
    subject: str
    status: str  # A added, M modified, R renamed, D deleted, T type changed, C copied
    path: str  # the file's name after the commit
    old_path: str  # its name before (differs on a rename)
    blob: str  # the new content's object id ("" when deleted)


@dataclass(frozen=True)
class FileVersion:
    """The content of a file as one commit left it."""

    commit: str
    parents: tuple[str, ...]
    committed: datetime
    author: str
    subject: str
    path: str
    content: bytes


def file_log(repository: Git, commit: str, path: str) -> list[FileChange]:
    """Every first-parent commit that changed `path` (following renames), newest first, from one `git log`."""
    output = repository.run("log", *_LOG_OPTIONS, "--follow", _LOG_FORMAT, "--end-of-options", commit, "--", path)
    changes = []
    for record in output.split(b"\x1e")[1:]:
        header, _, raw = record.partition(b"\x00")
        sha, parents, committed, author, subject = header.decode("utf-8", "replace").split("\x1f", 4)
        tokens = raw.lstrip(b"\n").split(b"\x00")
        index = 0
        while index < len(tokens) and tokens[index].startswith(b":"):
            fields = tokens[index].decode().split()
            status = fields[4][0]
            names = [t.decode("utf-8", "surrogateescape") for t in tokens[index + 1:index + (3 if status in "RC" else 2)]]
            index += 1 + len(names)
            changes.append(FileChange(sha, tuple(parents.split()), datetime.fromisoformat(committed), author, subject,
                                      status, names[-1], names[0], "" if status == "D" else fields[3]))
    return changes


def _history_chain(repository: Git, commit: str, paths: Sequence[str]) -> list[FileChange]:
    """The changes to a file under its current name and, where it was added anew, under its earlier names."""
    changes: list[FileChange] = []
    names = list(paths)
    current = names.pop(0)
    start = commit
    while True:
        origin = None
        for change in file_log(repository, start, current):
            changes.append(change)
            if change.status == "A" and names:
                origin = change  # added here: the text may have lived under an earlier name before
                break
        if origin is None or not origin.parents:
            return changes
        start, current = origin.parents[0], names.pop(0)
        while names and not file_log(repository, start, current):
            current = names.pop(0)


def read_file_history(repository: Git, paths: Sequence[str], revision: str = "HEAD") -> list[FileVersion]:
    """Every version of one file on the first-parent line of `revision`, oldest first (deletions left out).

    `paths[0]` is the file's current name; further names are earlier ones, for a replacement git does not detect
    as a rename. One `git log` per name and one `git cat-file --batch` for all contents.
    """
    for path in paths:
        require_repository_path(path)
    require_revision(revision)
    try:
        chain = _history_chain(repository, revision, paths)
    except GitFailed:
        repository.resolve_commit(revision)  # names an unknown revision clearly; else the failure was something else
        raise
    changes = [c for c in chain if c.blob]
    contents = read_blobs(repository, [c.blob for c in changes])
    return [FileVersion(c.commit, c.parents, c.committed, c.author, c.subject, c.path, contents[c.blob])
            for c in reversed(changes)]


# ---------------------------------------------------------------------------------------------------------------
# A repository read from outside: no hook, no configuration of it, nothing written to it


def _git_folders(source: Path) -> tuple[Path, Path]:
    """(the repository's git folder, its common folder) for a work tree, a linked work tree or a bare repository."""
    dot_git = source / ".git"
    if dot_git.is_dir():
        git_dir = dot_git
    elif dot_git.is_file():
        pointer = dot_git.read_text(encoding="utf-8", errors="replace").strip()
        if not pointer.startswith("gitdir:"):
            raise HistoryError(f"{dot_git} is not a git pointer file")
        git_dir = (source / pointer.removeprefix("gitdir:").strip()).resolve()
    elif (source / "HEAD").is_file() and (source / "objects").is_dir():
        git_dir = source
    else:
        raise HistoryError(f"{source} is not a git repository", "give the top folder of the repository (the one holding .git)")
    common = git_dir
    if (git_dir / "commondir").is_file():
        common = (git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()).resolve()
    if (common / "reftable").exists():
        raise HistoryError(f"{source} stores its references as a reftable, which this command cannot read safely",
                           "clone it into a plain repository first: git clone --no-local SOURCE COPY")
    return git_dir, common


def _copy_refs(git_dir: Path, common: Path, shadow: Path) -> None:
    shutil.copyfile(git_dir / "HEAD", shadow / "HEAD")
    for name in ("packed-refs", "shallow"):
        if (common / name).is_file():
            shutil.copyfile(common / name, shadow / name)
    refs = common / "refs"
    for folder, _, files in os.walk(refs):
        for name in files:
            origin = Path(folder) / name
            if origin.is_file() and not origin.is_symlink():
                target = shadow / "refs" / origin.relative_to(refs)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(origin, target)


def _object_format(common: Path, outside: Git) -> str:
    """sha1, or what the repository's config declares (read as a plain file: no include, nothing run)."""
    config = common / "config"
    if not config.is_file() or "objectformat" not in config.read_text(encoding="utf-8", errors="replace").lower():
        return "sha1"
    value = outside.text("config", "--file", str(config), "--default", "sha1", "--get", "extensions.objectformat")
    if value not in ("sha1", "sha256"):
        raise HistoryError(f"the repository uses object format {value!r}, which this command does not know")
    return value


def _make_git_folder(shadow: Path, object_format: str) -> None:
    """The smallest git folder git accepts, written directly (`git init` would copy templates and hooks)."""
    (shadow / "refs").mkdir(parents=True)
    (shadow / "objects").mkdir()
    config = f"[core]\n\trepositoryformatversion = {0 if object_format == 'sha1' else 1}\n\tbare = true\n"
    if object_format != "sha1":
        config += f"[extensions]\n\tobjectformat = {object_format}\n"
    (shadow / "config").write_text(config, encoding="utf-8")


@contextmanager
def read_only(source: Path) -> Iterator[Git]:
    """Git pointed at another repository's objects and refs, with a throw-away git folder of our own.

    Git reads the configuration, hooks and attributes of the git folder it runs in; here that folder is a
    temporary one, so nothing the source repository configures (a gpg program, an fsmonitor, hooks, aliases,
    replace refs) runs, and the source is only read.
    """
    source = source.resolve()
    if not source.is_dir():
        raise HistoryError(f"{source} is not a folder", "give the path of a git repository")
    git_dir, common = _git_folders(source)
    with tempfile.TemporaryDirectory(prefix="addendum-read-") as folder:
        shadow = Path(folder) / "git"
        home = Path(folder) / "home"
        home.mkdir()
        env = {k: v for k, v in _base_environment().items() if not k.startswith("GIT_CONFIG")}
        env.update(HOME=str(home), XDG_CONFIG_HOME=str(home), GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull,
                   GIT_NO_REPLACE_OBJECTS="1", GIT_ATTR_NOSYSTEM="1", GIT_CEILING_DIRECTORIES=folder)
        _make_git_folder(shadow, _object_format(common, Git(Path(folder), env)))
        _copy_refs(git_dir, common, shadow)
        yield Git(shadow, {**env, "GIT_DIR": str(shadow), "GIT_OBJECT_DIRECTORY": str(common / "objects")})


# ---------------------------------------------------------------------------------------------------------------
# The policy repository's own git


@dataclass(frozen=True)
class NewTag:
    """An annotated tag to create with a commit, in the same reference transaction."""

    name: str
    message: str


@dataclass(frozen=True)
class WorkTree:
    """The git work tree that holds a policy repository, which may sit in a sub-folder of it."""

    git: Git
    prefix: str  # the policy repository's folder relative to the work tree's top, "" or ending in "/"
    git_dir: Path | None = None  # the work tree's own git folder (holds its index), when known

    def path(self, relative: str) -> str:
        """A path relative to the policy repository, as git names it from the top of the work tree."""
        return self.prefix + require_repository_path(relative)

    def head(self) -> str | None:
        """The commit HEAD points at; None before the first commit."""
        try:
            return self.git.text("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
        except GitFailed:
            return None

    def is_shallow(self) -> bool:
        return self.git.text("rev-parse", "--is-shallow-repository") == "true"

    def resolve_commit(self, revision: str) -> str:
        return self.git.resolve_commit(revision)

    def files_at(self, commit: str, folder: str) -> dict[str, bytes]:
        """Every regular file under `folder` at `commit`, keyed by its path relative to `folder`."""
        top = self.path(folder).rstrip("/") + "/"
        listing = self.git.run("ls-tree", "-r", "-z", "--full-tree", "--end-of-options", commit, "--", top)
        entries: dict[str, str] = {}
        for line in listing.split(b"\x00"):
            if not line:
                continue
            meta, _, name = line.partition(b"\t")
            mode, kind, object_id = meta.decode().split()
            if kind == "blob" and mode in ("100644", "100755"):
                entries[name.decode("utf-8", "surrogateescape").removeprefix(top)] = object_id
        blobs = read_blobs(self.git, list(entries.values()))
        return {name: blobs[object_id] for name, object_id in entries.items()}

    def file_at(self, commit: str, path: str) -> bytes | None:
        """One file's content at `commit`; None when it does not exist there."""
        listing = self.git.run("ls-tree", "-z", "--full-tree", "--end-of-options", commit, "--", self.path(path))
        meta = listing.split(b"\t", 1)[0].split()
        if len(meta) != 3 or meta[1] != b"blob":
            return None
        object_id = meta[2].decode()
        return read_blobs(self.git, [object_id])[object_id]

    def last_commit_touching(self, folder: str) -> str | None:
        head = self.head()
        if head is None:
            return None
        found = self.git.text("log", "-1", "--format=%H", "--end-of-options", head, "--", self.path(folder))
        return found or head

    def commit_date(self, commit: str) -> date | None:
        """The day `commit` was committed, in its committer's time zone; None when it is not here (a shallow clone)."""
        try:
            found = self.git.text("show", "-s", "--format=%cs", "--end-of-options", require_revision(commit))
        except GitFailed:
            return None
        return date.fromisoformat(found) if found else None

    def commit_dates(self, commits: Iterable[str]) -> dict[str, date]:
        """commit_date of each commit, in one git run when git has them all (the usual case); those it does not have
        (a shallow clone) are left out."""
        wanted = [require_revision(commit) for commit in dict.fromkeys(commits) if commit]
        if not wanted:
            return {}
        try:
            listing = self.git.text("show", "-s", "--format=%H %cs", "--end-of-options", *wanted)
        except GitFailed:  # one commit git lacks fails the whole run: ask about each alone
            return {commit: day for commit in wanted if (day := self.commit_date(commit)) is not None}
        days = dict(line.split(" ", 1) for line in listing.splitlines() if " " in line)
        found: dict[str, date] = {}
        for commit in wanted:  # a full hash as git prints it, or an abbreviation of one
            text = days.get(commit.lower()) or next((d for sha, d in days.items() if sha.startswith(commit.lower())), "")
            if text:
                found[commit] = date.fromisoformat(text)
        return found

    def identity(self) -> str:
        """`Name <email>` of the author git would record; a clear error when none is configured."""
        try:
            ident = self.git.text("var", "GIT_AUTHOR_IDENT")
            self.git.text("var", "GIT_COMMITTER_IDENT")
        except GitFailed:
            raise HistoryError("git does not know who you are", 'run: git config --global user.name "Your Name" && '
                               'git config --global user.email you@example.org') from None
        return ident.rsplit(" ", 2)[0]

    def tag_target(self, name: str) -> str | None:
        """The commit a version tag points at; None when there is no such tag."""
        require_tag_name(name)
        try:
            return self.git.text("rev-parse", "--verify", "--quiet", f"refs/tags/{name}^{{commit}}")
        except GitFailed:
            return None

    def first_commit_adding(self, path: str) -> str | None:
        head = self.head()
        if head is None:
            return None
        found = self.git.text("log", "--diff-filter=A", "--format=%H", "--end-of-options", head, "--", self.path(path))
        return found.splitlines()[-1] if found else None

    def commit(self, message: str, *, write: Mapping[str, bytes] | None = None, add: Sequence[str] = (),
               tags: Sequence[NewTag] = ()) -> str:
        """Commit on HEAD only the given files, and create tags, all in one reference transaction.

        `write` maps paths (relative to the policy repository) to their new contents; `add` names folders whose
        work-tree state is taken as it is. The commit is built in a temporary index, so whatever else is changed
        or staged in the work tree stays out of it. HEAD moves only if it still points where it did, and the tags
        are created in the same transaction: both happen, or neither. The written files are then put into the work
        tree and the index. Returns the new commit.

        A kill at any moment leaves nothing half done that the next command does not finish: before HEAD moves, a
        journal in the git folder records the commit; once it has moved, the index is brought in line first (so
        that a plain `git commit` cannot record the files as deleted), then the work tree, then the journal goes.
        Whichever process next opens the work tree or reads a ledger finishes what the journal lists.
        """
        write = dict(write or {})
        self.finish_interrupted_commit()
        self._require_new_tags(tags)
        self.identity()
        head = self.head()
        with tempfile.TemporaryDirectory(prefix="addendum-commit-") as folder:
            index = {"GIT_INDEX_FILE": str(Path(folder) / "index")}
            self.git.run("read-tree", *(["--end-of-options", head] if head else ["--empty"]), env=index)
            if write:
                self._stage(write, index)
            if add:
                self.git.run("add", "--all", "--", *(self.path(p) for p in add), env=index)
            tree = self.git.text("write-tree", env=index)
        if head is not None and tree == self.git.text("rev-parse", f"{head}^{{tree}}"):
            raise NothingToCommit("nothing to commit: the files are as HEAD has them")
        parents = ["-p", head] if head else []
        commit = self.git.text("commit-tree", tree, *parents, "-F", "-", input=message.encode("utf-8"))
        updates = self._tag_updates([(tag, commit) for tag in tags]) + [f"update HEAD {commit} {head or ZERO_OID}"]
        written = tuple(self.path(name) for name in write)
        pending = PendingCommit(commit, head, written, tuple(self.path(folder) for folder in add),
                                tuple((path, _digest(self.git.cwd / path)) for path in written))
        journal, descriptor = self._write_journal(pending)
        try:
            try:
                self._transaction(updates, message)
            except HistoryError:
                journal.unlink(missing_ok=True)  # git refused the update: HEAD did not move, nothing to finish
                raise
            self._finish(pending, commit)
            journal.unlink()
        finally:
            os.close(descriptor)
        return commit

    def journal_path(self) -> Path:
        """Where the journal of a commit under way is kept: in the git folder, out of the work tree and `git status`."""
        git_dir = self.git_dir or Path(self.git.text("rev-parse", "--absolute-git-dir"))
        return git_dir / JOURNAL_NAME

    def _write_journal(self, pending: PendingCommit) -> tuple[Path, int]:
        """Write the journal whole and locked (renamed into place only once locked), so that a process reading it
        waits while this one finishes the commit; the lock ends with this process, however it ends."""
        journal = self.journal_path()
        handle, temporary = tempfile.mkstemp(prefix=f".{JOURNAL_NAME}.", suffix=".tmp", dir=journal.parent)
        try:
            os.write(handle, json.dumps(pending.as_json()).encode("utf-8"))
            os.fsync(handle)
            fcntl.flock(handle, fcntl.LOCK_EX)
            os.replace(temporary, journal)
        except BaseException as exc:
            os.close(handle)
            Path(temporary).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise HistoryError(f"cannot write {journal}: {exc.strerror or exc}", "check the permissions of the git folder") from None
            raise
        return journal, handle

    def finish_interrupted_commit(self) -> bool:
        """Finish a commit whose process was killed after HEAD moved (index and work tree brought in line with it),
        or forget one killed before; True when there was one. Cheap when there is none: one `stat`."""
        journal = self.journal_path()
        try:
            descriptor = os.open(journal, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)  # waits while the committing process, if alive, finishes itself
            if os.fstat(descriptor).st_nlink == 0:
                return True  # finished meanwhile by the process that wrote it
            try:
                pending = PendingCommit.from_json(json.loads(journal.read_bytes()))
            except (ValueError, KeyError, TypeError):
                pending = None  # written whole before HEAD moved, so unreadable means it never was a journal of ours
            head = self.head()
            if pending is not None and head is not None and self._contains(head, pending.commit):
                self._finish(pending, head)
            journal.unlink(missing_ok=True)
            return True
        finally:
            os.close(descriptor)

    def _contains(self, head: str, commit: str) -> bool:
        try:
            self.git.run("merge-base", "--is-ancestor", "--end-of-options", commit, head)
            return True
        except GitFailed:
            return False  # not an ancestor, or not even in the repository: HEAD never moved to it

    def _entries(self, revision: str | None, paths: Sequence[str]) -> dict[str, tuple[str, str]]:
        """path → (mode, object id) of every file under `paths` at `revision` (none for None)."""
        if revision is None or not paths:
            return {}
        listing = self.git.run("ls-tree", "-r", "-z", "--full-tree", "--end-of-options", revision, "--", *paths)
        entries = {}
        for line in listing.split(b"\x00"):
            if line:
                meta, _, name = line.partition(b"\t")
                mode, _, object_id = meta.decode().split()
                entries[name.decode("utf-8", "surrogateescape")] = (mode, object_id)
        return entries

    def _index_entries(self, paths: Sequence[str]) -> dict[str, tuple[str, str]]:
        """path → (mode, object id) of the index's entries under `paths`; a conflicted path is left out."""
        listing = self.git.run("ls-files", "-s", "-z", "--", *paths) if paths else b""
        entries: dict[str, tuple[str, str]] = {}
        conflicted = set()
        for line in listing.split(b"\x00"):
            if line:
                meta, _, name = line.partition(b"\t")
                mode, object_id, stage = meta.decode().split()
                path = name.decode("utf-8", "surrogateescape")
                if stage == "0":
                    entries[path] = (mode, object_id)
                else:
                    conflicted.add(path)
        return {path: entry for path, entry in entries.items() if path not in conflicted}

    def _finish(self, pending: PendingCommit, head: str) -> None:
        """Bring the index, then the work tree, in line with the files `pending` committed, where HEAD still has them;
        a work-tree file is written only where it is still as the commit's parent had it (what anyone changed since
        is theirs to keep). Safe to repeat."""
        paths = [*pending.write, *pending.add]
        try:
            old = self._entries(pending.parent, paths)
            new = self._entries(pending.commit, paths)
            current = new if head == pending.commit else self._entries(head, paths)
            index = self._index_entries(paths)
            # As `git add` would after the commit: the index takes what the commit recorded, where HEAD still has it.
            stale = [path for path in sorted(set(old) | set(new))
                     if current.get(path) == new.get(path) and index.get(path) != new.get(path)]
            if stale:
                lines = "".join(f"{new[path][0]} {new[path][1]}\t{path}\x00" if path in new else f"0 {ZERO_OID}\t{path}\x00"
                                for path in stale)
                self.git.run("update-index", "-z", "--index-info", input=lines.encode("utf-8", "surrogateescape"))
            files = [path for path in pending.write if path in new and current.get(path) == new[path]]
            blobs = read_blobs(self.git, [new[path][1] for path in files] + [old[path][1] for path in files if path in old])
            written = []
            found = dict(pending.found)
            for path in files:
                target = self.git.cwd / path
                on_disk = target.read_bytes() if target.is_file() and not target.is_symlink() else None
                before = blobs[old[path][1]] if path in old else None
                untouched = _digest(target) == found[path] if path in found else on_disk == before
                if on_disk == blobs[new[path][1]] or not untouched or (on_disk is None and os.path.lexists(target)):
                    continue  # done already, or changed by someone since: theirs to keep
                inside_repository(self.git.cwd, target.parent)  # never written through a folder linked elsewhere
                write_atomic(target, blobs[new[path][1]])
                written.append(path)
            if written:
                self.git.run("update-index", "--add", "--", *written)  # records the new files' stat data
        except (OSError, UsageError, GitFailed) as exc:
            detail = exc.message if isinstance(exc, UsageError) else str(exc)
            raise HistoryError(f"committed, but the work tree or index could not be updated: {detail}",
                               "any addendum command run in the repository finishes it (e.g. `addendum log POLICY`); "
                               "if git holds a lock (.git/index.lock), wait for it and run again") from None

    def create_tags(self, targets: Sequence[tuple[NewTag, str]]) -> None:
        """Create annotated tags on existing commits, all or none."""
        self._require_new_tags([tag for tag, _ in targets])
        if targets:
            self.identity()
            self._transaction(self._tag_updates(targets), "recreate version tags")

    def _require_new_tags(self, tags: Sequence[NewTag]) -> None:
        for tag in tags:
            require_tag_name(tag.name)
        existing = set(self.git.text("for-each-ref", "--format=%(refname:strip=2)", "refs/tags/").splitlines()) if tags else set()
        for tag in tags:
            if tag.name in existing:
                raise HistoryError(f"tag {tag.name} exists already", f"look at it with: git show {tag.name}")

    def _tag_updates(self, targets: Sequence[tuple[NewTag, str]]) -> list[str]:
        """Annotated tag objects for (tag, commit) pairs, stored at once; the ref updates that create them."""
        if not targets:
            return []
        tagger = self.git.text("var", "GIT_COMMITTER_IDENT")
        bodies = [f"object {commit}\ntype commit\ntag {tag.name}\ntagger {tagger}\n\n{tag.message}\n".encode()
                  for tag, commit in targets]
        object_ids = _store_objects(self.git, "tag", bodies)
        return [f"create refs/tags/{tag.name} {oid}" for (tag, _), oid in zip(targets, object_ids, strict=True)]

    def _transaction(self, updates: Sequence[str], reason: str) -> None:
        transaction = "start\n" + "".join(f"{line}\n" for line in updates) + "prepare\ncommit\n"
        try:
            self.git.run("update-ref", "-m", f"addendum: {reason.splitlines()[0][:200]}", "--stdin", input=transaction.encode())
        except GitFailed as exc:
            raise HistoryError(f"nothing was changed in git: {exc.message}",
                               "HEAD or a tag moved while this ran (another commit landed?); run the command again") from None

    def _stage(self, files: Mapping[str, bytes], index: Mapping[str, str]) -> None:
        """Store the contents as blobs and enter them in the temporary index."""
        object_ids = _store_objects(self.git, "blob", list(files.values()))
        entries = "".join(f"100644 {oid}\t{self.path(name)}\x00" for name, oid in zip(files, object_ids, strict=True))
        self.git.run("update-index", "-z", "--index-info", input=entries.encode("utf-8"), env=index)


def _store_objects(repository: Git, kind: str, contents: Sequence[bytes]) -> list[str]:
    """Write objects into the repository with one `git hash-object`; their ids, in order."""
    with tempfile.TemporaryDirectory(prefix="addendum-objects-") as folder:
        names = []
        for number, content in enumerate(contents):
            names.append(str(Path(folder) / str(number)))
            Path(names[-1]).write_bytes(content)
        listing = "".join(f"{name}\n" for name in names).encode()
        return repository.text("hash-object", "-t", kind, "-w", "--no-filters", "--stdin-paths", input=listing).split()


def open_work_tree(root: Path) -> WorkTree:
    """The git work tree holding the policy repository at `root`, with any commit a killed process left unfinished
    finished first (see WorkTree.commit)."""
    env = _base_environment()
    try:
        top, git_dir = Git(root, env).text("rev-parse", "--show-toplevel", "--absolute-git-dir").splitlines()
    except (GitFailed, ValueError):
        raise HistoryError(f"{root} is not inside a git repository", "run `git init` there (or `addendum init`)") from None
    top_path = Path(top).resolve()
    relative = root.resolve().relative_to(top_path).as_posix()
    work_tree = WorkTree(Git(top_path, env), "" if relative == "." else relative + "/", Path(git_dir))
    work_tree.finish_interrupted_commit()
    return work_tree


def finish_interrupted_commit(root: Path) -> None:
    """Finish a commit a killed process left unfinished in the work tree holding `root` (see WorkTree.commit).

    For readers of the work tree's files (the ledger): costs a few `stat`s, and runs git only when a journal exists."""
    git_dir = _find_git_dir(root)
    if git_dir is not None and (git_dir / JOURNAL_NAME).exists():
        open_work_tree(root)


def _find_git_dir(root: Path) -> Path | None:
    """The git folder of the work tree holding `root`, found as git finds it (no git run); None outside one."""
    start = root.resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            try:
                return _git_folders(folder)[0]
            except (HistoryError, OSError):
                return None
    return None


def is_tracked(repo_root: Path, path: Path) -> bool:
    """Whether git tracks the file at `path` (False outside any work tree): personal data must never be."""
    try:
        work_tree = open_work_tree(repo_root)
        relative = path.resolve().relative_to(work_tree.git.cwd.resolve()).as_posix()
        return bool(work_tree.git.run("ls-files", "-z", "--", relative))  # pathspecs are literal in this environment
    except (HistoryError, ValueError):
        return False


def is_ignored(repo_root: Path, path: Path) -> bool:
    """Whether `git add -A` would leave the file at `path` out: git ignores it (and does not track it), or it lies
    outside the work tree of `repo_root` (True when there is none). Personal data and keys must be."""
    try:
        work_tree = open_work_tree(repo_root)
    except HistoryError:
        return True
    try:
        relative = path.resolve().relative_to(work_tree.git.cwd.resolve()).as_posix()
    except ValueError:
        return True
    try:
        # check-ignore rejects literal pathspecs; "./" keeps a leading ":" from reading as pathspec magic.
        # Exit 1 (not ignored) fails like any other error: either way, refuse.
        work_tree.git.run("check-ignore", "-q", "--", f"./{relative}", env={"GIT_LITERAL_PATHSPECS": "0"})
    except HistoryError:
        return False
    return True

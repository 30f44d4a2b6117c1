"""Reading a policy file's whole history, and `import-history`, on a generated repository of realistic size.

Run on its own: `.venv/bin/python benchmarks/bench_history.py` (or through benchmarks/run.py, which calls `main()`).
Prints medians of several runs and the ratios the targets are stated in: reading every version with our code
against raw `git log` + `git cat-file --batch` (target ≤ 1.5×), and the whole import (target ≤ 5 s).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from addendum.config import open_repo
from addendum.history.importer import import_history
from addendum.history.repository import read_file_history, read_only

COMMITS = 820
POLICY_CHANGES = 90
POLICY_PATH = "content/legal/privacy.md"
RUNS = 9
IDENTITY = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.org",
            "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.org",
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def _git(root: Path, *args: str, input: bytes | None = None) -> bytes:
    env = {**os.environ, **IDENTITY}
    return subprocess.run(["git", *args], cwd=root, env=env, input=input, check=True, capture_output=True).stdout


def policy_text(revision: int) -> str:
    """About 50 KB of policy Markdown; revision n has rewritten paragraph n of its 120."""
    sentence = "We process the personal data you give us only for the purposes described in this section. "
    parts = ["# Privacy policy\n\nThis policy explains how we handle your personal data.\n\n"]
    for index in range(120):
        if index % 6 == 0:
            parts.append(f"## Part {index // 6 + 1}: how we handle data of kind {index}\n\n")
        edited = f" Revised in revision {revision}." if index <= revision % 120 and revision else ""
        parts.append(f"### Paragraph {index}\n\n{sentence * 4}{edited}\n\n")
    return "".join(parts)


def build_repository(root: Path) -> None:
    """COMMITS commits through one `git fast-import`; POLICY_CHANGES of them change the ~50 KB policy file."""
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    change_every = COMMITS // POLICY_CHANGES
    start = datetime(2018, 1, 1, tzinfo=UTC)
    stream = []
    revision = 0
    for number in range(COMMITS):
        when = int((start + timedelta(hours=8 * number)).timestamp())
        if number == 0 or (number % change_every == 0 and revision < POLICY_CHANGES - 1):
            revision += number > 0
            data = policy_text(revision).encode()
            path = POLICY_PATH
        else:
            data = f"<p>page {number}</p>\n".encode()
            path = f"site/page-{number % 40}.html"
        message = f"Commit {number}".encode()
        stream.append(b"commit refs/heads/main\n")
        stream.append(f"committer Bench <bench@example.org> {when} +0000\n".encode())
        stream.append(b"data %d\n%s\n" % (len(message), message))
        stream.append(f"M 100644 inline {path}\n".encode() + b"data %d\n%s\n" % (len(data), data))
    _git(root, "fast-import", "--quiet", input=b"".join(stream))
    _git(root, "checkout", "-q", "main")


def raw_git(source: Path) -> int:
    """The floor: the commits that changed the file from `git log`, their contents from one `git cat-file --batch`."""
    commits = _git(source, "log", "--first-parent", "--format=%H", "HEAD", "--", POLICY_PATH).split()
    requests = b"".join(b"%s:%s\n" % (sha, POLICY_PATH.encode()) for sha in commits)
    output = _git(source, "cat-file", "--batch", input=requests)
    return len(commits) if output else 0


def ours(source: Path) -> int:
    with read_only(source) as repository:
        return len(read_file_history(repository, [POLICY_PATH]))


def show_per_version(source: Path) -> int:
    """The way to avoid, for reference: one `git show COMMIT:PATH` process per version."""
    commits = _git(source, "log", "--first-parent", "--format=%H", "HEAD", "--", POLICY_PATH).decode().split()
    return len([_git(source, "show", f"{sha}:{POLICY_PATH}") for sha in commits])


def whole_import(source: Path, workspace: Path) -> int:
    target = Path(tempfile.mkdtemp(dir=workspace))
    (target / "addendum.toml").write_text("", encoding="utf-8")
    _git(target, "init", "-q")
    _git(target, "add", "-A")
    _git(target, "commit", "-q", "-m", "Start")
    result = import_history(open_repo(target), source, [POLICY_PATH], "privacy", "en")
    return len(result.versions)


def median_seconds(action: Callable[[], int], runs: int = RUNS) -> tuple[float, int]:
    action()  # warm the file-system cache, like any second run
    times, count = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        count = action()
        times.append(time.perf_counter() - started)
    return statistics.median(times), count


def main() -> None:
    os.environ.update(IDENTITY)
    with tempfile.TemporaryDirectory(prefix="addendum-bench-") as folder:
        workspace = Path(folder)
        source = workspace / "website"
        build_repository(source)
        size = len(policy_text(POLICY_CHANGES)) // 1024
        print(f"history of {POLICY_PATH}: {COMMITS} commits, {POLICY_CHANGES} versions of a {size} KB file; "
              f"median of {RUNS} runs")
        floor, versions = median_seconds(lambda: raw_git(source))
        rows = [("raw git log + git cat-file --batch", floor, versions, "")]
        mine, count = median_seconds(lambda: ours(source))
        rows.append(("addendum read_file_history", mine, count, "target <= 1.50x"))
        walk, count = median_seconds(lambda: show_per_version(source), runs=3)
        rows.append(("one git show per version (to avoid)", walk, count, ""))
        imported, count = median_seconds(lambda: whole_import(source, workspace), runs=3)
        print(f"{'':38} {'median':>9} {'versions':>9} {'ratio':>8}")
        for name, seconds, found, note in rows:
            print(f"{name:38} {seconds:8.3f}s {found:9d} {seconds / floor:7.2f}x  {note}")
        verdict = "ok" if imported <= 5 else "over target"
        print(f"{'import-history, parsing included':38} {imported:8.3f}s {count:9d} {'':8}  target <= 5 s: {verdict}")
        print(f"ratio ours / raw git: {mine / floor:.2f}x ({'ok' if mine / floor <= 1.5 else 'over target'})")


if __name__ == "__main__":
    main()

"""Commands killed outright (SIGKILL) at any moment: no worker outlives its parent, and the next command works."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from addendum.processes import folder_lock
from tests_support import MINIMAL_EN, MINIMAL_NL, MINIMAL_POLICY_TOML, run_script

ROUNDS = 10
WORKER_START_SECONDS = 60  # how long planning may take before the first worker appears, on a busy machine
GRACE_SECONDS = 1.0  # how long a worker may outlive its killed parent
SLUGS = ("2018-05-19", "2020-09-01")


def addendum(root: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "addendum", "--repo", str(root), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a command to its end in a process of its own (a hang fails the test instead of stalling it)."""
    return subprocess.run([sys.executable, "-m", "addendum", "--repo", str(root), *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env={**os.environ, **IDENTITY})


def process_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a live process; None when it has ended (a zombie has ended too)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[0], int(fields[1]), int(fields[19])


def workers_of(pid: int) -> set[tuple[int, int]]:
    """(pid, start time) of the processes that `pid` forked as workers: its children running the same command."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return set()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = process_stat(int(entry.name))
        try:
            if stat and stat[1] == pid and (entry / "cmdline").read_bytes() == command:
                found.add((int(entry.name), stat[2]))
        except OSError:
            continue
    return found


def still_running(workers: set[tuple[int, int]]) -> set[tuple[int, int]]:
    return {(pid, start) for pid, start in workers if (stat := process_stat(pid)) is not None and stat[2] == start}


def files_under(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def remove_renders(history: Path, slug: str) -> None:
    """Delete one version's archived files (its sources stay), so that the next run has work to do."""
    for site in (history / "privacy" / slug).iterdir():
        if site.name != "source":
            shutil.rmtree(site)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_archive_workers_die_with_their_killed_parent(shipped: Path) -> None:
    history = shipped / "history"
    moments = random.Random(20240901)
    for round_number in range(ROUNDS):
        remove_renders(history, SLUGS[round_number % 2])
        process = addendum(shipped, "archive", "--jobs", "2")
        try:
            deadline = time.monotonic() + WORKER_START_SECONDS
            workers: set[tuple[int, int]] = set()
            while not workers and process.poll() is None and time.monotonic() < deadline:
                workers = workers_of(process.pid)
                time.sleep(0.02)
            assert workers, f"round {round_number}: no worker started (exit {process.poll()}): {process.stderr and process.stderr.read()!r}"
            time.sleep(moments.uniform(0, 1.5))
            workers |= workers_of(process.pid)
            assert process.poll() is None, f"round {round_number}: the run ended before it could be killed"
        finally:
            process.kill()
            process.wait(30)
        killed = time.monotonic()
        while still_running(workers) and time.monotonic() - killed < GRACE_SECONDS:
            time.sleep(0.01)
        survivors = still_running(workers)
        for pid, _ in survivors:  # the test ends its own strays, whatever it then reports
            os.kill(pid, signal.SIGKILL)
        assert not survivors, f"round {round_number}: workers {survivors} outlived their parent"
        written = files_under(history)
        time.sleep(0.2)
        assert files_under(history) == written, f"round {round_number}: files were written after the workers ended"

    done = finish(shipped, "archive", "--jobs", "2")
    assert done.returncode == 0, done.stderr
    verified = finish(shipped, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert not [name for name in files_under(history) if name.endswith(".tmp")]


def test_a_worker_whose_parent_died_before_it_was_set_up_stops_at_once(tmp_path: Path) -> None:
    """The parent may be killed between fork and the worker's request to die with it: the worker must notice."""
    done = run_script(tmp_path, f"""
import os, sys, time
from pathlib import Path
from addendum.processes import die_with_parent, worker_context

folder = Path({str(tmp_path)!r})

def worker(parent: int) -> None:
    while os.getppid() == parent:  # wait until the parent has gone
        time.sleep(0.01)
    (folder / "before").write_text("x")
    die_with_parent(parent)
    (folder / "after").write_text("x")

worker_context().Process(target=worker, args=(os.getpid(),)).start()
os._exit(0)  # gone without waiting for the worker, as a killed parent is
""")
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 10
    while not (tmp_path / "before").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    assert (tmp_path / "before").exists()
    assert not (tmp_path / "after").exists()


def test_a_second_archive_run_waits_for_the_first_and_then_refuses(run, shipped: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("addendum.processes.LOCK_WAIT_SECONDS", 0.3)
    before = files_under(shipped / "history")
    with folder_lock(shipped / "history", "test"):
        result = run("--repo", shipped, "archive", expect=2)
    assert "`addendum archive` is running already" in result.stderr
    assert files_under(shipped / "history") == before


def test_an_archive_run_removes_what_a_killed_one_left_half_written(run, archived_copy: Path) -> None:
    history = archived_copy / "history"
    leftover = history / "privacy" / "2018-05-19" / "selentic" / "en" / ".policy.pdf.a1b2c3d4.tmp"
    leftover.write_bytes(b"%PDF-1.7 half")
    publishers = history / "privacy" / ".ledger.toml.a1b2c3d4.tmp"  # publish's own: not the archive's to remove
    publishers.write_text("x", encoding="utf-8")
    run("--repo", archived_copy, "archive", "--dry-run")
    assert leftover.exists()
    run("--repo", archived_copy, "archive")
    assert not leftover.exists()
    assert publishers.exists()


# ---------------------------------------------------------------------------------------------------------------
# publish and commit, killed after each of their git calls

KILLER = Path(__file__).resolve().parent / "kill_after_git_call.py"
MAX_GIT_CALLS = 200  # far more than any command makes: a loop that never ends fails instead
VERSION_2 = "terms@2024-02-01"
PUBLISH_2 = ("publish", "terms", "--effective", "2024-02-01", "--published", "2023-02-01",
             "--summary", "Version 2.", "--summary-nl", "Versie 2.", "--material")


IDENTITY = {"GIT_AUTHOR_NAME": "Test Editor", "GIT_AUTHOR_EMAIL": "editor@example.org",
            "GIT_COMMITTER_NAME": "Test Editor", "GIT_COMMITTER_EMAIL": "editor@example.org",
            # dated before the published dates given (publish refuses a published date before its commit)
            "GIT_AUTHOR_DATE": "2018-01-01T12:00:00+00:00", "GIT_COMMITTER_DATE": "2018-01-01T12:00:00+00:00"}


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in IDENTITY.items():
        monkeypatch.setenv(name, value)


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True,
                          env={**os.environ, **IDENTITY}).stdout


def killed_after(calls: int, root: Path, *args: str) -> bool:
    """Run `addendum ARGS` killed by SIGKILL right after its `calls`th git call; False when it ended first. Its
    temporary files go next to the copy: a killed process cannot remove them, and they must not pile up in /tmp."""
    temporary = root.parent / f"{root.name}.tmp"
    temporary.mkdir(exist_ok=True)
    done = subprocess.run([sys.executable, str(KILLER), str(calls), "--repo", str(root), *args], capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, **IDENTITY, "TMPDIR": str(temporary)})
    if done.returncode == -signal.SIGKILL:
        return True
    assert done.returncode == 0, f"after {calls} git calls: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return False


def git_state(root: Path) -> str:
    """What `git status` shows: nothing when the index agrees with HEAD and the work tree with the index."""
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=root, capture_output=True, text=True,
                          check=True).stdout


def tag_exists(root: Path, name: str) -> bool:
    return subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"refs/tags/{name}"], cwd=root, capture_output=True,
                          check=False).returncode == 0


@pytest.fixture(scope="module")
def ready_to_publish(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`terms` published once and archived, then revised (not committed): ready for a commit, then a second version."""
    root = tmp_path_factory.mktemp("kill-publish") / "repo"
    (root / "policies" / "terms").mkdir(parents=True)
    (root / "addendum.toml").write_text("", encoding="utf-8")
    for name, text in (("policy.toml", MINIMAL_POLICY_TOML), ("en.md", MINIMAL_EN), ("nl.md", MINIMAL_NL)):
        (root / "policies" / "terms" / name).write_text(text, encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Terms")
    for args in (("publish", "terms", "--effective", "2024-01-01", "--published", "2023-01-01", "--summary", "Version 1.",
                  "--summary-nl", "Versie 1.", "--material"), ("archive", "--jobs", "1")):
        done = finish(root, *args)
        assert done.returncode == 0, done.stderr
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Archive")
    for language, old, new in (("en", "apply to", "apply only to"), ("nl", "gelden voor", "gelden alleen voor")):
        path = root / "policies" / "terms" / f"{language}.md"
        path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    return root


def each_kill(template: Path, tmp_path: Path, *args: str):  # noqa: ANN201 - yields (calls, repository copy, killed)
    """A fresh copy of `template` for every kill point of `addendum ARGS`: after git call 1, 2, … until it ends by itself."""
    for calls in range(1, MAX_GIT_CALLS):
        root = tmp_path / f"after-{calls}"
        shutil.copytree(template, root, symlinks=True)
        killed = killed_after(calls, root, *args)
        yield calls, root, killed
        if not killed:
            return
    pytest.fail(f"addendum {' '.join(args)} was still running after {MAX_GIT_CALLS} git calls")


@pytest.mark.slow
def test_publish_killed_after_any_git_call_leaves_a_repository_every_command_works_in(run, ready_to_publish: Path,
                                                                                      tmp_path: Path) -> None:
    template = tmp_path / "template"
    shutil.copytree(ready_to_publish, template, symlinks=True)
    git(template, "commit", "-q", "-am", "Revision 2")
    kill_points = 0
    for calls, root, killed in each_kill(template, tmp_path, *PUBLISH_2):
        kill_points += killed
        published = tag_exists(root, VERSION_2)
        where = f"killed after git call {calls}" if killed else "not killed"
        log = run("--repo", root, "log", "terms").stdout  # the first command: it finishes what the kill left
        assert (VERSION_2 in log) == published, f"{where}:\n{log}"
        assert git_state(root) == "", f"{where}: the index or work tree is not as HEAD has them"
        verified = run("--repo", root, "verify", expect=None)
        findings = [line for line in verified.stdout.splitlines() if ": history/" in line or line.startswith(("ledger:", "text:"))]
        assert all(line.startswith("not-archived:") and "2024-02-01" in line for line in findings), f"{where}:\n{verified.stdout}"
        assert verified.exit_code == (1 if published else 0), f"{where}:\n{verified.stdout}"
        again = run("--repo", root, *PUBLISH_2, expect=2 if published else 0)
        if published:
            assert "nothing a reader sees has changed" in again.stderr
        assert tag_exists(root, VERSION_2)
        assert [line for line in run("--repo", root, "log", "terms").stdout.splitlines() if line.startswith(VERSION_2)] != []
        assert git(root, "show", "HEAD:history/terms/ledger.toml").count(f'id = "{VERSION_2}"') == 1
        assert git(root, "log", "--format=%s").count(f"Publish {VERSION_2}") == 1
        assert git_state(root) == "", f"{where}: publishing again left the index or work tree behind HEAD"
    assert kill_points >= 10


@pytest.mark.slow
def test_commit_killed_after_any_git_call_leaves_the_index_as_head_has_it(run, ready_to_publish: Path, tmp_path: Path) -> None:
    for calls, root, _ in each_kill(ready_to_publish, tmp_path, "commit", "terms", "-m", "Say only"):
        committed = "Say only" in git(root, "log", "-1", "--format=%s")
        run("--repo", root, "status", "terms", expect=None)  # any command finishes what the kill left
        state = git_state(root)
        if committed:
            assert state == "", f"killed after git call {calls}: {state}"
        else:
            assert state.split() == ["M", "policies/terms/en.md", "M", "policies/terms/nl.md"], state
            run("--repo", root, "commit", "terms", "-m", "Say only")
        assert git_state(root) == ""

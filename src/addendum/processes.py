"""Worker processes that die with their parent, and a lock that keeps a second run from racing the first one's workers."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterator
from multiprocessing.context import BaseContext
from pathlib import Path

from addendum.errors import UsageError

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# A killed run's workers end within milliseconds; a run that started a moment later waits for them this long.
LOCK_WAIT_SECONDS = 5.0
LOCK_POLL_SECONDS = 0.05
_parent_pid: int | None = None  # set in a worker by die_with_parent; None in a process nobody started for us


def die_with_parent(parent_pid: int) -> None:
    """Make this worker process end the moment its parent does (a pool initializer; the parent passes os.getpid()).

    On Linux the kernel sends SIGKILL when the parent ends, even when it is killed with SIGKILL itself and has no
    chance to stop its workers. The parent may have died before that request was made: then this worker stops at
    once. Elsewhere, `stop_if_orphaned` before each write is the only guard.
    """
    global _parent_pid
    _parent_pid = parent_pid
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)  # the C library this interpreter runs on, which has prctl
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    stop_if_orphaned()


def worker_context() -> BaseContext:
    """How to start worker processes: by fork where the platform has it (Linux), so that each worker is a child of
    this process (a forkserver's workers are the server's children, and would not die with us) and shares the
    run's lock (see folder_lock); elsewhere the platform's default."""
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def parent_alive() -> bool:
    """Whether the process that started this worker still runs (always true outside a worker)."""
    return _parent_pid is None or os.getppid() == _parent_pid


def stop_if_orphaned() -> None:
    """End this worker at once, writing nothing more, when its parent has died (a cheap check before each write).

    An orphan's work has no one to report to, and a new run may be starting on the same files."""
    if not parent_alive():
        os._exit(1)  # not an exception: nothing of this worker may run any more, no finaliser, no write


@contextlib.contextmanager
def folder_lock(folder: Path, what: str, wait: float | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (flock on the folder itself: no lock file to show up in `git status`)
    while the block runs; refuse when another holds it for longer than `wait` seconds (LOCK_WAIT_SECONDS).

    The lock belongs to the open folder, which forked workers share: it stays held until the last of them has
    ended, so a run that starts while an old worker still writes waits for it, or is refused, instead of racing it.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise UsageError(f"cannot open {folder}: {exc.strerror or exc}", "check that it is a folder you may write to") from None
    try:
        deadline = time.monotonic() + (LOCK_WAIT_SECONDS if wait is None else wait)
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise UsageError(f"cannot lock {folder}: {exc.strerror or exc}") from None
                if time.monotonic() >= deadline:
                    raise UsageError(f"{what} is running already: {folder} is locked by another process",
                                     "wait for it to finish, then run again") from None
                time.sleep(LOCK_POLL_SECONDS)
        yield
    finally:
        os.close(descriptor)

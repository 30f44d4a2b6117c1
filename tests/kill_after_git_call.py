"""Test harness: `python kill_after_git_call.py N ARGS…` runs `addendum ARGS…` and kills itself with SIGKILL
right after its Nth git call, as a power cut or `kill -9` would. A run with fewer git calls ends normally."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any


def main() -> None:
    limit = int(sys.argv[1])
    calls = 0

    from addendum.history import repository

    def counted(function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            result = function(*args, **kwargs)
            calls += 1
            if calls == limit:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        return call

    # Every git process the library starts goes through one of these two.
    repository.Git.run = counted(repository.Git.run)  # type: ignore[method-assign]
    repository.read_blobs = counted(repository.read_blobs)

    from addendum.cli import main as addendum

    sys.argv = ["addendum", *sys.argv[2:]]
    addendum()


if __name__ == "__main__":
    main()

"""Running openssl and ssh-keygen: with a deadline, and with what they said when they refuse."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from addendum.errors import SealError

TOOL_TIMEOUT_SECONDS = 30.0
PACKAGES = {"openssl": "openssl", "ssh-keygen": "openssh-client"}


def run_tool(program: str, *args: str | Path, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run `program` with `args`; the result whatever its exit status (callers decide what a refusal means)."""
    found = shutil.which(program)
    if found is None:
        raise SealError(f"{program} is not installed", f"install it (Debian: apt-get install {PACKAGES[program]})")
    try:
        return subprocess.run([found, *map(str, args)], input=input, capture_output=True, timeout=TOOL_TIMEOUT_SECONDS,
                              check=False, start_new_session=True)  # no terminal: a key with a passphrase fails, never waits
    except subprocess.TimeoutExpired:
        raise SealError(f"{program} {args[0]} did not finish within {TOOL_TIMEOUT_SECONDS:g} seconds",
                        "try again; if it persists, run the command by hand to see why") from None


def said(done: subprocess.CompletedProcess[bytes]) -> str:
    """The first meaningful line a tool wrote, for an error message."""
    text = (done.stderr or done.stdout).decode("utf-8", "replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else f"exit status {done.returncode}"

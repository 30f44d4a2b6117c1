"""Operations the commands call: one function per command, callable from Python without click."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from .check import require_valid
from .config import Repo
from .files import write_atomic
from .policy import load_policy
from .render import Format
from .resolve import resolve
from .versions import render_snapshot_text


def render_document(repo: Repo, policy_id: str, site_id: str | None, language: str | None, fmt: Format,
                    output: Path | None = None, last_changed_on: date | None = None) -> str:
    """The working tree's text for one site and language; refuses a policy with errors; writes atomically."""
    policy = load_policy(repo.root, policy_id)
    require_valid(policy)
    resolved = resolve(policy, site_id or policy.default_site, language or policy.default_language)
    text = render_snapshot_text(repo, resolved, fmt, last_changed_on=last_changed_on)
    if output is not None:
        write_atomic(output, text)
    return text

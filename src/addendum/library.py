"""Operations the commands call: one function per command, callable from Python without click."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from .check import require_valid
from .config import Repo
from .files import write_atomic
from .ledger import last_changed, read_ledger
from .policy import load_policy
from .render import Format, render_policy
from .resolve import resolve


def render_document(repo: Repo, policy_id: str, site_id: str | None, language: str | None, fmt: Format,
                    output: Path | None = None, last_changed_on: date | None = None) -> str:
    """The working tree's text for one site and language; refuses a policy with errors; writes atomically."""
    policy = load_policy(repo.root, policy_id)
    require_valid(policy)
    resolved = resolve(policy, site_id or policy.default_site, language or policy.default_language)
    when = last_changed_on or last_changed(repo.history_dir, policy_id, resolved.site, resolved.language, resolved.content_hash())
    earlier = [v.effective for v in read_ledger(repo.history_dir, policy_id) if when is None or v.effective < when]
    text = render_policy(resolved, fmt, when, repo.templates_dir, earlier_versions=earlier[::-1])
    if output is not None:
        write_atomic(output, text)
    return text

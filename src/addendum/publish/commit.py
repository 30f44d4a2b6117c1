"""Committing a policy: check it, then commit its folder alone, with trailers naming the changed sections."""

from __future__ import annotations

from dataclasses import dataclass

from addendum.config import Repo
from addendum.errors import HistoryError, UsageError
from addendum.history.repository import NothingToCommit, open_work_tree
from addendum.history.versions import source_texts, working_files
from addendum.policy.check import require_valid
from addendum.policy.model import load_policy
from addendum.publish.changes import SourceChange, source_changes


@dataclass(frozen=True)
class CommitResult:
    commit: str
    message: str
    changes: tuple[SourceChange, ...]



def commit_policy(repo: Repo, policy_id: str, message: str, *, dry_run: bool = False) -> CommitResult:
    """Check the policy, then commit its folder alone, with trailers naming the policy and the changed sections."""
    policy = load_policy(repo.root, policy_id)
    require_valid(policy)
    if not message.strip():
        raise UsageError("the commit message is empty", 'say what changed and why: -m "Name the new payment provider"')
    work_tree = open_work_tree(repo.root)
    head = work_tree.head()
    committed = work_tree.files_at(head, f"policies/{policy_id}") if head else {}
    changes = source_changes(source_texts(committed), working_files(repo, policy_id))
    sections = list(dict.fromkeys(c.section for c in changes if c.section))
    trailers = [f"Policy: {policy_id}"] + ([f"Sections: {', '.join(sections)}"] if sections else [])
    full_message = message.strip() + "\n\n" + "\n".join(trailers) + "\n"
    if dry_run:
        return CommitResult("", full_message, tuple(changes))
    try:
        commit = work_tree.commit(full_message, add=[f"policies/{policy_id}"])
    except NothingToCommit:
        raise HistoryError(f"nothing to commit: policies/{policy_id} is as the last commit has it",
                           "edit the policy first; `addendum log` shows what is not yet published") from None
    return CommitResult(commit, full_message, tuple(changes))

"""Publishing from a form: every gate that would refuse, shown before the button is pressed; then the CLI's publish."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from addendum.compare.classify import FIRST_VERSION, assess
from addendum.config import Repo
from addendum.errors import AddendumError, UsageError
from addendum.history.ledger import PublishedVersion
from addendum.history.versions import load_version, published_versions
from addendum.operations.webhooks import announce_published
from addendum.policy.model import load_policy
from addendum.publish.commit import CommitResult, commit_policy
from addendum.publish.gates import GateDecision, gate_refusals, publish_gated
from addendum.publish.record import CLASSIFICATIONS, publish


@dataclass(frozen=True)
class PublishRequest:
    """What the editor asks for, as the CLI's options: None where the form leaves a field empty."""

    effective: date | None
    classification: str | None
    summaries: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""
    published: date | None = None
    urgent: bool = False
    allow_stale: bool = False


@dataclass(frozen=True)
class Refusal:
    """One reason the version would not be published, and the way out."""

    message: str
    hint: str


@dataclass(frozen=True)
class PublishPreview:
    """What pressing the button would do: the version it would record, or every refusal; and the rules' suggestion."""

    version: PublishedVersion | None
    refusals: tuple[Refusal, ...]
    warnings: tuple[str, ...]  # what is published with a visible gap: "site/lang §section shows [to be provided: …]"
    suggested: str
    reasons: tuple[str, ...]
    languages: tuple[str, ...]
    default_language: str
    earliest_material: date  # the first effective date a material version may have, published today


def _refusal(error: AddendumError) -> Refusal:
    return Refusal(error.format().removeprefix("error: ").split("\n  ", 1)[0], error.hint)


def preview_publication(repo: Repo, policy_id: str, request: PublishRequest, today: date | None = None) -> PublishPreview:
    """Run every check of `addendum publish` without recording anything: the version's own (committed, valid, changed,
    dates in order) and each gate (classification, notice period, stale translations), all reported together."""
    today = today or date.today()
    published = request.published or today
    policy = load_policy(repo.root, policy_id)
    refusals: list[Refusal] = []
    if request.effective is None:
        refusals.append(Refusal("no effective date", "choose the day the version takes effect"))
    if request.classification not in CLASSIFICATIONS:
        refusals.append(Refusal("no classification", "choose material (readers are told before it takes effect) or editorial"))
    effective = request.effective or published + timedelta(days=policy.notice_days)
    classification = request.classification if request.classification in CLASSIFICATIONS else "material"
    version: PublishedVersion | None = None
    try:
        version = publish(repo, policy_id, effective=effective, published=published, classification=classification,
                          summaries=request.summaries, reason=request.reason, today=today, dry_run=True)
    except AddendumError as exc:
        refusals.append(_refusal(exc))
    versions = published_versions(repo, policy_id)
    previous = load_version(repo, versions[-1]) if versions else None
    decision, gates = gate_refusals(previous, policy, classification=classification, reason=request.reason,
                                    effective=effective, published=published, urgent=request.urgent,
                                    allow_stale=request.allow_stale)
    if request.classification in CLASSIFICATIONS:
        refusals.extend(_refusal(gate) for gate in gates)
    return PublishPreview(version if not refusals else None, tuple(refusals), decision.placeholders, decision.suggested, decision.reasons,
                          policy.languages, policy.default_language, published + timedelta(days=policy.notice_days))


def default_request(repo: Repo, policy_id: str, today: date | None = None) -> PublishRequest:
    """The form as it first appears: the class the rules suggest, and the earliest effective date that class allows."""
    today = today or date.today()
    policy = load_policy(repo.root, policy_id)
    versions = published_versions(repo, policy_id)
    assessment = assess(load_version(repo, versions[-1]), policy) if versions else FIRST_VERSION
    material = assessment.level == "material"
    effective = today + timedelta(days=policy.notice_days) if material and versions else today
    return PublishRequest(effective, "material" if material else "editorial")


def publish_request(repo: Repo, policy_id: str, request: PublishRequest) -> tuple[PublishedVersion, GateDecision]:
    """Publish as `addendum publish` does (same gates, same ledger entry, same commit and tag)."""
    if request.effective is None or request.classification is None:
        raise UsageError("publishing needs an effective date and a classification", "fill in both fields of the form")
    version, decision = publish_gated(repo, policy_id, effective=request.effective, published=request.published,
                                      classification=request.classification, summaries=request.summaries,
                                      reason=request.reason, urgent=request.urgent, allow_stale=request.allow_stale)
    # Emitted only: the server's background task delivers it, so the form answers at once.
    announce_published(repo, version, time_limit=0)
    return version, decision


def commit_changes(repo: Repo, policy_id: str, message: str) -> CommitResult:
    """Commit the policy's folder alone, after the check, as `addendum commit` does."""
    return commit_policy(repo, policy_id, message)

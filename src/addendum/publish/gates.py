"""The gates a version passes before it is published: classification, notice period, stale translations, visible gaps."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from addendum.compare.classify import FIRST_VERSION, assess
from addendum.config import Repo
from addendum.errors import UsageError
from addendum.history.ledger import PublishedVersion
from addendum.history.versions import load_version, published_versions
from addendum.policy.model import Policy, load_policy
from addendum.policy.resolve import shown_markers
from addendum.publish.parity import StaleTranslation, stale_translations
from addendum.publish.record import publish, publishing_commit


@dataclass(frozen=True)
class GateDecision:
    """What the rules suggested and what the editor decided; `record` goes into the ledger entry."""

    suggested: str
    reasons: tuple[str, ...]
    stale: tuple[StaleTranslation, ...]
    record: dict[str, Any]
    placeholders: tuple[str, ...] = ()  # "site/lang §section shows [to be provided: …]": published with a visible gap


def _bullets(lines: list[str] | tuple[str, ...], limit: int = 8) -> str:
    shown = [f"  - {line}" for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"  - … and {len(lines) - limit} more")
    return "\n".join(shown)


def _refused(refusals: list[UsageError]) -> UsageError:
    """One error for every gate that refused: alone as it is, or each with its own way out."""
    if len(refusals) == 1:
        return refusals[0]
    listed = "".join("\n  - " + r.message.replace("\n", "\n  ") + "\n    to fix: " + r.hint for r in refusals)
    return UsageError(f"{len(refusals)} gates refuse this version:{listed}",
                      "fix each, or override it with the option named (every override is recorded in the ledger)")


def gate_publication(old: Policy | None, new: Policy, *, classification: str, reason: str, effective: date,
                     published: date, urgent: bool = False, allow_stale: bool = False,
                     committed: tuple[str, date] | None = None, backdate: bool = False, strict: bool = False) -> GateDecision:
    """Refuse (UsageError) what the rules forbid without an explicit, recorded override: every gate that refuses,
    in one error, so that a publication is not turned down one gate per attempt."""
    decision, refusals = gate_refusals(old, new, classification=classification, reason=reason, effective=effective,
                                       published=published, urgent=urgent, allow_stale=allow_stale, strict=strict)
    refusals.extend(_backdate_refusals(published, committed, backdate, reason))
    if committed is not None and published < committed[1]:
        decision.record.update({"backdated": True, "commit_date": committed[1].isoformat()})
    if refusals:
        raise _refused(refusals)
    return decision


def _backdate_refusals(published: date, committed: tuple[str, date] | None, backdate: bool, reason: str) -> list[UsageError]:
    """A published date earlier than the commit it publishes is a claim that readers were told before the text
    existed; it starts the notice period, so it needs --backdate --reason (both recorded)."""
    if committed is None or published >= committed[1]:
        return []
    commit, day = committed
    if not backdate:
        return [UsageError(f"the published date {published.isoformat()} is earlier than the commit it publishes "
                           f"({commit[:12]}, committed on {day.isoformat()}); the published date starts the notice period",
                           f"publish with --published {day.isoformat()} or later, or with --backdate --reason \"…\" "
                           "when it was announced earlier (recorded in the ledger)")]
    if not reason.strip():
        return [UsageError("--backdate needs a --reason", "say when and how the version was announced; the reason is recorded in the ledger")]
    return []


def gate_refusals(old: Policy | None, new: Policy, *, classification: str, reason: str, effective: date,
                  published: date, urgent: bool = False, allow_stale: bool = False,
                  strict: bool = False) -> tuple[GateDecision, list[UsageError]]:
    """The decision the gates would record, and every gate that refuses it (each with its own way out): what a
    publish form shows before the button is pressed."""
    assessment = FIRST_VERSION if old is None else assess(old, new)
    suggested = assessment.level
    material = classification == "material"
    refusals: list[UsageError] = []
    if urgent and not reason.strip():
        refusals.append(UsageError("--urgent needs a --reason",
                                   "say why the notice period cannot be kept; the reason is recorded in the ledger"))
    if classification == "editorial" and suggested == "material" and not reason.strip():
        refusals.append(UsageError(
            "the rules suggest this version is material, but it is being published as editorial\n"
            + _bullets(assessment.reasons),
            "publish with --material, or keep --editorial and explain why with --reason \"…\" (both are recorded)"))
    notice = timedelta(days=new.notice_days)
    if material and old is not None and effective - published < notice and not urgent:
        earliest = published + notice
        refusals.append(UsageError(
            f"a material change takes effect on {effective.isoformat()}, {(effective - published).days} day(s) after it is "
            f"published ({published.isoformat()}); policy {new.id} requires {new.notice_days} days' notice",
            f"set --effective {earliest.isoformat()} or later, or publish with --urgent --reason \"…\" (recorded)"))
    stale = tuple(stale_translations(old, new)) if material else ()
    if stale and not allow_stale:
        refusals.append(UsageError(
            "a material version in which some translations did not change along:\n" + _bullets([s.describe() for s in stale]),
            "update those translations and commit them, or publish with --allow-stale (recorded)"))
    placeholders = tuple(visible_placeholders(new))
    if placeholders and strict:
        refusals.append(UsageError(
            "readers of some sites would see a value that is not provided yet:\n" + _bullets(list(placeholders)),
            "set those values under [sites.SITE] in policy.toml and remove them from pending, or publish without --strict"))
    record: dict[str, Any] = {"suggested": suggested, "reasons": list(assessment.reasons)}
    if placeholders:
        record["placeholders"] = list(placeholders)
    if urgent:
        record["urgent"] = True
    if stale:
        record["allow_stale"] = True
        record["stale"] = [s.describe() for s in stale]
    return GateDecision(suggested, assessment.reasons, stale, record, placeholders), refusals


def visible_placeholders(policy: Policy) -> Iterator[str]:
    """Every site × language text of the policy that shows a pending value's marker, section by section."""
    for site_id in policy.sites:
        for language in policy.languages:
            for section, shown in shown_markers(policy, site_id, language):
                yield f"{site_id}/{language} {section.ref} shows {', '.join(shown)}"


def publish_gated(repo: Repo, policy_id: str, *, effective: date, published: date | None, classification: str,
                  summaries: Mapping[str, str], reason: str = "", urgent: bool = False, allow_stale: bool = False,
                  dry_run: bool = False, backdate: bool = False, strict: bool = False) -> tuple[PublishedVersion, GateDecision]:
    """Publish after the gates: the version's own checks first, then classification, notice period and parity."""
    published = published or date.today()
    arguments: dict[str, Any] = {"effective": effective, "published": published, "classification": classification,
                                 "summaries": summaries, "reason": reason}
    publish(repo, policy_id, **arguments, dry_run=True)
    versions = published_versions(repo, policy_id)
    previous = load_version(repo, versions[-1]) if versions else None
    decision = gate_publication(previous, load_policy(repo.root, policy_id), classification=classification, reason=reason,
                                effective=effective, published=published, urgent=urgent, allow_stale=allow_stale,
                                committed=publishing_commit(repo, policy_id), backdate=backdate, strict=strict)
    return publish(repo, policy_id, **arguments, extra=decision.record, dry_run=dry_run), decision

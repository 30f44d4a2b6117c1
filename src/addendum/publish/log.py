"""The version log: published versions newest first, the one in force, and what is not yet published."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from addendum.config import Repo
from addendum.errors import UsageError
from addendum.history.ledger import PublishedVersion
from addendum.history.versions import InForce, in_force, in_force_periods, published_versions, verified_policy, version_files, working_files
from addendum.policy.model import load_policy
from addendum.publish.changes import SourceChange, source_changes
from addendum.publish.record import commit_dates
from addendum.templates import long_date

MAX_LOGGED_REASONS = 8


@dataclass(frozen=True)
class VersionLog:
    """The published versions of a policy, newest first, and what has changed since the latest."""

    policy_id: str
    today: date
    versions: tuple[PublishedVersion, ...]
    in_force: PublishedVersion | None
    since: PublishedVersion | None
    unpublished: tuple[SourceChange, ...]
    default_language: str
    locales: Mapping[str, str]  # every language of the policy, in its order, to its Babel locale
    # version id → (suggested class, reasons), from the ledger or worked out again for versions that lack them
    suggestions: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    # version id → the day its text was committed, where git has the commit
    committed: Mapping[str, date] = field(default_factory=dict)

    def backdated(self, version: PublishedVersion) -> date | None:
        """The day the version's text was committed, when its published date is earlier: it was back-dated (the
        ledger keeps what was recorded; this is worked out from the data, for every version alike)."""
        day = self.committed.get(version.id)
        return day if day is not None and version.published < day else None

    def lines(self, language: str | None = None) -> list[str]:
        """The log as terminal lines: dates and summaries in `language` (default: the policy's default language)."""
        language = language or self.default_language
        if language not in self.locales:
            raise UsageError(f"policy {self.policy_id} has no language {language!r}",
                             f"its languages are: {', '.join(self.locales)}")
        locale = self.locales[language]
        width = max((len(v.id) for v in self.versions), default=0)
        status_width = max([10, *(len(self.status(v)) for v in self.versions)])
        periods = self.periods
        out = []
        for version in self.versions:
            out.append(f"{version.id:<{width}}  {self.status(version):<{status_width}}  effective {long_date(version.effective, locale)}"
                       f" · published {long_date(version.published, locale)} · {version.classification}")
            period = periods[version.id]
            if period.successor is not None and period.never_in_force:
                out.append(f"    replaced by {period.successor.id} before it took effect")
            elif period.successor is not None and period.until is not None and period.until < self.today:
                out.append(f"    in force until {long_date(period.until, locale)}, superseded by {period.successor.id}")
            backdated = self.backdated(version)
            if backdated is not None:
                out.append(f"    back-dated: published {version.published.isoformat()}, but its text was committed on "
                           f"{backdated.isoformat()} ({version.commit[:12]})"
                           + (" with --backdate" if version.extra.get("backdated") else ""))
            summary = version.summaries.get(language) or version.summaries.get(self.default_language, "")
            out.append(f"    {summary}")
            if version.reason:
                out.append(f"    reason: {version.reason}")
            suggested, reasons = self.suggestions.get(version.id, ("", ()))
            if suggested:
                out.append(f"    suggested: {suggested}")
                out.extend(f"      {reason}" for reason in reasons[:MAX_LOGGED_REASONS])
                if len(reasons) > MAX_LOGGED_REASONS:
                    out.append(f"      … and {len(reasons) - MAX_LOGGED_REASONS} more (addendum changelog {self.policy_id})")
        if self.since is None:
            sections = {c.section for c in self.unpublished if c.section}
            out.append(f"Not published yet ({len(sections)} sections). Publish with: addendum publish {self.policy_id} "
                       "--effective YYYY-MM-DD --summary TEXT --material")
        elif not self.unpublished:
            out += ["", f"No unpublished changes since {self.since.id}."]
        else:
            out += ["", f"Unpublished changes since {self.since.id}:"]
            out.extend(f"  {change.describe()}" for change in self.unpublished)
        return out

    def _suggestion_json(self, version: PublishedVersion) -> dict[str, Any]:
        suggested, reasons = self.suggestions.get(version.id, ("", ()))
        return {"suggested": suggested, "reasons": list(reasons)} if suggested else {}

    def _backdate_json(self, version: PublishedVersion) -> dict[str, Any]:
        day = self.backdated(version)
        return {"backdated": day is not None, **({"commit_date": day.isoformat()} if day else {})}

    def status(self, version: PublishedVersion) -> str:
        if version == self.in_force:
            return "in force"
        if version.effective > self.today:
            return "upcoming"
        return "never in force" if self.periods[version.id].never_in_force else "superseded"

    @property
    def periods(self) -> dict[str, InForce]:
        """Each version's time in force, by id (a `.1` replaced by a `.2` before their date was never in force)."""
        return {period.version.id: period for period in in_force_periods(self.versions[::-1])}

    def _period_json(self, period: InForce) -> dict[str, Any]:
        return {"in_force_until": period.until.isoformat() if period.until else None,
                "superseded_by": period.successor.id if period.successor else None}

    def as_json(self) -> dict[str, Any]:
        periods = self.periods
        return {
            "policy": self.policy_id,
            "today": self.today.isoformat(),
            "versions": [{**version_json(v), "status": self.status(v), **self._period_json(periods[v.id]),
                          **self._suggestion_json(v), **self._backdate_json(v)} for v in self.versions],
            "unpublished": {"since": self.since.id if self.since else None,
                            "changes": [c.as_json() for c in self.unpublished]},
        }




def version_log(repo: Repo, policy_id: str, today: date | None = None) -> VersionLog:
    """Published versions newest first, the one in force today, and the changes not yet published."""
    today = today or date.today()
    versions = published_versions(repo, policy_id)
    latest = versions[-1] if versions else None
    working = working_files(repo, policy_id)
    before: dict[str, str] = {}
    if latest is not None:
        before, where = version_files(repo, latest)
        policy = verified_policy(latest, before, where)
    else:
        policy = load_policy(repo.root, policy_id)
    current, _ = in_force(repo, policy_id, today)
    dates = commit_dates(repo, [v.commit for v in versions])
    return VersionLog(policy_id, today, tuple(reversed(versions)), current, latest, tuple(source_changes(before, working)),
                      policy.default_language, {language: policy.locale(language) for language in policy.languages},
                      committed={v.id: dates[v.commit] for v in versions if v.commit in dates})


def version_json(version: PublishedVersion) -> dict[str, Any]:
    return {"id": version.id, "effective": version.effective.isoformat(), "published": version.published.isoformat(),
            "classification": version.classification, "reason": version.reason, "author": version.author,
            "commit": version.commit, "summary": version.summaries, "hashes": version.hashes,
            "extra": _jsonable(version.extra)}


def _jsonable(value: Any) -> Any:
    """TOML values as JSON ones: dates and date-times as ISO 8601 text."""
    if isinstance(value, date):  # datetime is a date too
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value

"""Webhook events of the repository: what a publish, a notice run and an effective date say, emitted once and delivered."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from addendum.config import Repo
from addendum.errors import AddendumError, UsageError
from addendum.history.ledger import PublishedVersion
from addendum.history.versions import find_version, known_policy_ids, published_versions
from addendum.notify.content import archive_links
from addendum.notify.http import HttpLimits
from addendum.notify.store import Store, _sqlite_file, database_url, open_store, utcnow
from addendum.notify.webhooks import (
    DeliverOptions,
    DeliverReport,
    Event,
    Secrets,
    deliver,
    emit,
    emitted_keys,
    first_endpoint_at,
    load_secrets,
)
from addendum.policy.model import load_policy


def secret_file(repo: Repo) -> Path:
    return repo.path(str(repo.setting("webhooks.secret_file")))


@dataclass(frozen=True)
class HookState:
    store: Store
    secrets: Secrets


@contextmanager
def open_hooks(repo: Repo, database: str | None = None) -> Iterator[HookState]:
    """The state store and the webhook secrets; closed on leaving."""
    store = open_store(repo, database)
    try:
        yield HookState(store, load_secrets(secret_file(repo), repo.root))
    finally:
        store.dispose()


def store_exists(repo: Repo, database: str | None = None) -> bool:
    """Whether there is a state store to hold endpoints (a SQLite file not made yet holds none: nothing is created)."""
    url = database_url(repo, database)
    if not url.startswith("sqlite"):
        return True
    file = _sqlite_file(repo, url)
    return file is None or file.exists()


def require_site(repo: Repo, site_id: str) -> str:
    """A site some policy of the repository declares, else a UsageError naming the ones there are."""
    known = sorted({site for policy_id in repo.policy_ids() for site in load_policy(repo.root, policy_id).sites})
    if site_id not in known:
        raise UsageError(f"no policy has a site {site_id!r}", f"the sites in policy.toml files: {', '.join(known) or 'none'}")
    return site_id


def deliver_options(repo: Repo, time_limit: float | None = None) -> DeliverOptions:
    limits = HttpLimits(float(repo.setting("webhooks.timeout")), float(repo.setting("webhooks.deadline")),
                        int(repo.setting("webhooks.response_bytes")))
    return DeliverOptions(limits, int(repo.setting("webhooks.max_attempts")), float(repo.setting("webhooks.retry_delay")),
                          time_limit, float(repo.setting("notify.heartbeat_interval")))


def version_data(repo: Repo, version: PublishedVersion) -> dict[str, Any]:
    """What every version event says of the version (docs/webhooks.md)."""
    versions = published_versions(repo, version.policy_id)
    earlier = [v for v in versions if v.id != version.id and (v.effective, v.id) < (version.effective, version.id)]
    previous = earlier[-1] if earlier else None
    base = str(repo.setting("archive.base_url"))
    links: dict[str, dict[str, str]] = {}
    if base:
        for key in sorted(version.hashes):
            site_id, language = key.split("/", 1)
            found = archive_links(base, version, previous, site_id, language)
            links[key] = {"version": found.new, "redline": found.redline, "changelog": found.changelog}
    # The site × language texts that differ from the previous version's (every one, for a first version).
    changed = [key for key in sorted(version.hashes) if previous is None or previous.hashes.get(key) != version.hashes[key]]
    return {"policy": version.policy_id, "version": version.id, "effective": version.effective.isoformat(),
            "published": version.published.isoformat(), "class": version.classification,
            "previous": previous.id if previous else None, "summary": dict(sorted(version.summaries.items())),
            "sites": _sites(version), "changed": changed, "content_hashes": dict(sorted(version.hashes.items())),
            "links": links}


def _sites(version: PublishedVersion) -> list[str]:
    return sorted({key.split("/", 1)[0] for key in version.hashes})


def version_event(repo: Repo, kind: str, version: PublishedVersion) -> Event:
    return Event(f"{kind}:{version.id}", kind, version_data(repo, version), tuple(_sites(version)))


def notices_event(version: PublishedVersion, run: Mapping[str, int], totals: Mapping[str, int], outstanding: int) -> Event:
    """A notice run has finished: what it did, and where the version's notices stand now."""
    data = {"policy": version.policy_id, "version": version.id, "class": version.classification,
            "effective": version.effective.isoformat(), "run": dict(run), "notices": dict(sorted(totals.items())),
            "outstanding": outstanding, "complete": outstanding == 0}
    return Event(f"notices.finished:{version.id}:{utcnow().isoformat()}", "notices.finished", data, tuple(_sites(version)))


@dataclass
class Announcement:
    """What emitting and delivering came to; `problem` when the state store could not be used (the caller's work
    stands: the events are emitted by the next `addendum tick`)."""

    queued: int = 0
    report: DeliverReport | None = None
    problem: str = ""
    events: list[str] = field(default_factory=list)


def announce(repo: Repo, events: list[Event], database: str | None = None, time_limit: float | None = None) -> Announcement:
    """Emit `events` (each once) and deliver what is due for at most `time_limit` seconds (default
    webhooks.delivery_time). Never raises: publish and notify must not fail because a receiver is down."""
    result = Announcement()
    if not store_exists(repo, database):
        return result
    limit = float(repo.setting("webhooks.delivery_time")) if time_limit is None else time_limit
    try:
        with open_hooks(repo, database) as hooks:
            for event in events:
                queued = emit(hooks.store, event)
                if queued:
                    result.queued += queued
                    result.events.append(event.type)
            if result.queued and limit > 0:
                result.report = deliver(hooks.store, hooks.secrets, deliver_options(repo, limit))
    except AddendumError as exc:
        result.problem = exc.format().removeprefix("error: ")
    return result


def announce_published(repo: Repo, version: PublishedVersion, time_limit: float | None = None) -> Announcement:
    """After a publish: version.published to every endpoint listening, delivered within `time_limit` seconds
    (default webhooks.delivery_time; 0: emitted only, for the next `webhooks deliver` or serve's background task)."""
    try:
        event = version_event(repo, "version.published", version)
    except AddendumError as exc:
        return Announcement(problem=exc.format().removeprefix("error: "))
    return announce(repo, [event], time_limit=time_limit)


def announce_notices(repo: Repo, policy_id: str, version_id: str, run: Mapping[str, int], totals: Mapping[str, int],
                     outstanding: int, database: str | None = None) -> Announcement:
    """After a notice run: notices.finished, delivered within webhooks.delivery_time."""
    try:
        event = notices_event(find_version(repo, policy_id, version_id), run, totals, outstanding)
    except AddendumError as exc:
        return Announcement(problem=exc.format().removeprefix("error: "))
    return announce(repo, [event], database)


@dataclass
class TickReport:
    emitted: list[str] = field(default_factory=list)  # event keys
    queued: int = 0
    report: DeliverReport | None = None


def due_events(repo: Repo, store: Store, today: date) -> list[Event]:
    """Every version event that is due and not emitted yet: version.effective for each announced version whose
    effective date has come, and a version.published that a publish could not emit. Nothing from before the first
    endpoint was added: a new receiver is not told the whole history."""
    since = first_endpoint_at(store)
    if since is None:
        return []
    start = since.date()
    done = emitted_keys(store, "version.")
    events = []
    for policy_id in known_policy_ids(repo):
        for version in published_versions(repo, policy_id):
            if start <= version.published <= today and f"version.published:{version.id}" not in done:
                events.append(version_event(repo, "version.published", version))
            if version.published <= today and start <= version.effective <= today and f"version.effective:{version.id}" not in done:
                events.append(version_event(repo, "version.effective", version))
    return events


def tick(repo: Repo, database: str | None = None, today: date | None = None, time_limit: float | None = None) -> TickReport:
    """Emit what is due (each event once, whoever runs tick and however often), then deliver what is due."""
    result = TickReport()
    with open_hooks(repo, database) as hooks:
        for event in due_events(repo, hooks.store, today or date.today()):
            queued = emit(hooks.store, event)
            if queued is not None:
                result.emitted.append(event.key)
                result.queued += queued
        result.report = deliver(hooks.store, hooks.secrets, deliver_options(repo, time_limit))
    return result

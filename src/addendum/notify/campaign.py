"""Notifying one published version: who must be told, queueing each notice once, canaries, previews and the record."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select

from addendum.config import Repo
from addendum.errors import NotifyError, UsageError
from addendum.files import write_atomic
from addendum.notify.bounces import envelope_for, return_path, suppressed_addresses
from addendum.notify.content import (
    NoticeContent,
    NoticePlan,
    SettingProblem,
    base_url_problems,
    notice_content,
    notice_timing,
    plan_notice,
    require_base_url,
    settings_error,
    untrue_links,
    untrue_links_error,
)
from addendum.notify.dkim import Signer, signer_for
from addendum.notify.message import SUBSCRIBER, BuiltMessage, MessageFactory, Recipient, Sender, sender_for, sender_problems
from addendum.notify.outbox import (
    OUTSTANDING_STATES,
    Lease,
    SendOptions,
    SendReport,
    UnknownPolicy,
    count_due,
    next_retry,
    recover_interrupted,
)
from addendum.notify.smtp import Delivery, SmtpConnection, SmtpSettings, smtp_settings
from addendum.notify.state import State, open_state
from addendum.notify.store import ALL_POLICIES, Store, attempts, batched_rows, insert_outbox_rows, open_store, outbox, subscribers, subscriptions, utcnow
from addendum.notify.tokens import require_ignored
from addendum.notify.workers import SendJob, one_sender, require_workers, send
from addendum.progress import NoProgress, Progress

QUEUE_BATCH = 200
RECIPIENT_WINDOW = 500  # subscribers read at a time while queueing
CANARY_UID = "0" * 32


@dataclass(frozen=True)
class NotifyOptions:
    force: bool = False
    dry_run: bool = False
    preview_dir: Path | None = None
    canary: tuple[str, ...] = ()
    attach_redline: bool = False
    unknown: UnknownPolicy = "retry"
    rate_per_second: float | None = None
    connections: int | None = None
    database_url: str | None = None
    workers: int = 1
    urgent: bool = False  # send inside the notice period (with a reason)
    late: bool = False  # send on or after the effective date (with a reason): the notice says the change took effect
    reason: str = ""
    today: date | None = None  # the day of sending (None: today on this machine's clock)
    sites: tuple[str, ...] = ()  # notify only the readers of these sites (default: every site the version changed)


@dataclass(frozen=True)
class Audience:
    """Who this run would reach: shown before anything is sent, for confirmation."""

    version_id: str
    classification: str
    affected_sites: tuple[str, ...]
    new_recipients: int
    queued_due: int
    held_unknown: int
    already_sent: int

    @property
    def to_send(self) -> int:
        return self.new_recipients + self.queued_due


@dataclass
class NotifyReport:
    audience: Audience
    mode: str  # send | dry-run | preview
    rendered: int = 0
    queued: int = 0
    previews: list[Path] = field(default_factory=list)
    canaries: list[tuple[str, str, Delivery]] = field(default_factory=list)
    declined: bool = False
    send: SendReport | None = None
    totals: dict[str, int] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)  # per state, rows other senders hold (claimed) at the end
    next_retry_at: datetime | None = None

    @property
    def outstanding(self) -> dict[str, int]:
        """What of the version is still owed to someone after this run, per outbox state ("new": not queued yet)."""
        owed = {state: self.totals[state] for state in OUTSTANDING_STATES if self.totals.get(state)}
        if self.declined and self.audience.new_recipients:
            owed["new"] = self.audience.new_recipients
        return owed


def recipients_query(plan: NoticePlan, only_new: bool = True, distinct: bool = True) -> Any:
    """Subscribers of the policy on an affected site, one row per (person, site); account holders even if unsubscribed;
    nobody whose address bounced (or complained) notify.bounce_limit times. Without `distinct`, a person subscribed
    to the policy and to every policy on one site comes twice, side by side in (person, site) order."""
    s, link = subscribers, subscriptions
    query = (select(s.c.id.label("id"), link.c.site_id.label("site_id"), s.c.uid, s.c.email, s.c.name, s.c.language, s.c.audience)
             .select_from(s.join(link, link.c.subscriber_id == s.c.id))
             .where(link.c.policy_id.in_([plan.policy_id, ALL_POLICIES]), link.c.site_id.in_(plan.affected_sites),
                    or_(s.c.audience == "account", s.c.unsubscribed_at.is_(None)),
                    s.c.email.not_in(suppressed_addresses(int(plan.repo.setting("notify.bounce_limit"))))))
    if distinct:
        query = query.distinct()
    if only_new:
        queued = select(outbox.c.id).where(outbox.c.version_id == plan.version.id, outbox.c.recipient == s.c.email,
                                           outbox.c.site_id == link.c.site_id).exists()
        query = query.where(~queued)
    return query


def _count(store: Store, query: Any) -> int:
    with store.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(query.subquery())).scalar_one())


def _state_counts(store: Store, version_id: str, held: bool = False) -> dict[str, int]:
    """Rows per state; with `held`, only those a sender holds (claimed)."""
    condition = outbox.c.version_id == version_id
    if held:
        condition = condition & outbox.c.claimed_by.is_not(None)
    with store.connect() as connection:
        rows = connection.execute(select(outbox.c.state, func.count()).where(condition).group_by(outbox.c.state)).all()
    return {state: int(count) for state, count in rows}


def _recipients(store: Store, plan: NoticePlan) -> Iterator[Recipient]:
    """Every recipient of `recipients_query`, in (person, site) order, RECIPIENT_WINDOW people at a time.

    Each window is a range of subscriber ids found on the subscribers' key alone, then the recipients in it: a bounded
    read whatever plan the database picks. (A LIMIT page over the whole join let a planner without fresh statistics, as
    right after an import, read and sort every row after the page's start: queueing grew with the square of the
    subscribers.) Not DISTINCT in SQL: a person subscribed to the policy and to every policy on one site comes twice,
    side by side in key order, and is skipped here."""
    query = recipients_query(plan, distinct=False).order_by(subscribers.c.id, subscriptions.c.site_id)
    previous: tuple[int, str] | None = None
    after = None
    with store.connect() as connection:
        while True:
            ids = select(subscribers.c.id).order_by(subscribers.c.id)
            if after is not None:
                ids = ids.where(subscribers.c.id > after)
            last = connection.execute(ids.offset(RECIPIENT_WINDOW - 1).limit(1)).scalar_one_or_none()
            # On both sides of the join, so that either table's index can start and stop at the window.
            page = query.where(subscribers.c.id > after, subscriptions.c.subscriber_id > after) if after is not None else query
            if last is not None:
                page = page.where(subscribers.c.id <= last, subscriptions.c.subscriber_id <= last)
            rows = connection.execute(page).all()
            connection.commit()  # each window its own read transaction: a long run never pins an old snapshot
            for row in rows:
                if (row.id, row.site_id) != previous:
                    previous = (row.id, row.site_id)
                    yield Recipient(row.uid, row.email, row.name, row.language, row.site_id, row.audience)
            if last is None:
                return
            after = last


class Campaign:
    """One version's notices: everything needed to build, queue and send them."""

    def __init__(self, state: State, plan: NoticePlan, attach_redline: bool) -> None:
        repo = state.repo
        self.repo, self.plan, self.store = repo, plan, state.store
        base_url = require_base_url(repo)
        self.sender: Sender = sender_for(repo, plan.policy)
        self.content: Callable[[str, str], NoticeContent] = lru_cache(maxsize=None)(
            lambda site_id, language: notice_content(plan, site_id, language, base_url))
        self.factory = MessageFactory(repo, self.sender, state.keyring, self.content, utcnow(), attach_redline)

    @cached_property
    def signer(self) -> Signer | None:
        """The DKIM signer of sent notices (None when notify.dkim.domain is not set); previews are not signed."""
        return signer_for(self.repo)

    def build(self, recipient: Recipient) -> BuiltMessage:
        return self.factory.build(recipient, self.plan.language_for(recipient.site_id, recipient.language))

    def audience(self, unknown: UnknownPolicy) -> Audience:
        counts = _state_counts(self.store, self.plan.version.id)
        return Audience(self.plan.version.id, self.plan.version.classification, self.plan.affected_sites,
                        _count(self.store, recipients_query(self.plan)), count_due(self.store, self.plan.version.id, unknown),
                        counts.get("unknown", 0) if unknown == "hold" else 0, counts.get("sent", 0))

    def row(self, recipient: Recipient, built: BuiltMessage) -> dict[str, Any]:
        now = utcnow()
        language = self.plan.language_for(recipient.site_id, recipient.language)
        return {"version_id": self.plan.version.id, "policy_id": self.plan.policy_id, "subscriber_uid": recipient.uid,
                "recipient": recipient.email, "site_id": recipient.site_id, "language": language,
                "audience": recipient.audience, "content_hash": self.content(recipient.site_id, language).content_hash,
                "message_id": built.message_id, "message_sha256": built.sha256, "message": built.data, "state": "pending",
                "timing": self.plan.timing, "timing_reason": self.plan.timing_reason, "attempts": 0, "reply": "",
                "created_at": now, "updated_at": now}

    def queue(self, progress: Progress) -> int:
        """Store every new recipient's rendered message before any is sent: a retry then sends the same bytes."""
        total = _count(self.store, recipients_query(self.plan))
        progress.start("queueing", total)
        queued, batch = 0, []
        for recipient in _recipients(self.store, self.plan):
            batch.append(self.row(recipient, self.build(recipient)))
            if len(batch) >= QUEUE_BATCH:
                queued += self._insert(batch, progress)
                batch = []
        queued += self._insert(batch, progress)
        progress.finish()
        return queued

    def _insert(self, batch: list[dict[str, Any]], progress: Progress) -> int:
        if batch:
            with self.store.begin() as connection:
                insert_outbox_rows(connection, batch)
            progress.advance(len(batch))
        return len(batch)

    def variants(self) -> list[Recipient]:
        """One stand-in recipient per site × language × audience that this version reaches."""
        query = recipients_query(self.plan, only_new=False).subquery()
        with self.store.connect() as connection:
            rows = connection.execute(select(query.c.site_id, query.c.language, query.c.audience).distinct()).all()
        keys = sorted({(r.site_id, self.plan.language_for(r.site_id, r.language), r.audience) for r in rows})
        return [Recipient(CANARY_UID, "", "", language, site_id, audience) for site_id, language, audience in keys]

    def send_canaries(self, addresses: tuple[str, ...], smtp: SmtpSettings) -> list[tuple[str, str, Delivery]]:
        """Each variant of the notice to internal addresses first; nothing of it enters the outbox."""
        from addendum.notify.subscribers import normalise_address

        connection = SmtpConnection(smtp)
        results = []
        try:
            for address in addresses:
                try:
                    email = normalise_address(address)
                except ValueError as exc:
                    raise NotifyError(f"--canary: {exc}", "give an internal address that should receive a copy") from None
                for stand_in in self.variants():
                    recipient = Recipient(stand_in.uid, email, "", stand_in.language, stand_in.site_id, stand_in.audience)
                    built = self.factory.build(recipient, recipient.language)
                    data = self.signer(built.data) if self.signer is not None else built.data
                    delivery = connection.deliver(self.sender.address.addr_spec, email, data)
                    variant = f"{stand_in.site_id}/{stand_in.language}/{stand_in.audience}"
                    if delivery.outcome != "sent":
                        raise NotifyError(f"the canary {variant} to {email} was not accepted: {delivery.reply}",
                                          "nothing was sent to subscribers; fix the cause and run again")
                    results.append((email, variant, delivery))
        finally:
            connection.close()
        return results

    def preview(self, folder: Path | None, unknown: UnknownPolicy, progress: Progress) -> tuple[int, list[Path]]:
        """Render what this run would send, writing .eml files when a folder is given; stores and sends nothing."""
        written: list[Path] = []
        rendered = 0
        progress.start("rendering", _count(self.store, recipients_query(self.plan)) + count_due(self.store, self.plan.version.id, unknown))

        def emit(data: bytes, site_id: str, language: str, audience: str) -> None:
            nonlocal rendered
            rendered += 1
            if folder is not None:
                path = folder / f"{rendered:05d}-{site_id}-{language}-{audience}.eml"
                write_atomic(path, data, mode=0o600)
                written.append(path)
            progress.advance()

        for recipient in _recipients(self.store, self.plan):
            emit(self.build(recipient).data, recipient.site_id, self.plan.language_for(recipient.site_id, recipient.language),
                 recipient.audience)
        query = select(outbox.c.id, outbox.c.site_id, outbox.c.language, outbox.c.audience, outbox.c.message).where(
            outbox.c.state.in_(("pending", "retry", "unknown")), outbox.c.version_id == self.plan.version.id)
        if unknown == "hold":
            query = query.where(outbox.c.state != "unknown")
        with self.store.connect() as connection:
            for row in batched_rows(connection, query, (outbox.c.id,), size=200):
                emit(row.message, row.site_id, row.language, row.audience)
        progress.finish()
        return rendered, written


def _reaches_subscribers(store: Store, plan: NoticePlan, options: NotifyOptions) -> bool:
    """Whether this run renders a notice for the subscriber audience (canaries stand in for everyone reached)."""
    reached = recipients_query(plan, only_new=not options.canary).subquery()
    with store.connect() as connection:
        found = connection.execute(select(reached.c.id).where(reached.c.audience == SUBSCRIBER).limit(1)).first()
    return found is not None


def _smtp_problems(repo: Repo) -> list[SettingProblem]:
    """What keeps the SMTP settings (the password file), the DKIM key or the return path from being used, as problems
    of their tables."""
    problems = []
    for table, check in (("notify.smtp", smtp_settings), ("notify.dkim", signer_for), ("notify.return_path", return_path)):
        try:
            check(repo)
        except (NotifyError, UsageError) as exc:
            problems.append(SettingProblem(table, exc.message, exc.hint))
    return problems


def require_settings(repo: Repo, plan: NoticePlan, store: Store, options: NotifyOptions) -> None:
    """Every setting this run needs, checked before anything is rendered or sent: one ConfigError lists each missing
    or invalid key with how to set it (SMTP only when sending; the unsubscribe URL only when subscribers are reached)."""
    problems = [*base_url_problems(repo), *sender_problems(repo, plan.policy)]
    if not repo.setting("notify.unsubscribe_url") and _reaches_subscribers(store, plan, options):
        problems.append(SettingProblem("notify.unsubscribe_url", "is not set: notices to the subscriber audience need "
                                       "a one-click unsubscribe link (RFC 8058)",
                                       'set [notify] unsubscribe_url = "https://…" (it receives ?token=…)'))
    if not (options.dry_run or options.preview_dir is not None):
        problems.extend(_smtp_problems(repo))
    if problems:
        raise settings_error(problems)


def only_sites(plan: NoticePlan, sites: tuple[str, ...]) -> NoticePlan:
    """The plan narrowed to the readers of `sites` (--site); every named site must be one of the policy's."""
    if not sites:
        return plan
    for site_id in sites:
        plan.policy.site(site_id)  # raises the usual "no site" error listing the known ones
    return replace(plan, affected_sites=tuple(s for s in plan.affected_sites if s in sites))


def _variants(store: Store, plan: NoticePlan) -> list[tuple[str, str]]:
    """The (site, language) notices this run would newly render and queue: those that must be true today."""
    reached = recipients_query(plan).subquery()
    with store.connect() as connection:
        rows = connection.execute(select(reached.c.site_id, reached.c.language).distinct()).all()
    return sorted({(row.site_id, plan.language_for(row.site_id, row.language)) for row in rows})


def send_options(repo: Repo, options: NotifyOptions) -> SendOptions:
    rate = options.rate_per_second if options.rate_per_second is not None else float(repo.setting("notify.rate_per_second"))
    connections = options.connections if options.connections is not None else int(repo.setting("notify.smtp.connections"))
    if rate < 0 or connections < 1:
        raise NotifyError("the rate must be 0 (no limit) or more, and connections at least 1", "check --rate and --connections")
    return SendOptions(rate, connections, int(repo.setting("notify.max_attempts")), float(repo.setting("notify.retry_delay")),
                       int(repo.setting("notify.error_window")), float(repo.setting("notify.error_threshold")), options.unknown,
                       heartbeat_interval=float(repo.setting("notify.heartbeat_interval")),
                       claim_batch=int(repo.setting("notify.claim_batch")))


def notify(repo: Repo, policy_id: str, version_id: str, options: NotifyOptions,
           confirm: Callable[[Audience], bool], progress: Progress | None = None) -> NotifyReport:
    """Send the notice of a published version to everyone who must be told, each once.

    Re-running sends only what is still pending or due; a killed run leaves the messages it was sending `unknown`,
    which are sent again (`unknown="retry"`) or kept for inspection (`"hold"`)."""
    progress = progress or NoProgress()
    if options.preview_dir is not None:
        require_ignored(repo.root, options.preview_dir, "preview folder", probe=options.preview_dir / "notice.eml")
    plan = notice_timing(plan_notice(repo, policy_id, version_id, options.force), options.today or date.today(),
                         options.urgent, options.late, options.reason, sending=not (options.dry_run or options.preview_dir))
    plan = only_sites(plan, options.sites)
    with open_state(repo, options.database_url) as state:
        store = state.store
        require_settings(repo, plan, store, options)
        if not (options.dry_run or options.preview_dir is not None):
            found = untrue_links(plan, _variants(store, plan))
            if found:
                raise untrue_links_error(plan, found)
        campaign = Campaign(state, plan, options.attach_redline)
        if options.dry_run or options.preview_dir is not None:
            audience = campaign.audience(options.unknown)
            rendered, written = campaign.preview(options.preview_dir, options.unknown, progress)
            return NotifyReport(audience, "preview" if options.preview_dir else "dry-run", rendered=rendered, previews=written)
        settings, smtp = send_options(repo, options), smtp_settings(repo)
        require_workers(store, options.workers)
        with one_sender(store, settings.heartbeat_interval) as lease:
            recovered = recover_interrupted(store, plan.version.id, lease or Lease(store, settings.heartbeat_interval),
                                            sole=lease is not None)
            audience = campaign.audience(options.unknown)
            report = NotifyReport(audience, "send")
            if options.canary and audience.to_send:
                report.canaries = campaign.send_canaries(options.canary, smtp)
            if audience.to_send == 0 or not confirm(audience):
                report.declined = audience.to_send > 0
                report.totals = _state_counts(store, plan.version.id)
                report.held = _state_counts(store, plan.version.id, held=True)
                report.next_retry_at = next_retry(store, plan.version.id)
                return report
            report.queued = campaign.queue(progress)
            progress.start("sending", count_due(store, plan.version.id, options.unknown))
            job = SendJob(plan.version.id, campaign.sender.address.addr_spec, smtp, settings, utcnow(),
                          envelope_for(return_path(repo)), campaign.signer)
            report.send = send(store, job, options.workers, progress.advance, (lease,) if lease else ())
            report.send.recovered += recovered
            progress.finish()
            report.totals = _state_counts(store, plan.version.id)
            report.held = _state_counts(store, plan.version.id, held=True)
            report.next_retry_at = report.send.next_retry_at
            return report


@dataclass(frozen=True)
class NoticeRecord:
    """Proof of one notice: who, which version and text (content hash), when, with which Message-ID and reply."""

    recipient: str
    site_id: str
    language: str
    audience: str
    state: str
    content_hash: str
    message_id: str
    message_sha256: str
    queued_at: str
    sent_at: str
    attempts: int
    reply: str
    timing: str = ""  # ahead | short (sent with --urgent) | late (sent with --late); "" from an earlier release
    timing_reason: str = ""

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def notice_records(repo: Repo, policy_id: str, version_id: str, email: str | None = None, state: str | None = None,
                   database_url: str | None = None) -> Iterator[NoticeRecord]:
    """Who was notified of a version, from the outbox: the record that proves it. Streams, oldest first."""
    from addendum.history.versions import find_version
    from addendum.notify.subscribers import normalise_address

    version = find_version(repo, policy_id, version_id)
    store = open_store(repo, database_url)
    query = select(outbox.c.id, outbox.c.recipient, outbox.c.site_id, outbox.c.language, outbox.c.audience, outbox.c.state,
                   outbox.c.content_hash, outbox.c.message_id, outbox.c.message_sha256, outbox.c.created_at,
                   outbox.c.sent_at, outbox.c.attempts, outbox.c.reply, outbox.c.timing,
                   outbox.c.timing_reason).where(outbox.c.version_id == version.id)
    if email is not None:
        try:
            query = query.where(outbox.c.recipient == normalise_address(email))
        except ValueError as exc:
            raise NotifyError(str(exc), "give the address as it was subscribed") from None
    if state is not None:
        query = query.where(outbox.c.state == state)
    try:
        with store.connect() as connection:
            for row in batched_rows(connection, query, (outbox.c.id,)):
                yield NoticeRecord(row.recipient, row.site_id, row.language, row.audience, row.state, row.content_hash,
                                   row.message_id, row.message_sha256, row.created_at.isoformat(timespec="seconds"),
                                   row.sent_at.isoformat(timespec="seconds") if row.sent_at else "", row.attempts, row.reply,
                                   row.timing or "", row.timing_reason or "")
    finally:
        store.dispose()


def attempt_log(store: Store, version_id: str) -> list[tuple[str, str, str, str]]:
    """Every attempt for a version: (recipient, time, outcome, reply), oldest first."""
    with store.connect() as connection:
        rows = connection.execute(select(outbox.c.recipient, attempts.c.attempted_at, attempts.c.outcome, attempts.c.reply)
                                  .join(outbox, outbox.c.id == attempts.c.outbox_id)
                                  .where(outbox.c.version_id == version_id).order_by(attempts.c.id)).all()
    return [(r.recipient, r.attempted_at.isoformat(timespec="seconds"), r.outcome, r.reply) for r in rows]

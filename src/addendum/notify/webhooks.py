"""Signed webhooks (Standard Webhooks): receivers and their secrets, events stored once, and a crash-safe delivery outbox.

A delivery row is stored with its event, before the first attempt, and keeps its webhook-id and body bytes for
every retry; the timestamp and signature are made anew at each attempt (receivers refuse timestamps older than a
few minutes, so a retry an hour later must carry the hour it is sent). States: pending → sending → delivered |
retry (due at next_attempt_at) | failed; `unknown` marks a delivery whose deliverer died while it was in flight (it is
sent again, with the same webhook-id: receivers deduplicate by it); `cancelled`, one whose endpoint was removed.
One deliverer runs at a time, under the "webhooks" lease.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.engine import Connection

from addendum.errors import NotifyError, UsageError
from addendum.files import write_atomic
from addendum.notify.http import Answer, HttpLimits, post, require_webhook_url
from addendum.notify.outbox import Heartbeat, Lease, backoff
from addendum.notify.store import (
    Store,
    insert_ignoring,
    insert_new,
    utcnow,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
    webhook_events,
)
from addendum.notify.tokens import private_dir, require_ignored, require_private

EVENT_TYPES = ("version.published", "version.effective", "notices.finished")
SECRETS_ENV = "ADDENDUM_WEBHOOK_SECRETS"
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
LEASE_NAME = "webhooks"
MIN_REQUEST_SECONDS = 1.0  # the least a request is given when a run's time limit is nearly spent
STATES = ("pending", "sending", "delivered", "retry", "failed", "unknown", "cancelled")
OUTSTANDING = ("pending", "sending", "retry", "unknown")
INTERRUPTED = "interrupted while in flight: it may have arrived (sent again with the same webhook-id)"
SECRETS_HEADER = ("# Webhook signing secrets: `ENDPOINT SECRET [UNTIL]`; a secret with UNTIL (UTC) was rotated out and\n"
                  "# still signs, next to its successor, until then. Never commit this file.\n")


def new_secret() -> str:
    """A signing secret as Standard Webhooks writes it: whsec_ and the base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise NotifyError("a webhook secret is not whsec_ followed by the base64 of 16 or more bytes",
                          f"generate one with `addendum webhooks rotate-secret ENDPOINT` (or {SECRETS_ENV}=ep_…=whsec_…)")
    return key


def signature_header(secrets_in_use: Iterable[str], message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of id.timestamp.body>` for each secret, space-separated (several during a rotation)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(secret_key(s), signed, hashlib.sha256).digest()).decode("ascii")
                    for s in secrets_in_use)


@dataclass(frozen=True)
class SecretEntry:
    endpoint_id: str
    secret: str
    until: datetime | None = None  # rotated out: signs alongside its successor until then


@dataclass(frozen=True)
class Secrets:
    """The signing secrets of every endpoint, from ADDENDUM_WEBHOOK_SECRETS or the secret file (mode 0600)."""

    entries: tuple[SecretEntry, ...]
    source: str
    file: Path | None  # None: from the environment, which addendum never writes

    def signing(self, endpoint_id: str, now: datetime) -> list[str]:
        return [e.secret for e in self.entries if e.endpoint_id == endpoint_id and (e.until is None or e.until > now)]


def _parse_secrets(text: str, source: str) -> tuple[SecretEntry, ...]:
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            if len(fields) not in (2, 3):
                raise ValueError
            until = datetime.fromisoformat(fields[2]) if len(fields) == 3 else None
            if until is not None and until.tzinfo is None:
                raise ValueError
        except ValueError:
            raise NotifyError(f"{source}: line {number} is not `ENDPOINT whsec_… [UNTIL]`",
                              "restore the file, or remove the endpoint and add it again") from None
        secret_key(fields[1])
        entries.append(SecretEntry(fields[0], fields[1], until))
    return tuple(entries)


def load_secrets(secret_file: Path, work_tree: Path | None = None) -> Secrets:
    """The secrets from ADDENDUM_WEBHOOK_SECRETS (`ep_…=whsec_…,…`; an endpoint named twice signs with both), else from
    `secret_file`, which must be private and (with `work_tree`) ignored by git."""
    if os.environ.get(SECRETS_ENV, "").strip():
        text = "\n".join(item.replace("=", " ", 1) for item in os.environ[SECRETS_ENV].split(","))
        return Secrets(_parse_secrets(text, f"environment {SECRETS_ENV}"), f"environment {SECRETS_ENV}", None)
    if work_tree is not None:
        private_dir(secret_file.parent)
        require_ignored(work_tree, secret_file, "webhook secret file")
    if not secret_file.exists():
        return Secrets((), str(secret_file), secret_file)
    require_private(secret_file, "webhook secret file")
    return Secrets(_parse_secrets(secret_file.read_text(encoding="utf-8"), str(secret_file)), str(secret_file), secret_file)


def _write_secrets(store_of: Secrets, entries: Iterable[SecretEntry], now: datetime) -> None:
    if store_of.file is None:
        raise NotifyError(f"webhook secrets come from the environment ({SECRETS_ENV}), which addendum does not write",
                          f"set the new secret in {SECRETS_ENV} yourself (ep_…=whsec_…; name the old one too during the overlap)")
    kept = [e for e in entries if e.until is None or e.until > now]
    lines = [f"{e.endpoint_id} {e.secret}" + (f" {e.until.isoformat(timespec='seconds')}" if e.until else "") for e in kept]
    private_dir(store_of.file.parent)
    write_atomic(store_of.file, SECRETS_HEADER + "".join(line + "\n" for line in lines), mode=0o600)


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    events: tuple[str, ...]
    site_id: str | None
    created_at: datetime


def parse_events(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in chosen if name not in EVENT_TYPES]
    if unknown or not chosen:
        raise UsageError(f"unknown event type(s): {', '.join(unknown) or '(none given)'}",
                         f"choose from {', '.join(EVENT_TYPES)} (comma-separated)")
    return chosen


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(row.id, row.url, tuple(row.events.split(",")), row.site_id, row.created_at)


def endpoints(store: Store) -> list[Endpoint]:
    with store.connect() as connection:
        return [_endpoint(row) for row in connection.execute(select(webhook_endpoints).order_by(webhook_endpoints.c.created_at))]


def add_endpoint(store: Store, keys: Secrets, url: str, events: tuple[str, ...], site_id: str | None) -> tuple[Endpoint, str]:
    """Register a receiver; returns it and its new secret (written to the secret file, unless secrets come from the
    environment: then the caller must put it there)."""
    endpoint = Endpoint("ep_" + uuid.uuid4().hex[:20], require_webhook_url(url), events, site_id, utcnow())
    secret = new_secret()
    if keys.file is not None:
        _write_secrets(keys, [*keys.entries, SecretEntry(endpoint.id, secret)], endpoint.created_at)
    with store.begin() as connection:
        connection.execute(insert(webhook_endpoints).values(id=endpoint.id, url=endpoint.url, events=",".join(events),
                                                            site_id=site_id, created_at=endpoint.created_at))
    return endpoint, secret


def _require_endpoint(connection: Connection, endpoint_id: str) -> Endpoint:
    row = connection.execute(select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)).first()
    if row is None:
        raise UsageError(f"no webhook endpoint {endpoint_id!r}", "`addendum webhooks list` shows their ids")
    return _endpoint(row)


def remove_endpoint(store: Store, keys: Secrets, endpoint_id: str) -> int:
    """Remove a receiver and its secrets; what it was still owed is cancelled (kept in the record). Returns how many."""
    now = utcnow()
    with store.begin() as connection:
        _require_endpoint(connection, endpoint_id)
        cancelled = connection.execute(update(webhook_deliveries).where(
            webhook_deliveries.c.endpoint_id == endpoint_id, webhook_deliveries.c.state.in_(OUTSTANDING)).values(
            state="cancelled", reply="the endpoint was removed", updated_at=now, next_attempt_at=None)).rowcount
        connection.execute(delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id))
    if keys.file is not None:
        _write_secrets(keys, [e for e in keys.entries if e.endpoint_id != endpoint_id], now)
    return int(cancelled or 0)


def rotate_secret(store: Store, keys: Secrets, endpoint_id: str, overlap: timedelta) -> tuple[str, datetime]:
    """A new secret for the endpoint; its current ones keep signing too until `overlap` has passed. Returns the new
    secret and when the old ones stop."""
    with store.connect() as connection:
        _require_endpoint(connection, endpoint_id)
    now = utcnow()
    until = now + overlap
    secret = new_secret()
    rotated = [SecretEntry(e.endpoint_id, e.secret, min(e.until or until, until)) if e.endpoint_id == endpoint_id else e
               for e in keys.entries]
    _write_secrets(keys, [*rotated, SecretEntry(endpoint_id, secret)], now)
    return secret, until


@dataclass(frozen=True)
class Event:
    """An event to deliver: `key` makes it once-only (e.g. version.effective:privacy@2020-09-01)."""

    key: str
    type: str
    data: Mapping[str, Any]
    sites: tuple[str, ...] = ()  # the sites it concerns: an endpoint with --site hears only of its own


def event_body(event: Event, at: datetime) -> bytes:
    """The JSON every delivery of the event carries, byte for byte (docs/webhooks.md)."""
    document = {"type": event.type, "timestamp": at.isoformat(timespec="seconds").replace("+00:00", "Z"), "data": event.data}
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def emit(store: Store, event: Event) -> int | None:
    """Store the event once, with a pending delivery to every endpoint that listens to it, in one transaction.
    Returns how many deliveries were queued, or None when the event was emitted before (nothing changes then)."""
    now = utcnow()
    with store.begin() as connection:
        # The unique key decides, not a read before it: of two emitters at one instant, one inserts, the other waits for it
        # (PostgreSQL) or for the write lock (SQLite) and then inserts nothing.
        if not insert_new(connection, webhook_events, {"key": event.key, "type": event.type, "body": event_body(event, now),
                                                       "created_at": now}):
            return None
        event_id = connection.execute(select(webhook_events.c.id).where(webhook_events.c.key == event.key)).scalar_one()
        rows = [{"message_id": "msg_" + uuid.uuid4().hex, "event_id": event_id, "endpoint_id": endpoint.id, "url": endpoint.url,
                 "state": "pending", "attempts": 0, "reply": "", "created_at": now, "updated_at": now}
                for endpoint in map(_endpoint, connection.execute(select(webhook_endpoints)))
                if event.type in endpoint.events and (endpoint.site_id is None or endpoint.site_id in event.sites)]
        insert_ignoring(connection, webhook_deliveries, rows)
    return len(rows)


def emitted_keys(store: Store, prefix: str) -> set[str]:
    with store.connect() as connection:
        return set(connection.execute(select(webhook_events.c.key).where(webhook_events.c.key.startswith(prefix))).scalars())


def first_endpoint_at(store: Store) -> datetime | None:
    """When the oldest endpoint was added: events about what happened before anyone listened are not made up later."""
    with store.connect() as connection:
        return connection.execute(select(webhook_endpoints.c.created_at).order_by(webhook_endpoints.c.created_at)
                                  .limit(1)).scalar_one_or_none()


@dataclass(frozen=True)
class DeliverOptions:
    limits: HttpLimits = HttpLimits()
    max_attempts: int = 12
    retry_delay: float = 30.0
    time_limit: float | None = None  # seconds this run may spend; None: until nothing is due
    heartbeat_interval: float = 10.0


@dataclass
class DeliverReport:
    delivered: int = 0
    retry: int = 0
    failed: int = 0
    interrupted: int = 0  # deliveries a killed earlier run had in flight, now `unknown` and sent again
    busy: str = ""  # another deliverer holds the lease: nothing was done
    out_of_time: bool = False
    outcomes: list[tuple[str, str, Answer]] = field(default_factory=list)  # (webhook-id, url, answer)


def _due(now: datetime, skip: set[int]) -> Any:
    condition = or_(webhook_deliveries.c.state.in_(("pending", "unknown")),
                    and_(webhook_deliveries.c.state == "retry", webhook_deliveries.c.next_attempt_at <= now))
    return and_(condition, webhook_deliveries.c.id.not_in(skip)) if skip else condition


def _recover(store: Store) -> int:
    """Under the lease, a delivery still `sending` was in flight when its deliverer died: it is `unknown` now."""
    now = utcnow()
    with store.begin() as connection:
        ids = list(connection.execute(select(webhook_deliveries.c.id).where(webhook_deliveries.c.state == "sending")).scalars())
        if ids:
            connection.execute(update(webhook_deliveries).where(webhook_deliveries.c.id.in_(ids)).values(
                state="unknown", reply=INTERRUPTED, updated_at=now))
            connection.execute(insert(webhook_attempts), [{"delivery_id": i, "attempted_at": now, "outcome": "unknown",
                                                           "status": None, "reply": INTERRUPTED} for i in ids])
    return len(ids)


def deliver(store: Store, keys: Secrets, options: DeliverOptions, clock: Callable[[], float] | None = None) -> DeliverReport:
    """Deliver what is due, oldest first, each delivery at most once per run, until nothing is due or the time limit
    is reached. A run that finds another deliverer at work leaves everything to it (`busy`)."""
    monotonic = clock or time.monotonic
    started = monotonic()
    report = DeliverReport()
    lease = Lease(store, options.heartbeat_interval, name=LEASE_NAME)
    try:
        lease.acquire()
    except NotifyError as exc:
        report.busy = exc.message.replace("`addendum notify`", "webhook deliverer")
        return report
    heartbeat = Heartbeat(lease)
    heartbeat.start()
    try:
        report.interrupted = _recover(store)
        attempted: set[int] = set()
        while True:
            if options.time_limit is not None and monotonic() - started >= options.time_limit:
                report.out_of_time = True
                break
            lease.check()
            with store.begin() as connection:
                row = connection.execute(
                    select(webhook_deliveries.c.id, webhook_deliveries.c.message_id, webhook_deliveries.c.endpoint_id,
                           webhook_deliveries.c.url, webhook_deliveries.c.state, webhook_deliveries.c.attempts,
                           webhook_events.c.body)
                    .join(webhook_events, webhook_events.c.id == webhook_deliveries.c.event_id)
                    .where(_due(utcnow(), attempted)).order_by(webhook_deliveries.c.id).limit(1)).first()
                if row is None:
                    break
                lease.fence(connection)
                connection.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == row.id).values(
                    state="sending", updated_at=utcnow()))
            attempted.add(row.id)
            limits = options.limits
            if options.time_limit is not None:  # the run's bound holds for its last request too
                remaining = max(MIN_REQUEST_SECONDS, options.time_limit - (monotonic() - started))
                limits = replace(limits, deadline=min(limits.deadline, remaining))
            answer = _attempt(keys, row, limits)
            state = _record(store, lease, row, answer, options)
            setattr(report, state, getattr(report, state) + 1)
            report.outcomes.append((row.message_id, row.url, answer))
    finally:
        heartbeat.stop()
        lease.release()
    return report


def _attempt(keys: Secrets, row: Any, limits: HttpLimits) -> Answer:
    now = utcnow()
    in_use = keys.signing(row.endpoint_id, now)
    if not in_use:
        return Answer("retry", None, f"no secret for {row.endpoint_id} in {keys.source}: restore it or rotate-secret")
    timestamp = int(now.timestamp())
    headers = {"webhook-id": row.message_id, "webhook-timestamp": str(timestamp),
               "webhook-signature": signature_header(in_use, row.message_id, timestamp, row.body)}
    return post(row.url, row.body, headers, limits)


def _record(store: Store, lease: Lease, row: Any, answer: Answer, options: DeliverOptions) -> str:
    now = utcnow()
    tries = row.attempts + 1
    state, reply, next_at = answer.outcome, answer.reply, None
    if state == "retry":
        if tries >= options.max_attempts:
            state, reply = "failed", f"{reply} (gave up after {tries} attempts)"
        else:
            wait = backoff(tries, options.retry_delay)
            if answer.retry_after is not None:
                wait = max(wait, timedelta(seconds=answer.retry_after))
            next_at = now + wait
    with store.begin() as connection:
        lease.fence(connection)
        connection.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == row.id).values(
            state=state, attempts=tries, reply=reply, next_attempt_at=next_at, updated_at=now,
            delivered_at=now if state == "delivered" else None))
        connection.execute(insert(webhook_attempts).values(delivery_id=row.id, attempted_at=now, outcome=state,
                                                           status=answer.status, reply=reply))
    return state


@dataclass(frozen=True)
class DeliveryRecord:
    message_id: str
    event_type: str
    event_key: str
    endpoint_id: str
    url: str
    state: str
    attempts: int
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None
    reply: str

    def as_json(self) -> dict[str, Any]:
        return {name: value.isoformat() if isinstance(value, datetime) else value for name, value in self.__dict__.items()}


def delivery_records(store: Store, state: str | None = None, endpoint_id: str | None = None) -> list[DeliveryRecord]:
    query = (select(webhook_deliveries, webhook_events.c.type, webhook_events.c.key)
             .join(webhook_events, webhook_events.c.id == webhook_deliveries.c.event_id).order_by(webhook_deliveries.c.id))
    if state is not None:
        query = query.where(webhook_deliveries.c.state == state)
    if endpoint_id is not None:
        query = query.where(webhook_deliveries.c.endpoint_id == endpoint_id)
    with store.connect() as connection:
        return [DeliveryRecord(r.message_id, r.type, r.key, r.endpoint_id, r.url, r.state, r.attempts, r.created_at,
                               r.updated_at, r.delivered_at, r.next_attempt_at, r.reply) for r in connection.execute(query)]

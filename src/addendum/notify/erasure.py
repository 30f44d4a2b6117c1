"""Erasure that keeps what the law lets us keep: a forgotten person's notice records, pseudonymised, until purged."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from addendum.notify.state import State
from addendum.notify.store import (
    ERASED_PREFIX,
    attempts,
    bounces,
    outbox,
    record_events,
    subscriber_events,
    subscribers,
    subscriptions,
    suppressions,
    utcnow,
)
from addendum.notify.subscribers import UNSENT_STATES, lookup_address, suppressed_since
from addendum.notify.tokens import address_digests

ERASED_TEXT = "[erased]"
LEGAL_GROUND = "GDPR Art. 17(3)(e): establishment, exercise or defence of legal claims"
CHUNK = 500


def retention_days(state: State) -> int:
    return int(state.repo.setting("retention.erased_records_days"))


def erased_recipient(digest: str) -> Any:
    """The condition on outbox.recipient that finds the records kept of an address erased under `digest`."""
    return or_(outbox.c.recipient == ERASED_PREFIX + digest, outbox.c.recipient.like(f"{ERASED_PREFIX}{digest}:%"))


@dataclass(frozen=True)
class ErasurePlan:
    """What forgetting an address erases and what it keeps, before (or after) it is done."""

    address: str
    digest: str  # the keyed hash (current key version) the kept records are filed under
    key_version: int
    subscriber: bool  # the address is on the list
    subscriptions: int
    notices: int  # notice records kept, pseudonymised
    unsent: int  # of which not sent yet: cancelled
    bodies: int  # stored messages erased
    attempts: int
    bounces: int
    events: int  # subscription events kept under the keyed hash
    suppressed_since: datetime | None  # already erased (suppressed) before
    retention_days: int

    @property
    def known(self) -> bool:
        return self.subscriber or self.notices > 0

    def keep_until(self, now: datetime) -> datetime:
        return now + timedelta(days=self.retention_days)


def _scrub(text: str | None, address: str) -> str:
    """`text` without the address (an SMTP reply or a bounce's diagnostic often quotes it)."""
    return re.sub(re.escape(address), ERASED_TEXT, text or "", flags=re.IGNORECASE)


def _person(connection: Connection, address: str) -> tuple[Any, list[Any]]:
    row = connection.execute(select(subscribers.c.id, subscribers.c.uid, subscribers.c.audience)
                             .where(subscribers.c.email == address)).first()
    matches = [outbox.c.recipient == address] + ([outbox.c.subscriber_uid == row.uid] if row else [])
    notices = connection.execute(select(outbox.c.id, outbox.c.subscriber_uid, outbox.c.audience, outbox.c.state,
                                        outbox.c.version_id, outbox.c.site_id, outbox.c.reply)
                                 .where(or_(*matches)).order_by(outbox.c.id)).all()
    return row, list(notices)


def _count(connection: Connection, table: Any, column: Any, values: list[Any]) -> int:
    return sum(connection.execute(select(func.count()).select_from(table).where(column.in_(values[start:start + CHUNK])))
               .scalar_one() for start in range(0, len(values), CHUNK)) if values else 0


def _plan(state: State, connection: Connection, address: str) -> tuple[ErasurePlan, Any, list[Any]]:
    keyring = state.keyring
    row, notices = _person(connection, address)
    ids = [n.id for n in notices]
    uids = sorted({n.subscriber_uid for n in notices} | ({row.uid} if row else set()))
    plan = ErasurePlan(
        address, address_digests(keyring, address)[keyring.current], keyring.current, row is not None,
        _count(connection, subscriptions, subscriptions.c.subscriber_id, [row.id]) if row else 0,
        len(notices), sum(1 for n in notices if n.state in UNSENT_STATES), len(notices),
        _count(connection, attempts, attempts.c.outbox_id, ids), _count(connection, bounces, bounces.c.outbox_id, ids),
        _count(connection, subscriber_events, subscriber_events.c.subscriber_uid, uids),
        suppressed_since(connection, keyring, address), retention_days(state))
    return plan, row, notices


def erasure_plan(state: State, email: str) -> ErasurePlan:
    """What `forget` would erase and keep for this address; changes nothing."""
    address = lookup_address(email)
    with state.store.connect() as connection:
        return _plan(state, connection, address)[0]


def forget_subscriber(state: State, email: str) -> ErasurePlan:
    """Erase a person: their address, name, subscriptions and stored messages. Their notice records (version,
    content hash, Message-ID, times, SMTP replies, bounces) and subscription events are kept under the keyed hash of
    the address (GDPR Art. 17(3)(e)) until `addendum retention run` purges them; the hash keeps the address suppressed.
    An address that is not known is suppressed all the same (a later import leaves it out)."""
    address = lookup_address(email)
    now = utcnow()
    with state.store.begin() as connection:
        plan, row, notices = _plan(state, connection, address)
        digest = plan.digest
        taken = {r.version_id + "\0" + r.site_id for r in connection.execute(
            select(outbox.c.version_id, outbox.c.site_id).where(erased_recipient(digest)))}
        for notice in notices:
            # A person forgotten twice (added again with new consent in between) may have two records of one notice.
            again = notice.version_id + "\0" + notice.site_id in taken
            values: dict[str, Any] = {"recipient": ERASED_PREFIX + digest + (f":{notice.id}" if again else ""),
                                      "message": b"", "reply": _scrub(notice.reply, address), "erased_at": now,
                                      "updated_at": now}
            if notice.state in UNSENT_STATES:
                values.update(state="cancelled", next_attempt_at=None)
            connection.execute(update(outbox).where(outbox.c.id == notice.id).values(**values))
        _scrub_rows(connection, attempts, attempts.c.reply, [n.id for n in notices], address)
        _scrub_rows(connection, bounces, bounces.c.diagnostic, [n.id for n in notices], address)
        uids = sorted({n.subscriber_uid for n in notices} | ({row.uid} if row else set()))
        for start in range(0, len(uids), CHUNK):
            connection.execute(update(subscriber_events).where(subscriber_events.c.subscriber_uid.in_(uids[start:start + CHUNK]))
                               .values(digest=digest))
        if plan.known:
            audience = row.audience if row else notices[-1].audience
            record_events(connection, [{"subscriber_uid": uid, "digest": digest, "kind": "forgotten", "audience": audience,
                                        "source": "subscribers forget", "at": now,
                                        "detail": f"{plan.notices} notice record(s) kept until "
                                                  f"{plan.keep_until(now):%Y-%m-%d} ({LEGAL_GROUND})"}
                                       for uid in uids])
        if row is not None:
            connection.execute(delete(subscriptions).where(subscriptions.c.subscriber_id == row.id))
            connection.execute(delete(subscribers).where(subscribers.c.id == row.id))
        if plan.suppressed_since is None:
            connection.execute(insert(suppressions).values(digest=digest, key_version=plan.key_version, reason="erased",
                                                           created_at=now))
    state.store.compact()
    return plan


def _scrub_rows(connection: Connection, table: Any, column: Any, outbox_ids: list[int], address: str) -> None:
    for start in range(0, len(outbox_ids), CHUNK):
        rows = connection.execute(select(table.c.id, column).where(table.c.outbox_id.in_(outbox_ids[start:start + CHUNK]))).all()
        for found in rows:
            cleaned = _scrub(found[1], address)
            if cleaned != found[1]:
                connection.execute(update(table).where(table.c.id == found.id).values({column.key: cleaned}))


@dataclass(frozen=True)
class RetentionReport:
    cutoff: datetime  # records of people forgotten before this moment are purged
    days: int
    notices: int
    events: int
    dry_run: bool


def _expired_digests(connection: Connection, cutoff: datetime) -> list[str]:
    forgotten = (select(subscriber_events.c.digest).where(subscriber_events.c.kind == "forgotten")
                 .group_by(subscriber_events.c.digest).having(func.max(subscriber_events.c.at) < cutoff))
    return [str(digest) for digest in connection.execute(forgotten).scalars()]


def _delete_in(connection: Connection, column: Any, values: Iterable[Any]) -> None:
    chosen = list(values)
    for start in range(0, len(chosen), CHUNK):
        connection.execute(delete(column.table).where(column.in_(chosen[start:start + CHUNK])))


def run_retention(state: State, dry_run: bool = False, now: datetime | None = None) -> RetentionReport:
    """Purge the pseudonymised records of people forgotten more than retention.erased_records_days ago: their notice
    records (with attempts and bounces) and subscription events. The suppression hash stays: they stay unsubscribed."""
    days = retention_days(state)
    cutoff = (now or utcnow()) - timedelta(days=days)
    with state.store.begin() as connection:
        expired = [row_id for row_id in connection.execute(
            select(outbox.c.id).where(outbox.c.erased_at.is_not(None), outbox.c.erased_at < cutoff)).scalars()]
        digests = _expired_digests(connection, cutoff)
        events = _count(connection, subscriber_events, subscriber_events.c.digest, digests)
        if not dry_run:
            _delete_in(connection, attempts.c.outbox_id, expired)
            _delete_in(connection, bounces.c.outbox_id, expired)
            _delete_in(connection, outbox.c.id, expired)
            _delete_in(connection, subscriber_events.c.digest, digests)
    if not dry_run:
        state.store.compact()
    return RetentionReport(cutoff, days, len(expired), events, dry_run)

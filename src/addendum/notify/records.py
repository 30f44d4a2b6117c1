"""What the state store holds about one person, by address, subscriber id or keyed hash: the raw matter of a dossier."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select

from addendum.notify.acceptances import Acceptance, list_acceptances
from addendum.notify.erasure import erased_recipient
from addendum.notify.state import State
from addendum.notify.store import LEGAL_BASES, attempts, batched_rows, bounces, outbox, subscriber_events, subscribers
from addendum.notify.subscribers import Subscriber, load_subscribers, lookup_address
from addendum.notify.tokens import address_digests

DIGEST = re.compile(r"[0-9a-f]{64}")
UID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Event:
    kind: str
    audience: str
    legal_basis: str
    source: str
    detail: str
    at: datetime


@dataclass(frozen=True)
class Attempt:
    at: datetime
    outcome: str
    reply: str


@dataclass(frozen=True)
class Bounce:
    kind: str
    status: str
    diagnostic: str
    reported_at: datetime


@dataclass(frozen=True)
class Notice:
    """One notice to the person, as the outbox records it; `stored_sha256` is recomputed from the stored bytes
    ("" once the message was erased)."""

    row_id: int
    policy_id: str
    version_id: str
    site_id: str
    language: str
    audience: str
    state: str
    content_hash: str
    message_id: str
    message_sha256: str
    stored_sha256: str
    queued_at: datetime
    sent_at: datetime | None
    reply: str
    timing: str
    timing_reason: str
    erased_at: datetime | None
    attempts: tuple[Attempt, ...]
    bounces: tuple[Bounce, ...]


@dataclass(frozen=True)
class PersonRecords:
    """A person's records: `subscriber` None once forgotten (then only `digests` name them), or when they are known
    by a site's user reference, which names acceptance records only."""

    asked: str
    subscriber: Subscriber | None
    digests: tuple[str, ...]
    events: tuple[Event, ...]
    notices: tuple[Notice, ...]
    acceptances: tuple[Acceptance, ...] = ()

    @property
    def found(self) -> bool:
        return self.subscriber is not None or bool(self.events or self.notices or self.acceptances)

    @property
    def erased(self) -> bool:
        return self.subscriber is None and (any(e.kind == "forgotten" for e in self.events)
                                            or any(n.erased_at is not None for n in self.notices))

    @property
    def audiences(self) -> tuple[str, ...]:
        if self.subscriber is not None:
            return (self.subscriber.audience,)
        return tuple(dict.fromkeys([e.audience for e in self.events] + [n.audience for n in self.notices]))

    @property
    def sites(self) -> tuple[str, ...]:
        own = self.subscriber.sites if self.subscriber is not None else ()
        return tuple(dict.fromkeys([*own, *(n.site_id for n in self.notices), *(a.site_id for a in self.acceptances)]))

    def languages(self, site_id: str | None = None) -> tuple[str, ...]:
        own = (self.subscriber.language,) if self.subscriber is not None else ()
        return tuple(dict.fromkeys([*own, *(n.language for n in self.notices if site_id in (None, n.site_id)),
                                    *(a.language for a in self.acceptances if site_id in (None, a.site_id))]))


def legal_basis(audience: str) -> str:
    return LEGAL_BASES.get(audience, "")


def _conditions(state: State, asked: str) -> tuple[Subscriber | None, list[str], list[str], str | None]:
    """The subscriber (when on the list), the keyed hashes, the subscriber ids and the address `asked` names."""
    text = asked.strip()
    if DIGEST.fullmatch(text.lower()):
        return None, [text.lower()], [], None
    with state.store.connect() as connection:
        if "@" not in text:  # a subscriber id, or a site's own user reference
            row = connection.execute(select(subscribers.c.email).where(subscribers.c.uid == text.lower())).first()
            found = load_subscribers(connection, [row.email]) if row else []
            return (found[0] if found else None), [], [text.lower()] if UID.fullmatch(text.lower()) else [], None
        address = lookup_address(text)
        found = load_subscribers(connection, [address])
    subscriber = found[0] if found else None
    digests = sorted(set(address_digests(state.keyring, address).values()))
    return subscriber, digests, [subscriber.uid] if subscriber else [], address


def person_records(state: State, asked: str) -> PersonRecords:
    """Everything the store holds of the person `asked` names: an address (also finding what was kept of it when it
    was forgotten, under any key version), a subscriber id, or the keyed hash of a forgotten address."""
    subscriber, digests, uids, address = _conditions(state, asked)
    with state.store.connect() as connection:
        outbox_match = [erased_recipient(d) for d in digests] + [outbox.c.subscriber_uid == uid for uid in uids]
        if address:
            outbox_match.append(outbox.c.recipient == address)
        rows = connection.execute(select(outbox).where(or_(*outbox_match)).order_by(outbox.c.id)).all() if outbox_match else []
        uids = sorted(set(uids) | {row.subscriber_uid for row in rows})
        event_match = [subscriber_events.c.digest.in_(digests)] if digests else []
        event_match += [subscriber_events.c.subscriber_uid.in_(uids)] if uids else []
        events = connection.execute(select(subscriber_events).where(or_(*event_match)).order_by(subscriber_events.c.at, subscriber_events.c.id)
                                    ).all() if event_match else []
        ids = [row.id for row in rows]
        tried = connection.execute(select(attempts).where(attempts.c.outbox_id.in_(ids)).order_by(attempts.c.id)).all() if ids else []
        bounced = connection.execute(select(bounces).where(bounces.c.outbox_id.in_(ids)).order_by(bounces.c.id)).all() if ids else []
    found_digests = {event.digest for event in events if event.digest} | \
        {row.recipient.split(":")[1] for row in rows if row.recipient.startswith("erased:")}
    notices = tuple(Notice(
        row.id, row.policy_id, row.version_id, row.site_id, row.language, row.audience, row.state, row.content_hash,
        row.message_id, row.message_sha256, hashlib.sha256(row.message).hexdigest() if row.message else "", row.created_at,
        row.sent_at, row.reply, row.timing or "", row.timing_reason or "", row.erased_at,
        tuple(Attempt(a.attempted_at, a.outcome, a.reply) for a in tried if a.outbox_id == row.id),
        tuple(Bounce(b.kind, b.status, b.diagnostic, b.reported_at) for b in bounced if b.outbox_id == row.id)) for row in rows)
    accepted = tuple(list_acceptances(state, user_ref=asked.strip())) if "@" not in asked and not digests else ()
    return PersonRecords(asked, subscriber, tuple(sorted(found_digests)),
                         tuple(Event(e.kind, e.audience, e.legal_basis, e.source, e.detail, e.at) for e in events), notices,
                         accepted)


@dataclass(frozen=True)
class StoredMessage:
    message_id: str
    message_sha256: str
    site_id: str
    language: str
    data: bytes  # b"" once the recipient was forgotten


def stored_messages(state: State, version_id: str, email: str | None = None, only_state: str | None = None) -> Iterator[StoredMessage]:
    """The stored bytes of a version's notices, exactly as sent (or to be sent), page by page."""
    query = select(outbox.c.id, outbox.c.message_id, outbox.c.message_sha256, outbox.c.site_id, outbox.c.language,
                   outbox.c.message).where(outbox.c.version_id == version_id)
    if email is not None:
        query = query.where(outbox.c.recipient == lookup_address(email))
    if only_state is not None:
        query = query.where(outbox.c.state == only_state)
    with state.store.connect() as connection:
        for row in batched_rows(connection, query, (outbox.c.id,), size=100):
            yield StoredMessage(row.message_id, row.message_sha256, row.site_id, row.language, bytes(row.message))


def message_file_name(message: StoredMessage) -> str:
    """A file name for a stored message: its Message-ID, made safe for any file system."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", message.message_id.strip("<>"))[:200] + ".eml"

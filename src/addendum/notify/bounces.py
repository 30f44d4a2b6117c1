"""Bounces and complaints: delivery status notifications (RFC 3464) and feedback reports (RFC 5965) read from the
bounce mailbox, matched to the notices they are about, recorded, and an address suppressed after enough of them."""

from __future__ import annotations

import email
import hashlib
import mailbox
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from addendum.config import Repo
from addendum.errors import UsageError
from addendum.notify.outbox import OutboxRow
from addendum.notify.store import Store, attempts, bounces, insert_ignoring, outbox, record_events, subscribers, utcnow

FINAL = ("hard", "complaint")  # what counts toward notify.bounce_limit
UNSENT_STATES = ("pending", "retry", "unknown")
TAG = re.compile(r"\+(\d+)-([0-9a-f]{10})@", re.IGNORECASE)
REPORTED_BY = "bounces import"
SHOWN_UNMATCHED = 20


def return_path(repo: Repo) -> str:
    """notify.return_path as an address ("" when unset: notices go out with the sender's address)."""
    from addendum.notify.subscribers import normalise_address

    value = str(repo.setting("notify.return_path")).strip()
    if not value:
        return ""
    try:
        return normalise_address(value)
    except ValueError as exc:
        raise UsageError(f"config value 'notify.return_path': {exc}",
                         'set [notify] return_path = "bounces@example.org", an address whose mail you can read') from None


def verp_tag(row_id: int, message_id: str) -> str:
    """The per-message part of the return path: the outbox row and a check that ties it to the Message-ID."""
    return f"{row_id}-{hashlib.sha256(message_id.encode()).hexdigest()[:10]}"


def envelope_for(address: str) -> Callable[[OutboxRow], str] | None:
    """The envelope sender of each notice (VERP): bounces+ROW-CHECK@domain for address bounces@domain."""
    if not address:
        return None
    local, domain = address.rsplit("@", 1)
    return lambda row: f"{local}+{verp_tag(row.id, row.message_id)}@{domain}"


@dataclass(frozen=True)
class Report:
    """One recipient's verdict in a report: `kind` hard | soft | complaint (delivered ones are not kept)."""

    kind: str
    status: str
    diagnostic: str
    recipient: str


@dataclass(frozen=True)
class ParsedReport:
    verdicts: tuple[Report, ...]
    message_ids: tuple[str, ...]  # of the notice the report is about, from its returned headers
    tags: tuple[tuple[int, str], ...]  # VERP tags found in the report's addresses


@dataclass
class BounceReport:
    """What one import did."""

    read: int = 0
    reports: int = 0  # delivery status notifications and complaints among them
    hard: int = 0
    soft: int = 0
    complaints: int = 0
    already: int = 0  # recorded by an earlier import of the same mailbox
    suppressed: list[str] = field(default_factory=list)  # addresses suppressed by this import
    unmatched: list[str] = field(default_factory=list)  # "key: why", the first SHOWN_UNMATCHED
    unmatched_count: int = 0
    not_reports: int = 0  # other mail in the mailbox

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _addresses(value: str) -> list[str]:
    return [address for _, address in getaddresses([value]) if address]


def _typed(value: str) -> str:
    """"rfc822; ann@example.org" → "ann@example.org"; "smtp; 550 5.1.1 …" → "550 5.1.1 …"."""
    return value.split(";", 1)[1].strip() if ";" in value else value.strip()


def _one_line(value: str) -> str:
    return " ".join(str(value).split())


def _original_headers(report: Message) -> Message | None:
    for part in report.walk():
        kind = part.get_content_type()
        if kind == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(part.get_payload())
            return HeaderParser().parsestr(text)
        if kind == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
    return None


def _fields(part: Message) -> list[Message]:
    """The field blocks of a message/delivery-status or message/feedback-report part, as the email package parses them."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    return [HeaderParser().parsestr(block) for block in re.split(r"\r?\n\r?\n", str(payload)) if block.strip()]


def parse_report(message: Message) -> ParsedReport | None:
    """The verdicts of a DSN (RFC 3464) or ARF complaint (RFC 5965), or None for other mail."""
    if message.get_content_type() != "multipart/report":
        return None
    report_type = (message.get_param("report-type") or "").lower()  # type: ignore[union-attr]
    verdicts: list[Report] = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status" and report_type == "delivery-status":
            for block in _fields(part)[1:]:  # the first block is about the message, the others each a recipient
                action = (block.get("Action") or "").strip().lower()
                status = (block.get("Status") or "").strip()
                recipient = _typed(block.get("Final-Recipient") or block.get("Original-Recipient") or "").lower()
                diagnostic = _one_line(_typed(block.get("Diagnostic-Code") or "")) or f"{action} ({status})"
                if action == "failed" and status.startswith("5"):
                    verdicts.append(Report("hard", status, diagnostic, recipient))
                elif action in ("delayed", "failed"):
                    verdicts.append(Report("soft", status, diagnostic, recipient))
        elif kind == "message/feedback-report" and report_type == "feedback-report":
            for block in _fields(part)[:1]:
                feedback = (block.get("Feedback-Type") or "abuse").strip().lower()
                recipient = _typed(block.get("Original-Rcpt-To") or "").lower()
                agent = _one_line(block.get("User-Agent") or "")
                verdicts.append(Report("complaint", feedback[:16], f"complaint ({feedback}) reported by {agent or 'the mailbox provider'}",
                                       recipient))
    if not verdicts:
        return None
    original = _original_headers(message)
    message_ids = (_one_line(original["Message-ID"]),) if original is not None and original.get("Message-ID") else ()
    candidates: list[str] = []
    for holder in (message, original):
        if holder is None:
            continue
        for name in ("To", "Delivered-To", "X-Original-To", "Envelope-To", "Return-Path", "Original-Mail-From"):
            for value in holder.get_all(name, []):
                candidates += _addresses(str(value))
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            for block in _fields(part)[:1]:
                candidates += _addresses(_typed(block.get("Original-Mail-From") or ""))
    tags = tuple(dict.fromkeys((int(m[1]), m[2].lower()) for c in candidates if (m := TAG.search(c))))
    return ParsedReport(tuple(verdicts), message_ids, tags)


def read_mailbox(path: Path) -> Iterator[tuple[str, bytes]]:
    """(key, raw message) of every message in an mbox file or a Maildir folder."""
    box: mailbox.Mailbox[Any]
    if path.is_dir():
        if not all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
            raise UsageError(f"{path} is a folder but not a Maildir (it has no cur/, new/ and tmp/)",
                             "give an mbox file or a Maildir folder")
        box = mailbox.Maildir(str(path), factory=None, create=False)
    elif path.is_file():
        box = mailbox.mbox(str(path), factory=None, create=False)
    else:
        raise UsageError(f"no mailbox at {path}", "give an mbox file or a Maildir folder")
    try:
        for key in box.iterkeys():
            yield str(key), box.get_bytes(key)
    finally:
        box.close()


def _match(connection: Connection, parsed: ParsedReport) -> Any:
    """The outbox row the report is about: by its VERP tag (checked against the Message-ID), else by Message-ID."""
    for row_id, check in parsed.tags:
        row = connection.execute(select(outbox).where(outbox.c.id == row_id)).first()
        if row is not None and verp_tag(row.id, row.message_id).endswith(check):
            return row
    for message_id in parsed.message_ids:
        row = connection.execute(select(outbox).where(outbox.c.message_id == message_id)).first()
        if row is not None:
            return row
    return None


def suppressed_addresses(limit: int) -> Any:
    """The addresses with at least `limit` hard bounces or complaints, as a query (for `NOT IN`)."""
    return (select(outbox.c.recipient).join(bounces, bounces.c.outbox_id == outbox.c.id)
            .where(bounces.c.kind.in_(FINAL)).group_by(outbox.c.recipient).having(func.count() >= max(1, limit)))


def _record(connection: Connection, row: Any, verdict: Report, source: str, limit: int, result: BounceReport) -> None:
    now = utcnow()
    before = connection.execute(select(func.count()).select_from(bounces).where(bounces.c.source == source,
                                                                                  bounces.c.outbox_id == row.id)).scalar_one()
    if before:
        result.already += 1
        return
    insert_ignoring(connection, bounces, {"outbox_id": row.id, "kind": verdict.kind, "status": verdict.status,
                                          "diagnostic": verdict.diagnostic, "reported_at": now, "source": source})
    record_events(connection, [{"subscriber_uid": row.subscriber_uid, "kind": "complained" if verdict.kind == "complaint" else "bounced",
                                "audience": row.audience, "source": REPORTED_BY, "detail": f"{verdict.kind} {verdict.status} {row.message_id}"}])
    outcome = {"hard": "bounced", "soft": "delayed", "complaint": "complaint"}[verdict.kind]
    connection.execute(insert(attempts).values(outbox_id=row.id, attempted_at=now, outcome=outcome,
                                               reply=verdict.diagnostic, sender=REPORTED_BY))
    if verdict.kind == "hard":
        result.hard += 1
        connection.execute(update(outbox).where(outbox.c.id == row.id).values(
            state="bounced", reply=verdict.diagnostic, updated_at=now, next_attempt_at=None))
    elif verdict.kind == "soft":
        result.soft += 1
    else:
        result.complaints += 1
        # A complaint from an optional subscriber is a request to stop: it unsubscribes them.
        connection.execute(update(subscribers).where(subscribers.c.email == row.recipient, subscribers.c.audience == "subscriber",
                                                     subscribers.c.unsubscribed_at.is_(None)).values(unsubscribed_at=now))
    if verdict.kind in FINAL:
        count = connection.execute(select(func.count()).select_from(bounces.join(outbox, outbox.c.id == bounces.c.outbox_id))
                                   .where(outbox.c.recipient == row.recipient, bounces.c.kind.in_(FINAL))).scalar_one()
        if count == max(1, limit):
            result.suppressed.append(row.recipient)
            reply = f"suppressed: {count} hard bounce(s) or complaint(s) (notify.bounce_limit {limit})"
            connection.execute(update(outbox).where(outbox.c.recipient == row.recipient, outbox.c.state.in_(UNSENT_STATES))
                               .values(state="cancelled", reply=reply, updated_at=now, next_attempt_at=None))


def import_bounces(repo: Repo, store: Store, path: Path) -> BounceReport:
    """Read every message of the mailbox at `path`; record each report against its notice (once, however often the
    mailbox is read); a hard bounce marks the notice `bounced` with the diagnostic, and an address with
    notify.bounce_limit hard bounces or complaints gets no more notices."""
    limit = int(repo.setting("notify.bounce_limit"))
    result = BounceReport()
    for key, raw in read_mailbox(path):
        result.read += 1
        parsed = parse_report(email.message_from_bytes(raw))
        if parsed is None:
            result.not_reports += 1
            continue
        result.reports += 1
        source = hashlib.sha256(raw).hexdigest()
        with store.begin() as connection:
            row = _match(connection, parsed)
            if row is None:
                result.unmatched_count += 1
                if len(result.unmatched) < SHOWN_UNMATCHED:
                    about = ", ".join(v.recipient for v in parsed.verdicts if v.recipient) or "an unknown recipient"
                    result.unmatched.append(f"{key}: a report about {about} that names no notice in the outbox "
                                            "(neither its return path nor a Message-ID)")
                continue
            # A notice has one recipient: its verdict, or the report's first when the MTA rewrote the address.
            verdict = next((v for v in parsed.verdicts if v.recipient == row.recipient), parsed.verdicts[0])
            _record(connection, row, verdict, source, limit, result)
    return result


"""The outbox state machine: rows stored before the first attempt, claimed, sent and recorded so a killed run resumes.

States: pending → sending → sent | retry (due again at next_attempt_at) | failed | unknown (the connection was lost
after the message went out: it may have arrived). `sending` left behind by a killed run becomes `unknown`;
`cancelled` marks a notice the person unsubscribed from or was removed before it went out.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from addendum.errors import NotifyError
from addendum.notify.smtp import Delivery, SmtpAuthError, SmtpConnectError, SmtpConnection, SmtpSettings
from addendum.notify.store import Store, attempts, batched_rows, locks, outbox, utcnow

UnknownPolicy = Literal["retry", "hold"]
DUE_STATES = ("pending", "retry", "unknown")
LOCK_NAME = "notify"
STALE_AFTER = timedelta(seconds=120)
HEARTBEAT_EVERY = 10.0
MAX_BACKOFF = timedelta(hours=24)


@dataclass(frozen=True)
class SendOptions:
    rate_per_second: float = 0.0
    connections: int = 1
    max_attempts: int = 8
    retry_delay: float = 300.0
    error_window: int = 20
    error_threshold: float = 0.5
    unknown: UnknownPolicy = "retry"


@dataclass(frozen=True)
class OutboxRow:
    id: int
    recipient: str
    state: str
    attempts: int
    message: bytes


@dataclass
class SendReport:
    """What one run did; `stopped` says why it ended early ("" when it went through everything due); `paused`, that
    it was the error rate (the outbox is intact: run again later) rather than the login or the connection."""

    sent: int = 0
    retry: int = 0
    failed: int = 0
    unknown: int = 0
    recovered: int = 0
    stopped: str = ""
    hint: str = ""
    paused: bool = False
    next_retry_at: datetime | None = None

    @property
    def attempted(self) -> int:
        return self.sent + self.retry + self.failed + self.unknown


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_HELD_HERE: set[str] = set()  # owners of the leases this process holds


class Lease:
    """The right to send, held by one process at a time; taken over once its holder is dead or silent."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.owner = uuid.uuid4().hex
        self.host = socket.gethostname()[:255]
        self.pid = os.getpid()
        self._last_beat = 0.0

    def _holder_alive(self, row: Any) -> bool:
        if row.host == self.host and row.pid == self.pid:
            # Our own pid under another owner: a lease of this process, or one of a killed earlier run whose pid came
            # round again (a container restarted with the same hostname), which no process holds any more.
            return row.owner in _HELD_HERE
        if row.host == self.host:
            return _pid_alive(row.pid)
        return bool(utcnow() - row.heartbeat_at < STALE_AFTER)

    def acquire(self) -> None:
        values = {"owner": self.owner, "host": self.host, "pid": self.pid, "heartbeat_at": utcnow()}
        with self.store.begin() as connection:
            row = connection.execute(select(locks).where(locks.c.name == LOCK_NAME)).first()
            if row is None:
                try:
                    with connection.begin_nested():
                        connection.execute(insert(locks).values(name=LOCK_NAME, **values))
                    _HELD_HERE.add(self.owner)
                    return
                except IntegrityError:
                    row = connection.execute(select(locks).where(locks.c.name == LOCK_NAME)).first()
            if row is not None and self._holder_alive(row):
                raise NotifyError(f"another `addendum notify` is sending (process {row.pid} on {row.host}, "
                                  f"last seen {row.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC)",
                                  "wait for it to finish; if it died on another machine, run again after two minutes")
            taken = connection.execute(update(locks).where(locks.c.name == LOCK_NAME, locks.c.owner == row.owner)
                                       .values(**values)) if row is not None else None
            if taken is not None and taken.rowcount != 1:
                raise NotifyError("another `addendum notify` started at the same moment", "run again once it has finished")
        _HELD_HERE.add(self.owner)
        self._last_beat = time.monotonic()

    def beat(self) -> None:
        if time.monotonic() - self._last_beat < HEARTBEAT_EVERY:
            return
        with self.store.begin() as connection:
            connection.execute(update(locks).where(locks.c.name == LOCK_NAME, locks.c.owner == self.owner)
                               .values(heartbeat_at=utcnow()))
        self._last_beat = time.monotonic()

    def release(self) -> None:
        with self.store.begin() as connection:
            connection.execute(delete(locks).where(locks.c.name == LOCK_NAME, locks.c.owner == self.owner))
        _HELD_HERE.discard(self.owner)


@contextmanager
def sending_lease(store: Store) -> Iterator[Lease]:
    lease = Lease(store)
    lease.acquire()
    try:
        yield lease
    finally:
        lease.release()


def recover_interrupted(store: Store, version_id: str) -> int:
    """Messages a killed run was sending: they may have arrived, so they become `unknown` (call with the lease held)."""
    now = utcnow()
    with store.begin() as connection:
        rows = [r.id for r in connection.execute(select(outbox.c.id).where(outbox.c.version_id == version_id,
                                                                            outbox.c.state == "sending"))]
        for row_id in rows:
            connection.execute(update(outbox).where(outbox.c.id == row_id).values(
                state="unknown", updated_at=now, reply="interrupted while sending: it may have been delivered"))
            connection.execute(insert(attempts).values(outbox_id=row_id, attempted_at=now, outcome="unknown",
                                                       reply="interrupted while sending: it may have been delivered"))
    return len(rows)


def due_condition(version_id: str, now: datetime, unknown: UnknownPolicy) -> Any:
    states = [outbox.c.state == "pending", and_(outbox.c.state == "retry", outbox.c.next_attempt_at <= now)]
    if unknown == "retry":
        states.append(outbox.c.state == "unknown")
    return and_(outbox.c.version_id == version_id, or_(*states))


def count_due(store: Store, version_id: str, unknown: UnknownPolicy) -> int:
    with store.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(outbox)
                                      .where(due_condition(version_id, utcnow(), unknown))).scalar_one())


def backoff(attempt: int, base: float) -> timedelta:
    """Exponential backoff with jitter, so retries of many messages do not hit the server at one instant."""
    delay = min(timedelta(seconds=base * 2 ** (attempt - 1)), MAX_BACKOFF)
    return delay * random.uniform(0.5, 1.5)


# Built once: the sender runs them thousands of times, and building a statement costs more than running it.
CLAIM = update(outbox).where(outbox.c.id == bindparam("b_id"), outbox.c.state == bindparam("b_from")).values(
    state="sending", updated_at=bindparam("b_now"))
RELEASE = update(outbox).where(outbox.c.id == bindparam("b_id"), outbox.c.state == "sending").values(
    state=bindparam("b_to"), updated_at=bindparam("b_now"))
RECORD = update(outbox).where(outbox.c.id == bindparam("b_id")).values(
    state=bindparam("b_state"), attempts=bindparam("b_attempts"), reply=bindparam("b_reply"), updated_at=bindparam("b_now"),
    next_attempt_at=bindparam("b_next"), sent_at=bindparam("b_sent"))
LOG = insert(attempts).values(outbox_id=bindparam("b_id"), attempted_at=bindparam("b_now"), outcome=bindparam("b_state"),
                              reply=bindparam("b_reply"))


class OutboxSender:
    """Sends the due rows of one version over `connections` reused SMTP connections, recording every outcome.

    A row is marked `sending` (committed) before its message goes out, and its outcome is committed as soon as it is
    known, in the same transaction as the next claims: at most one message per connection is ever in flight."""

    def __init__(self, store: Store, version_id: str, envelope_from: str, smtp: SmtpSettings, options: SendOptions,
                 progress: Callable[[int], None] | None = None,
                 connect: Callable[[SmtpSettings], SmtpConnection] = SmtpConnection) -> None:
        self.store, self.version_id, self.envelope_from = store, version_id, envelope_from
        self.smtp, self.options, self.progress, self.connect = smtp, options, progress, connect
        self.report = SendReport()
        self._recent: deque[bool] = deque(maxlen=max(1, options.error_window))
        self._local = threading.local()
        self._connections: list[SmtpConnection] = []
        self._lock = threading.Lock()

    def _connection(self) -> SmtpConnection:
        connection: SmtpConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self.connect(self.smtp)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _deliver(self, row: OutboxRow) -> Delivery:
        return self._connection().deliver(self.envelope_from, row.recipient, row.message)

    def _outcome(self, row: OutboxRow, delivery: Delivery, now: datetime) -> dict[str, Any]:
        tries = row.attempts + 1
        outcome, reply = delivery.outcome, delivery.reply
        if outcome == "retry" and tries >= self.options.max_attempts:
            outcome, reply = "failed", f"{reply} (gave up after {tries} attempts)"
        setattr(self.report, outcome, getattr(self.report, outcome) + 1)
        self._recent.append(outcome != "sent")
        window = self._recent.maxlen or 1
        errors = sum(self._recent)
        if len(self._recent) == window and errors / window >= self.options.error_threshold and not self.report.stopped:
            self.report.stopped = f"paused: {errors} of the last {window} attempts failed (last reply: {reply})"
            self.report.hint = "find the cause with `addendum notices`, then run notify again: what is left stays queued"
            self.report.paused = True
        return {"b_id": row.id, "b_state": outcome, "b_attempts": tries, "b_reply": reply, "b_now": now,
                "b_next": now + backoff(tries, self.options.retry_delay) if outcome == "retry" else None,
                "b_sent": now if outcome == "sent" else None}

    def _settle(self, done: list[tuple[OutboxRow, Future[Delivery]]], now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(outcomes to record, rows to hand back) for finished deliveries."""
        records, releases = [], []
        for row, future in done:
            try:
                records.append(self._outcome(row, future.result(), now))
            except (SmtpAuthError, SmtpConnectError) as exc:
                releases.append({"b_id": row.id, "b_to": row.state, "b_now": now})
                if not self.report.stopped:
                    self.report.stopped, self.report.hint = exc.message, exc.hint
        return records, releases

    def _due(self) -> Iterator[OutboxRow]:
        query = select(outbox.c.id, outbox.c.recipient, outbox.c.state, outbox.c.attempts, outbox.c.message).where(
            due_condition(self.version_id, utcnow(), self.options.unknown))
        with self.store.connect() as connection:
            for row in batched_rows(connection, query, (outbox.c.id,), size=200):
                yield OutboxRow(row.id, row.recipient, row.state, row.attempts, row.message)

    def run(self, lease: Lease) -> SendReport:
        interval = 1.0 / self.options.rate_per_second if self.options.rate_per_second > 0 else 0.0
        next_at = time.monotonic()
        workers = max(1, self.options.connections)
        due = self._due()
        futures: dict[Future[Delivery], OutboxRow] = {}
        exhausted = False
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="smtp") as pool, self.store.connect() as db:
            try:
                while futures or not (exhausted or self.report.stopped):
                    if futures and (len(futures) >= workers or exhausted or self.report.stopped):
                        wait(list(futures), return_when=FIRST_COMPLETED)
                    done = [(futures.pop(f), f) for f in [f for f in futures if f.done()]]
                    now = utcnow()
                    records, releases = self._settle(done, now)
                    claims: list[OutboxRow] = []
                    while not (exhausted or self.report.stopped) and len(futures) + len(claims) < workers:
                        if interval:
                            if claims:
                                break  # paced: one claim per pass, after waiting its turn
                            time.sleep(max(0.0, next_at - time.monotonic()))
                            next_at = max(next_at, time.monotonic() - interval) + interval
                        row = next(due, None)
                        if row is None:
                            exhausted = True
                        else:
                            claims.append(row)
                    claimed = self._commit(db, records, releases, claims, now)
                    for row in claimed:
                        futures[pool.submit(self._deliver, row)] = row
                    if records and self.progress:
                        self.progress(len(records))
                    lease.beat()
            finally:
                for future in list(futures):
                    future.cancel()
                pool.shutdown(wait=True)
                leftovers = [(row, f) for f, row in futures.items() if not f.cancelled()]
                records, releases = self._settle(leftovers, utcnow())
                releases += [{"b_id": row.id, "b_to": row.state, "b_now": utcnow()} for f, row in futures.items() if f.cancelled()]
                self._commit(db, records, releases, [], utcnow())
                for connection in self._connections:
                    connection.close()
        self.report.next_retry_at = next_retry(self.store, self.version_id)
        return self.report

    @staticmethod
    def _commit(db: Connection, records: list[dict[str, Any]], releases: list[dict[str, Any]], claims: list[OutboxRow],
                now: datetime) -> list[OutboxRow]:
        """Record outcomes and claim the next rows in one transaction; returns the rows actually claimed."""
        if not (records or releases or claims):
            return []
        claimed = []
        with db.begin():
            if records:
                db.execute(RECORD, records)
                db.execute(LOG, records)
            if releases:
                db.execute(RELEASE, releases)
            for row in claims:
                # A row cancelled (unsubscribed, removed) since it was read is no longer in the state it was read in.
                if db.execute(CLAIM, {"b_id": row.id, "b_from": row.state, "b_now": now}).rowcount == 1:
                    claimed.append(row)
        return claimed


def next_retry(store: Store, version_id: str) -> datetime | None:
    with store.connect() as connection:
        value = connection.execute(select(func.min(outbox.c.next_attempt_at)).where(
            outbox.c.version_id == version_id, outbox.c.state == "retry")).scalar_one()
    return value  # type: ignore[no-any-return]

"""The outbox state machine: rows stored before the first attempt, claimed, sent and recorded so a killed run resumes.

States: pending → sending → sent | retry (due again at next_attempt_at) | failed | unknown (the connection was lost,
or the message's deadline ran out, after the message went out: it may have arrived). `sending` left behind by a killed run becomes `unknown`;
`cancelled` marks a notice the person unsubscribed from or was removed before it went out.
"""

from __future__ import annotations

import contextlib
import functools
import math
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, type_coerce, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from addendum.errors import ConfigError, NotifyError
from addendum.notify.smtp import Delivery, SmtpAuthError, SmtpConnectError, SmtpConnection, SmtpSettings
from addendum.notify.store import Store, UtcDateTime, attempts, batched_rows, locks, outbox, utcnow

UnknownPolicy = Literal["retry", "hold"]
DUE_STATES = ("pending", "retry", "unknown")
OUTSTANDING_STATES = ("pending", "sending", "retry", "unknown")  # still owed to someone; `failed` and `cancelled` are final
LOCK_NAME = "notify"
HEARTBEAT_INTERVAL = 10.0  # default of notify.heartbeat_interval
MISSED_BEATS = 3  # a holder judged by its heartbeat alone is gone after this many intervals without one
PID_REUSE_SLACK = timedelta(seconds=2)  # /proc counts start times in clock ticks from a boot time in whole seconds
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
    heartbeat_interval: float = HEARTBEAT_INTERVAL


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


class LeaseLost(NotifyError):
    """Another sender took this run's lease over: the run stops at once, leaving every row it had not recorded."""


@dataclass(frozen=True)
class LocalProcess:
    """A process on this host as /proc shows it: its one-letter state, and when it started."""

    state: str  # R S D I: running or waiting; T t: stopped; Z X: dead; "" where this system has no /proc
    started_at: datetime | None


@functools.cache
def _has_proc() -> bool:
    return Path("/proc/self/stat").is_file()


@functools.cache
def _boot_time() -> datetime | None:
    try:
        for line in Path("/proc/stat").read_text(encoding="ascii").splitlines():
            if line.startswith("btime "):
                return datetime.fromtimestamp(int(line.split()[1]), UTC)
    except (OSError, ValueError):
        pass
    return None


def local_process(pid: int) -> LocalProcess | None:
    """The process `pid` on this host, or None when there is none. Read from /proc, not probed with kill(pid, 0): a
    killed process its parent has not reaped (a zombie) still answers that probe, for as long as the parent lives."""
    if not _has_proc():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return LocalProcess("", None)
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None
    except OSError:
        return LocalProcess("", None)
    fields = text[text.rfind(")") + 2:].split()  # the command name in parentheses may hold spaces and parentheses
    boot = _boot_time()
    started = boot + timedelta(seconds=int(fields[19]) / os.sysconf("SC_CLK_TCK")) if boot and len(fields) > 19 else None
    return LocalProcess(fields[0] if fields else "", started)


@dataclass(frozen=True)
class Verdict:
    """Whether a lease's holder may be replaced: in `wait` seconds (0: now; inf: not while it runs), and why."""

    wait: float
    why: str


_HELD_HERE: set[str] = set()  # owners of the leases this process holds


def _database_clock(dialect: str) -> Any:
    """The database server's clock in UTC, as SQL: senders on several hosts then judge heartbeats by one clock."""
    return type_coerce(func.timezone("UTC", func.clock_timestamp()), UtcDateTime) if dialect == "postgresql" else None


class Lease:
    """The right to send, held by one process at a time. A thread of its own renews it (`sending_lease`), whatever
    the sender is doing; every transaction that changes the outbox renews it first (`fence`), so a sender that lost
    it changes nothing more. It is taken over once its holder is gone: at once when the process on this host is
    dead (a zombie too), one heartbeat interval after a stopped one last renewed it, and MISSED_BEATS intervals after
    the last heartbeat of a holder on another host."""

    def __init__(self, store: Store, heartbeat_interval: float = HEARTBEAT_INTERVAL) -> None:
        if not heartbeat_interval > 0:
            raise ConfigError(f"config value 'notify.heartbeat_interval': expected more than 0 seconds, got {heartbeat_interval}",
                              f"set it in addendum.toml (default {HEARTBEAT_INTERVAL:g})")
        self.store = store
        self.interval = heartbeat_interval
        self.owner = uuid.uuid4().hex
        self.host = socket.gethostname()[:255]
        self.pid = os.getpid()
        self.lost = threading.Event()
        self._taken_by = ""
        self._clock = _database_clock(store.dialect)
        self._renew = update(locks).where(locks.c.name == LOCK_NAME, locks.c.owner == self.owner).values(
            heartbeat_at=self._clock if self._clock is not None else bindparam("b_now", type_=UtcDateTime))

    @property
    def stale_after(self) -> float:
        return self.interval * MISSED_BEATS

    def _now(self, connection: Connection) -> datetime:
        if self._clock is None:
            return utcnow()
        return connection.execute(select(self._clock)).scalar_one()  # type: ignore[no-any-return]

    def judge(self, row: Any, now: datetime) -> Verdict:
        """How soon the holder named by the lock row `row` may be replaced."""
        age = max(0.0, (now - row.heartbeat_at).total_seconds())
        renewed = f"renewed {age:.1f} s ago"
        if row.host != self.host:
            return Verdict(max(0.0, self.stale_after - age), f"judged by its heartbeat, {renewed}")
        if row.pid == self.pid:
            # Our own pid under another owner: a lease of this process, or one of a killed earlier run whose pid came
            # round again (a container restarted with the same hostname), which no process holds any more.
            return Verdict(math.inf if row.owner in _HELD_HERE else 0.0, "this process holds it")
        process = local_process(row.pid)
        if process is None:
            return Verdict(0.0, "it has exited")
        if process.state in ("Z", "X"):
            return Verdict(0.0, "it was killed and is a zombie its parent has not reaped")
        if process.started_at is not None and process.started_at > row.heartbeat_at + PID_REUSE_SLACK:
            return Verdict(0.0, "it has exited; a later process has its number")
        if process.state in ("T", "t"):
            return Verdict(max(0.0, self.interval - age), f"it is stopped (state {process.state}), {renewed}")
        # Alive. Its heartbeat thread renews the lease even while one delivery takes long; a holder that has not
        # renewed for MISSED_BEATS intervals cannot change the outbox any more (every change renews first).
        return Verdict(0.0 if age > self.stale_after else math.inf, f"it is running, {renewed}")

    def acquire(self) -> None:
        with self.store.begin() as connection:
            self._acquire(connection)
        _HELD_HERE.add(self.owner)

    def _acquire(self, connection: Connection) -> None:
        now = self._now(connection)
        values = {"owner": self.owner, "host": self.host, "pid": self.pid, "heartbeat_at": now}
        row = connection.execute(select(locks).where(locks.c.name == LOCK_NAME)).first()
        if row is None:
            try:
                with connection.begin_nested():
                    connection.execute(insert(locks).values(name=LOCK_NAME, **values))
                return
            except IntegrityError:
                row = connection.execute(select(locks).where(locks.c.name == LOCK_NAME)).first()
        if row is None:
            raise NotifyError("another `addendum notify` started at the same moment", "run again once it has finished")
        verdict = self.judge(row, now)
        if verdict.wait > 0:
            raise NotifyError(f"another `addendum notify` is sending (process {row.pid} on {row.host}: {verdict.why}; "
                              f"last seen {row.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC)", self._refusal_hint(row, verdict))
        # Conditional on the heartbeat judged: a holder that renewed meanwhile keeps its lease.
        taken = connection.execute(update(locks).where(locks.c.name == LOCK_NAME, locks.c.owner == row.owner,
                                                       locks.c.heartbeat_at == row.heartbeat_at).values(**values))
        if taken.rowcount != 1:
            raise NotifyError("another `addendum notify` renewed or took the lease at the same moment",
                              "run again once it has finished")

    def _refusal_hint(self, row: Any, verdict: Verdict) -> str:
        if row.host == self.host and row.pid == self.pid:
            return "this process holds the lease already"
        if math.isinf(verdict.wait):
            return (f"wait for it to finish, or stop it (kill {row.pid}): a sender that exited or was killed is "
                    "taken over at once, a stopped one after one heartbeat interval")
        wait = f"{math.ceil(verdict.wait * 10) / 10:g} s"
        if row.host == self.host:
            return f"its lease can be taken over in {wait} if it stays stopped: run again then (or resume it: kill -CONT {row.pid})"
        return (f"its lease can be taken over in {wait} if it does not renew it by then "
                f"({self.stale_after:g} s without a heartbeat): if it is gone, run again then")

    def fence(self, connection: Connection) -> None:
        """Renew the lease inside the caller's transaction, or raise LeaseLost when it is no longer ours. The lock row
        stays locked until that transaction ends: a takeover waits for it, or this sees the takeover and changes nothing."""
        if self.lost.is_set():
            raise self._lost_error()
        if connection.execute(self._renew, {} if self._clock is not None else {"b_now": utcnow()}).rowcount != 1:
            holder = connection.execute(select(locks.c.pid, locks.c.host).where(locks.c.name == LOCK_NAME)).first()
            self._taken_by = f"process {holder.pid} on {holder.host}" if holder is not None else "another sender"
            self.lost.set()
            raise self._lost_error()

    def check(self) -> None:
        """Raise LeaseLost once the heartbeat (or a fence) found the lease taken over."""
        if self.lost.is_set():
            raise self._lost_error()

    def _lost_error(self) -> LeaseLost:
        return LeaseLost(f"this run's sending lease was taken over by {self._taken_by or 'another sender'}: "
                         "it stopped at once and recorded nothing more",
                         "the run that holds the lease sends the rest; a message this run had in flight is `unknown` "
                         "there (see `addendum notices`)")

    def release(self) -> None:
        with self.store.begin() as connection:
            connection.execute(delete(locks).where(locks.c.name == LOCK_NAME, locks.c.owner == self.owner))
        _HELD_HERE.discard(self.owner)


class Heartbeat(threading.Thread):
    """Renews a lease every heartbeat interval over a database connection of its own, so a sender blocked on one
    slow delivery (or a prompt, or queueing) is never mistaken for a dead one."""

    def __init__(self, lease: Lease) -> None:
        super().__init__(name="lease-heartbeat", daemon=True)
        self.lease = lease
        self._stopping = threading.Event()

    def run(self) -> None:
        connection: Connection | None = None
        try:
            while not self._stopping.wait(self.lease.interval):
                try:
                    if connection is None:
                        connection = self.lease.store.connect()
                    with connection.begin():
                        self.lease.fence(connection)
                except LeaseLost:
                    return
                except SQLAlchemyError:
                    # The database is unreachable for now: so is every change this sender could make. Reconnect and
                    # try again at the next beat.
                    if connection is not None:
                        with contextlib.suppress(SQLAlchemyError):
                            connection.invalidate()
                            connection.close()
                    connection = None
        finally:
            if connection is not None:
                connection.close()

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=max(1.0, self.lease.interval))


@contextmanager
def sending_lease(store: Store, heartbeat_interval: float = HEARTBEAT_INTERVAL) -> Iterator[Lease]:
    """Hold the sending lease for the block, renewed by its own thread every `heartbeat_interval` seconds."""
    lease = Lease(store, heartbeat_interval)
    lease.acquire()
    heartbeat = Heartbeat(lease)
    heartbeat.start()
    try:
        yield lease
    finally:
        heartbeat.stop()
        lease.release()


def recover_interrupted(store: Store, version_id: str, lease: Lease) -> int:
    """Messages a killed run was sending: they may have arrived, so they become `unknown` (call with the lease held)."""
    now = utcnow()
    reply = "interrupted while sending: it may have been delivered"
    with store.begin() as connection:
        lease.fence(connection)
        rows = [r.id for r in connection.execute(select(outbox.c.id).where(outbox.c.version_id == version_id,
                                                                            outbox.c.state == "sending"))]
        for row_id in rows:
            connection.execute(update(outbox).where(outbox.c.id == row_id, outbox.c.state == "sending").values(
                state="unknown", updated_at=now, reply=reply))
            connection.execute(insert(attempts).values(outbox_id=row_id, attempted_at=now, outcome="unknown", reply=reply))
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

    def _deliver(self, row: OutboxRow, lease: Lease) -> Delivery:
        lease.check()  # the heartbeat found the lease taken over since the claim: this message is no longer ours
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
                    claimed = self._commit(db, lease, records, releases, claims, now)
                    for row in claimed:
                        futures[pool.submit(self._deliver, row, lease)] = row
                    if records and self.progress:
                        self.progress(len(records))
            finally:
                for future in list(futures):
                    future.cancel()
                pool.shutdown(wait=True)
                try:
                    # A lost lease leaves the rows in flight `sending`: the run that holds it now records them `unknown`.
                    if not lease.lost.is_set():
                        leftovers = [(row, f) for f, row in futures.items() if not f.cancelled()]
                        records, releases = self._settle(leftovers, utcnow())
                        releases += [{"b_id": row.id, "b_to": row.state, "b_now": utcnow()}
                                     for f, row in futures.items() if f.cancelled()]
                        self._commit(db, lease, records, releases, [], utcnow())
                finally:
                    for connection in self._connections:
                        connection.close()
        self.report.next_retry_at = next_retry(self.store, self.version_id)
        return self.report

    @staticmethod
    def _commit(db: Connection, lease: Lease, records: list[dict[str, Any]], releases: list[dict[str, Any]],
                claims: list[OutboxRow], now: datetime) -> list[OutboxRow]:
        """Record outcomes and claim the next rows in one transaction, only while the lease is ours (LeaseLost
        otherwise, with nothing changed); returns the rows actually claimed."""
        if not (records or releases or claims):
            return []
        claimed = []
        with db.begin():
            lease.fence(db)
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

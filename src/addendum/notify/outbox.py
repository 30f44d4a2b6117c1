"""The outbox state machine: rows stored before the first attempt, claimed, sent and recorded so a killed run resumes.

States: pending → sending → sent | retry (due again at next_attempt_at) | failed | unknown (the connection was lost,
or the message's deadline ran out, after the message went out: it may have arrived) | bounced (a delivery status
notification came back); `cancelled` marks a notice the person unsubscribed from or was removed before it went out.

Many senders share one outbox. A sender claims due rows in batches (claimed_by, lease_until; on PostgreSQL with
SELECT … FOR UPDATE SKIP LOCKED) without changing their state, and marks a row `sending` only once its DATA command
is written, before the message itself goes out. So the claimed rows of a sender that died go
back to the others as they were (pending, retry), and only a row whose DATA was started can become `unknown`.
A claim lives as long as its sender's lease ("sender:…" in `locks`), renewed by a thread of its own: it is taken back
at once when the sender's process on this host is dead, after one heartbeat interval when it is stopped, and after
MISSED_BEATS intervals without a heartbeat from another host — never while it runs. SQLite keeps one sender at a time (the "notify" lease).
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
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Interval, and_, bindparam, delete, func, insert, literal, or_, select, text, type_coerce, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from addendum.errors import ConfigError, NotifyError
from addendum.notify.smtp import Delivery, SmtpAuthError, SmtpConnectError, SmtpConnection, SmtpSettings
from addendum.notify.store import Store, UtcDateTime, attempts, insert_ignoring, locks, outbox, rate_limits, utcnow
from addendum.processes import stop_if_orphaned

UnknownPolicy = Literal["retry", "hold"]
DUE_STATES = ("pending", "retry", "unknown")
OUTSTANDING_STATES = ("pending", "sending", "retry", "unknown")  # still owed to someone; `failed` and `cancelled` are final
LOCK_NAME = "notify"  # the lease of the one sender of a SQLite store
SENDER_PREFIX = "sender:"  # + the owner: the lease of one sending process, which its outbox claims live by
CLAIM_BATCH = 50  # rows claimed at a time by one sender: few round trips, few rows held up when it dies
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
    claim_batch: int = CLAIM_BATCH


@dataclass(frozen=True)
class OutboxRow:
    id: int
    recipient: str
    state: str
    attempts: int
    message: bytes
    message_id: str = ""


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
    workers: int = 1
    died: list[str] = field(default_factory=list)  # workers that ended without a report (killed), as "pid N (signal)"

    @property
    def attempted(self) -> int:
        return self.sent + self.retry + self.failed + self.unknown

    def add(self, other: SendReport) -> None:
        """Count another worker's run into this one; the first stop (an error before a pause) is kept."""
        for name in ("sent", "retry", "failed", "unknown", "recovered"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.stopped and (not self.stopped or (self.paused and not other.paused)):
            self.stopped, self.hint, self.paused = other.stopped, other.hint, other.paused


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
    """A right held by one process at a time: to be the one sender of a SQLite store (LOCK_NAME), or, as a
    SenderLease, to hold outbox claims. A thread of its own renews it (`sending_lease`), whatever the sender is doing;
    `fence` renews it inside a transaction, so a holder that lost it changes nothing more. It is taken over once its
    holder is gone: at once when the process on this host is dead (a zombie too), one heartbeat interval after a
    stopped one last renewed it, and MISSED_BEATS intervals after the last heartbeat of a holder on another host."""

    def __init__(self, store: Store, heartbeat_interval: float = HEARTBEAT_INTERVAL, name: str = LOCK_NAME) -> None:
        if not heartbeat_interval > 0:
            raise ConfigError(f"config value 'notify.heartbeat_interval': expected more than 0 seconds, got {heartbeat_interval}",
                              f"set it in addendum.toml (default {HEARTBEAT_INTERVAL:g})")
        self.store = store
        self.interval = heartbeat_interval
        self.owner = uuid.uuid4().hex
        self.name = name or SENDER_PREFIX + self.owner
        self.host = socket.gethostname()[:255]
        self.pid = os.getpid()
        self.lost = threading.Event()
        self._taken_by = ""
        self._clock = _database_clock(store.dialect)
        self._renew = update(locks).where(locks.c.name == self.name, locks.c.owner == self.owner).values(
            heartbeat_at=self._clock if self._clock is not None else bindparam("b_now", type_=UtcDateTime))

    @property
    def stale_after(self) -> float:
        return self.interval * MISSED_BEATS

    @property
    def label(self) -> str:
        """Who holds it, for evidence rows and messages."""
        return f"{self.host} pid {self.pid} ({self.owner[:8]})"

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
        row = connection.execute(select(locks).where(locks.c.name == self.name)).first()
        if row is None:
            try:
                with connection.begin_nested():
                    connection.execute(insert(locks).values(name=self.name, **values))
                return
            except IntegrityError:
                row = connection.execute(select(locks).where(locks.c.name == self.name)).first()
        if row is None:
            raise NotifyError("another `addendum notify` started at the same moment", "run again once it has finished")
        verdict = self.judge(row, now)
        if verdict.wait > 0:
            raise NotifyError(f"another `addendum notify` is sending (process {row.pid} on {row.host}: {verdict.why}; "
                              f"last seen {row.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC)", self._refusal_hint(row, verdict))
        # Conditional on the heartbeat judged: a holder that renewed meanwhile keeps its lease.
        taken = connection.execute(update(locks).where(locks.c.name == self.name, locks.c.owner == row.owner,
                                                       locks.c.heartbeat_at == row.heartbeat_at).values(**values))
        if taken.rowcount != 1:
            raise NotifyError("another `addendum notify` renewed or took the lease at the same moment",
                              "run again once it has finished")

    def _refusal_hint(self, row: Any, verdict: Verdict) -> str:
        if row.host == self.host and row.pid == self.pid:
            return "this process holds the lease already"
        if self.store.dialect == "sqlite":
            # The embedded store keeps one sender; several share a PostgreSQL outbox.
            return self._refusal_wait(row, verdict) + (
                "; a SQLite state store keeps one sender at a time: to send with several, use PostgreSQL "
                "(ADDENDUM_DATABASE_URL=postgresql+psycopg://…) and `notify --workers N`")
        return self._refusal_wait(row, verdict)

    def _refusal_wait(self, row: Any, verdict: Verdict) -> str:
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
            holder = connection.execute(select(locks.c.pid, locks.c.host).where(locks.c.name == self.name)).first()
            self._taken_by = f"process {holder.pid} on {holder.host}" if holder is not None else "another sender"
            self.lost.set()
            raise self._lost_error()

    def beat(self, connection: Connection) -> None:
        """What the heartbeat does every interval, inside its transaction."""
        self.fence(connection)

    def check(self) -> None:
        """Raise LeaseLost once the heartbeat (or a fence) found the lease taken over."""
        if self.lost.is_set():
            raise self._lost_error()

    def confirm(self, connection: Connection) -> None:
        """Raise LeaseLost unless the lease is still this holder's (a read: for when a claim was found taken)."""
        held = connection.execute(select(locks.c.owner).where(locks.c.name == self.name)).scalar_one_or_none()
        if held != self.owner:
            self._taken_by = self._taken_by or "another sender"
            self.lost.set()
            raise self._lost_error()

    def _lost_error(self) -> LeaseLost:
        return LeaseLost(f"this run's sending lease was taken over by {self._taken_by or 'another sender'}: "
                         "it stopped at once and recorded nothing more",
                         "the run that holds the lease sends the rest; a message this run had in flight is `unknown` "
                         "there (see `addendum notices`)")

    def release(self) -> None:
        with self.store.begin() as connection:
            connection.execute(delete(locks).where(locks.c.name == self.name, locks.c.owner == self.owner))
        _HELD_HERE.discard(self.owner)


class SenderLease(Lease):
    """The lease of one sending process: the outbox rows it claims carry its owner, and live as long as it does. Its
    heartbeat renews the rows' lease_until too, so a reader that judges rows alone sees the same."""

    def __init__(self, store: Store, heartbeat_interval: float = HEARTBEAT_INTERVAL) -> None:
        super().__init__(store, heartbeat_interval, name="")

    def lease_end(self) -> Any:
        """When this sender's claims run out unless renewed, as a value or (PostgreSQL) SQL on the server's clock."""
        span = timedelta(seconds=self.stale_after)
        if self._clock is not None:
            return type_coerce(func.timezone("UTC", func.clock_timestamp() + literal(span, Interval())), UtcDateTime)
        return utcnow() + span

    def beat(self, connection: Connection) -> None:
        self.fence(connection)
        mine = select(outbox.c.id).where(outbox.c.claimed_by == self.owner)
        if self.store.dialect == "postgresql":
            # A row locked now is being started or recorded by this sender, which renews or ends its claim itself;
            # waiting for it could deadlock with that transaction.
            mine = mine.with_for_update(skip_locked=True)
        connection.execute(update(outbox).where(outbox.c.id.in_(mine.scalar_subquery())).values(lease_until=self.lease_end()))


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
                        self.lease.beat(connection)
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
def sending_lease(store: Store, heartbeat_interval: float = HEARTBEAT_INTERVAL, sender: bool = False) -> Iterator[Lease]:
    """Hold a lease for the block, renewed by its own thread every `heartbeat_interval` seconds: the one sender's of a
    SQLite store, or (`sender`) a SenderLease of this process, which outbox claims are made under."""
    lease: Lease = SenderLease(store, heartbeat_interval) if sender else Lease(store, heartbeat_interval)
    lease.acquire()
    heartbeat = Heartbeat(lease)
    heartbeat.start()
    try:
        yield lease
    finally:
        heartbeat.stop()
        lease.release()


INTERRUPTED = "interrupted while sending: it may have been delivered"


def _holder_gone(connection: Connection, judge: Lease, owner: str, row: Any, now: datetime) -> bool:
    """Whether the sender `owner` (its lock row `row`, None when it has none) is gone; its lease is removed if so,
    conditional on the heartbeat judged (a sender that renewed meanwhile is alive)."""
    if row is None:
        return True  # it released its lease, or was taken over: its claims are nobody's
    if judge.judge(row, now).wait > 0:
        return False
    removed = connection.execute(delete(locks).where(locks.c.name == row.name, locks.c.owner == row.owner,
                                                     locks.c.heartbeat_at == row.heartbeat_at))
    return removed.rowcount == 1 or connection.execute(select(locks.c.name).where(locks.c.name == row.name)).first() is None


@dataclass(frozen=True)
class Reclaimed:
    interrupted: int = 0  # rows the gone senders had started: now `unknown`
    released: int = 0  # rows they had only claimed: back as they were

    def __bool__(self) -> bool:
        return bool(self.interrupted or self.released)


def reclaim(store: Store, version_id: str, judge: Lease, sole: bool = False) -> Reclaimed:
    """Take back the rows of senders that are gone (judged as leases are: never a live one). A row whose DATA it had
    started may have been delivered: `unknown`, with the evidence of who sent it; a row it had only claimed is free
    again, in the state it was in. `judge` judges as this process (its own claims are never taken); `sole`: the
    caller holds the one-sender lease of a SQLite store, so every other sender is gone."""
    with store.begin() as connection:
        now = judge._now(connection)
        claimed = and_(outbox.c.version_id == version_id, outbox.c.claimed_by.is_not(None), outbox.c.claimed_by != judge.owner)
        owners = [r.claimed_by for r in connection.execute(select(outbox.c.claimed_by).where(claimed).distinct())]
        if not owners:
            return Reclaimed()
        holders = {row.name[len(SENDER_PREFIX):]: row for row in connection.execute(
            select(locks).where(locks.c.name.in_([SENDER_PREFIX + owner for owner in owners])))}
        gone = [owner for owner in owners if sole or _holder_gone(connection, judge, owner, holders.get(owner), now)]
        lapsed = or_(outbox.c.claimed_by.in_(gone), outbox.c.lease_until < now) if gone else outbox.c.lease_until < now
        started = select(outbox.c.id, outbox.c.claimed_by).where(claimed, lapsed, outbox.c.state == "sending")
        if store.dialect == "postgresql":
            started = started.with_for_update(skip_locked=True)  # a row locked now is being recorded by its sender
        interrupted = 0
        for row in connection.execute(started).all():
            # updated_at stays when the message was started: this run sends it again (see OutboxSender.started_at).
            done = connection.execute(update(outbox).where(outbox.c.id == row.id, outbox.c.claimed_by == row.claimed_by,
                                                           outbox.c.state == "sending").values(
                state="unknown", reply=INTERRUPTED, claimed_by=None, lease_until=None))
            if done.rowcount == 1:
                interrupted += 1
                holder = holders.get(row.claimed_by)
                sender = f"{holder.host} pid {holder.pid} ({row.claimed_by[:8]})" if holder is not None else row.claimed_by[:8]
                connection.execute(insert(attempts).values(outbox_id=row.id, attempted_at=now, outcome="unknown",
                                                           reply=INTERRUPTED, sender=sender))
        free = select(outbox.c.id).where(claimed, lapsed, outbox.c.state != "sending")
        if store.dialect == "postgresql":
            free = free.with_for_update(skip_locked=True)
        released = connection.execute(update(outbox).where(outbox.c.id.in_(free.scalar_subquery())).values(
            claimed_by=None, lease_until=None)).rowcount
    return Reclaimed(interrupted, int(released or 0))


def prune_gone_senders(store: Store, judge: Lease) -> int:
    """Remove the leases of senders that are gone and hold nothing any more (a killed worker's, once its rows were
    taken back), so that `locks` keeps only the living."""
    with store.begin() as connection:
        now = judge._now(connection)
        rows = connection.execute(select(locks).where(locks.c.name.like(SENDER_PREFIX + "%"))).all()
        held = {r.claimed_by for r in connection.execute(select(outbox.c.claimed_by).where(
            outbox.c.claimed_by.in_([row.owner for row in rows])).distinct())} if rows else set()
        return sum(1 for row in rows if row.owner not in held and row.owner != judge.owner
                   and _holder_gone(connection, judge, row.owner, row, now))


def recover_interrupted(store: Store, version_id: str, lease: Lease, sole: bool = False) -> int:
    """Rows of senders that are gone, taken back before a run counts what is due: how many were in flight."""
    interrupted = reclaim(store, version_id, lease, sole).interrupted
    prune_gone_senders(store, lease)
    return interrupted
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
START = update(outbox).where(outbox.c.id == bindparam("b_id"), outbox.c.claimed_by == bindparam("b_owner"),
                             outbox.c.state == bindparam("b_from")).values(state="sending", updated_at=bindparam("b_now"),
                                                                           lease_until=bindparam("b_until", type_=UtcDateTime))
RECORD = update(outbox).where(outbox.c.id == bindparam("b_id"), outbox.c.claimed_by == bindparam("b_owner"),
                              outbox.c.state == bindparam("b_from")).values(
    state=bindparam("b_state"), attempts=bindparam("b_attempts"), reply=bindparam("b_reply"), updated_at=bindparam("b_now"),
    next_attempt_at=bindparam("b_next"), sent_at=bindparam("b_sent"), claimed_by=None, lease_until=None)
LOG = insert(attempts).values(outbox_id=bindparam("b_id"), attempted_at=bindparam("b_now"), outcome=bindparam("b_state"),
                              reply=bindparam("b_reply"), sender=bindparam("b_sender"))
RELEASE = update(outbox).where(outbox.c.id == bindparam("b_id"), outbox.c.claimed_by == bindparam("b_owner"),
                               outbox.c.state != "sending").values(claimed_by=None, lease_until=None)


def claim(connection: Connection, version_id: str, lease: SenderLease, unknown: UnknownPolicy, size: int,
          attempted_before: datetime) -> list[OutboxRow]:
    """Claim up to `size` due rows nobody holds, oldest first, for `lease`'s sender; their state stays as it was. On
    PostgreSQL, rows another sender is claiming this instant are skipped (FOR UPDATE SKIP LOCKED), not waited for.
    A row this run attempted already (retry or unknown since `attempted_before`) waits for the next run."""
    now = utcnow()
    taken: list[Any] = []
    # One state at a time, so that each scan walks the (version, state, id) index and skips only the rows held
    # now, never the ones sent already: a claim costs the same at the end of 100,000 notices as at the start.
    for state in ("pending", "retry", *(("unknown",) if unknown == "retry" else ())):
        wanted = size - len(taken)
        if wanted <= 0:
            break
        condition = [outbox.c.version_id == version_id, outbox.c.state == state, outbox.c.claimed_by.is_(None)]
        if state != "pending":
            condition.append(outbox.c.updated_at < attempted_before)
        if state == "retry":
            condition.append(outbox.c.next_attempt_at <= now)
        due = select(outbox.c.id).where(*condition).order_by(outbox.c.id).limit(wanted)
        if connection.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        taken += connection.execute(update(outbox).where(outbox.c.id.in_(due.scalar_subquery()))
                                    .values(claimed_by=lease.owner, lease_until=lease.lease_end())
                                    .returning(outbox.c.id, outbox.c.recipient, outbox.c.state, outbox.c.attempts,
                                               outbox.c.message, outbox.c.message_id)).all()
    return sorted((OutboxRow(r.id, r.recipient, r.state, r.attempts, r.message, r.message_id) for r in taken),
                  key=lambda row: row.id)


class RateGate:
    """The rate limit every sender on the store shares: a token bucket in one row of `rate_limits`, refilled at
    `rate` per second on the database's clock. A sender takes a few tokens at a time and spends them locally."""

    NAME = "notify"
    BURST_SECONDS = 0.2  # what the bucket holds at most: a fifth of a second's messages
    GRANT_SECONDS = 0.05  # what one sender asks for at a time

    def __init__(self, store: Store, rate: float) -> None:
        self.store, self.rate = store, rate
        self.capacity = max(1.0, rate * self.BURST_SECONDS)
        self.want = max(1, math.floor(rate * self.GRANT_SECONDS))
        self.tokens = 0
        self._lock = threading.Lock()
        self._clock = _database_clock(store.dialect)

    def try_take(self) -> bool:
        """Take a token if this sender holds one already (no waiting, no database)."""
        if self.rate <= 0:
            return True
        with self._lock:
            if self.tokens > 0:
                self.tokens -= 1
                return True
        return False

    def take(self) -> None:
        """Take a token, waiting for the shared bucket to refill when it is empty."""
        if self.rate <= 0:
            return
        with self._lock:
            while self.tokens <= 0:
                granted, wait = self._ask()
                self.tokens += granted
                if not granted:
                    time.sleep(wait)
            self.tokens -= 1

    def _ask(self) -> tuple[int, float]:
        """(tokens granted, seconds until one is there when none was)."""
        with self.store.begin() as connection:
            now = connection.execute(select(self._clock)).scalar_one() if self._clock is not None else utcnow()
            query = select(rate_limits).where(rate_limits.c.name == self.NAME)
            if self.store.dialect == "postgresql":
                query = query.with_for_update()
            row = connection.execute(query).first()
            if row is None:
                # A new bucket holds one token: the first message goes at once, the rest at the rate.
                insert_ignoring(connection, rate_limits, {"name": self.NAME, "tokens": 1.0, "updated_at": now})
                row = connection.execute(query).one()
            elapsed = max(0.0, (now - row.updated_at).total_seconds())
            tokens = min(self.capacity, row.tokens + elapsed * self.rate)
            granted = min(self.want, math.floor(tokens))
            connection.execute(update(rate_limits).where(rate_limits.c.name == self.NAME).values(
                tokens=tokens - granted, updated_at=now))
        return granted, (1.0 - (tokens - granted)) / self.rate


@dataclass
class _Lane:
    """One SMTP connection of a sender with its own database connection, and the outcomes it has not committed yet
    (committed with the next message's start, or before any wait)."""

    db: Connection
    smtp: SmtpConnection
    records: list[dict[str, Any]] = field(default_factory=list)
    quick: Connection | None = None  # PostgreSQL: autocommit, for the one statement that records and starts
    quick_cursor: Any = None  # the driver's cursor on `quick`: that statement runs once per message, prepared


# PostgreSQL: the outcome of the lane's previous message, its evidence and the start of the next, in one statement
# (one round trip, atomic on its own: run in autocommit).
RECORD_AND_START = text("""
WITH rec AS (
    UPDATE outbox SET state = :b_state, attempts = :b_attempts, reply = :b_reply, updated_at = :b_now,
           next_attempt_at = :b_next, sent_at = :b_sent, claimed_by = NULL, lease_until = NULL
    WHERE :b_has AND id = :b_id AND claimed_by = :b_owner AND state = :b_from
    RETURNING id
), log AS (
    INSERT INTO attempts (outbox_id, attempted_at, outcome, reply, sender)
    SELECT id, :b_now, :b_state, :b_reply, :b_sender FROM rec
), go AS (
    UPDATE outbox SET state = 'sending', updated_at = :s_now, lease_until = :s_until
    WHERE id = :s_id AND claimed_by = :b_owner AND state = :s_from
    RETURNING id
)
SELECT (SELECT count(*) FROM rec) AS recorded, (SELECT count(*) FROM go) AS started
""").bindparams(bindparam("b_now", type_=UtcDateTime), bindparam("b_next", type_=UtcDateTime),
                bindparam("b_sent", type_=UtcDateTime), bindparam("s_now", type_=UtcDateTime),
                bindparam("s_until", type_=UtcDateTime))
DATETIME_PARAMETERS = ("b_now", "b_next", "b_sent", "s_now", "s_until")
STORED_TIME = UtcDateTime()


@functools.cache
def _driver_sql(statement: Any, dialect: Any) -> str:
    """`statement` as the driver takes it. The statement run for every message goes to the driver directly: what
    SQLAlchemy does around one execution costs as much CPU as the rest of the sender's work on that message."""
    return str(statement.compile(dialect=dialect))


NO_RECORD = {"b_has": False, "b_id": 0, "b_from": "", "b_state": "", "b_attempts": 0, "b_reply": "", "b_now": None,
             "b_next": None, "b_sent": None, "b_sender": ""}


class OutboxSender:
    """Sends the due rows of one version over `connections` reused SMTP connections, recording every outcome.

    Rows are claimed CLAIM_BATCH at a time under the sender's lease. Each row is marked `sending` (committed) once
    its DATA command is written and before the message goes out, in the same transaction as the outcome of the message before it on that connection: at
    most one message per connection is ever `sending`, and only those can become `unknown` if this process dies."""

    def __init__(self, store: Store, version_id: str, envelope_from: str, smtp: SmtpSettings, options: SendOptions,
                 progress: Callable[[int], None] | None = None,
                 connect: Callable[[SmtpSettings], SmtpConnection] = SmtpConnection,
                 envelope: Callable[[OutboxRow], str] | None = None,
                 sign: Callable[[bytes], bytes] | None = None, started_at: datetime | None = None) -> None:
        self.store, self.version_id, self.envelope_from = store, version_id, envelope_from
        self.smtp, self.options, self.progress, self.connect = smtp, options, progress, connect
        self.envelope = envelope or (lambda row: envelope_from)
        self.sign = sign or (lambda data: data)
        self.started_at = started_at or utcnow()
        self.report = SendReport()
        self.gate = RateGate(store, options.rate_per_second)
        self._recent: deque[bool] = deque(maxlen=max(1, options.error_window))
        self._lock = threading.Lock()  # the report, the error window, progress
        self._claim_lock = threading.Lock()
        self._queue: deque[OutboxRow] = deque()
        self._exhausted = False
        self._stop = threading.Event()
        self._error: BaseException | None = None

    def run(self, lease: SenderLease, guards: tuple[Lease, ...] = ()) -> SendReport:
        """Send until nothing is due that nobody holds, or the run stops; raises LeaseLost when this sender's lease
        (or one of `guards`) was taken over, having recorded nothing more."""
        self.lease, self.leases = lease, (lease, *guards)
        self._sole = bool(guards)  # the one sender of a SQLite store: any other claim is a gone sender's
        self.report.recovered += reclaim(self.store, self.version_id, lease, self._sole).interrupted
        lanes = [threading.Thread(target=self._lane, name=f"smtp-{n}", daemon=True)
                 for n in range(max(1, self.options.connections))]
        for thread in lanes:
            thread.start()
        for thread in lanes:
            thread.join()
        if self._error is not None:
            raise self._error
        self._check()
        self._release_claims()
        self.report.next_retry_at = next_retry(self.store, self.version_id)
        return self.report

    def _until(self) -> datetime:
        return utcnow() + timedelta(seconds=self.lease.stale_after)

    def _check(self) -> None:
        stop_if_orphaned()  # a worker whose parent died sends nothing more
        for lease in self.leases:
            lease.check()

    def _lane(self) -> None:
        lane = _Lane(self.store.connect(), self.connect(self.smtp))
        if self.store.dialect == "postgresql":
            lane.quick = self.store.connect().execution_options(isolation_level="AUTOCOMMIT")
            lane.quick_cursor = lane.quick.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            while not self._stop.is_set():
                row = self._next(lane)
                if row is None:
                    break
                self._send(lane, row)
            self._flush(lane)
        except BaseException as exc:  # noqa: BLE001 - handed to run(), which raises it in the caller's thread
            with self._lock:
                self._error = self._error or exc
            self._stop.set()
        finally:
            lane.smtp.close()
            lane.db.close()
            if lane.quick is not None:
                lane.quick_cursor.close()
                lane.quick.close()

    def _next(self, lane: _Lane) -> OutboxRow | None:
        with self._claim_lock:
            if self._queue:
                return self._queue.popleft()
            if self._exhausted or self.report.stopped:
                return None
            self._flush(lane)
            self._check()
            for _ in range(2):  # claim; if nothing is free, take back what gone senders held, and claim once more
                with lane.db.begin():
                    rows = claim(lane.db, self.version_id, self.lease, self.options.unknown,
                                 max(1, self.options.claim_batch), self.started_at)
                if rows:
                    self._queue.extend(rows[1:])
                    return rows[0]
                reclaimed = reclaim(self.store, self.version_id, self.lease, self._sole)
                with self._lock:
                    self.report.recovered += reclaimed.interrupted
                if not reclaimed:
                    break
            self._exhausted = True
            return None

    def _send(self, lane: _Lane, row: OutboxRow) -> None:
        if not self.gate.try_take():
            self._flush(lane)  # nothing waits uncommitted while the rate limit holds this connection back
            self.gate.take()
        started = False

        def before_data() -> bool:
            nonlocal started
            self._check()
            if lane.quick is not None and len(lane.records) <= 1:
                started = self._record_and_start(lane, row)
            else:
                with lane.db.begin():
                    self._write(lane)
                    started = lane.db.execute(START, {"b_id": row.id, "b_owner": self.lease.owner, "b_from": row.state,
                                                      "b_now": utcnow(), "b_until": self._until()}).rowcount == 1
            if not started:
                # Cancelled (unsubscribed, removed) since it was claimed, or its claim taken because this sender
                # looked gone: then this sender stops.
                self.lease.confirm(lane.db)
                lane.db.commit()
            return started

        try:
            delivery = lane.smtp.deliver(self.envelope(row), row.recipient, self.sign(row.message), before_data)
        except (SmtpAuthError, SmtpConnectError) as exc:
            with lane.db.begin():
                self._write(lane)
                lane.db.execute(RELEASE, {"b_id": row.id, "b_owner": self.lease.owner})
            with self._lock:
                if not self.report.stopped:
                    self.report.stopped, self.report.hint = exc.message, exc.hint
            self._stop.set()
            return
        if delivery.outcome == "skipped":
            return
        self._check()  # a lease lost while the message was out: its outcome is not this sender's to record
        lane.records.append(self._outcome(row, delivery, utcnow(), "sending" if started else row.state))

    def _outcome(self, row: OutboxRow, delivery: Delivery, now: datetime, current: str) -> dict[str, Any]:
        tries = row.attempts + 1
        outcome, reply = delivery.outcome, delivery.reply
        if outcome == "retry" and tries >= self.options.max_attempts:
            outcome, reply = "failed", f"{reply} (gave up after {tries} attempts)"
        with self._lock:
            setattr(self.report, outcome, getattr(self.report, outcome) + 1)
            self._recent.append(outcome != "sent")
            window = self._recent.maxlen or 1
            errors = sum(self._recent)
            if len(self._recent) == window and errors / window >= self.options.error_threshold and not self.report.stopped:
                self.report.stopped = f"paused: {errors} of the last {window} attempts failed (last reply: {reply})"
                self.report.hint = "find the cause with `addendum notices`, then run notify again: what is left stays queued"
                self.report.paused = True
                self._stop.set()
        return {"b_id": row.id, "b_owner": self.lease.owner, "b_from": current, "b_state": outcome, "b_attempts": tries,
                "b_reply": reply, "b_now": now, "b_sender": self.lease.label,
                "b_next": now + backoff(tries, self.options.retry_delay) if outcome == "retry" else None,
                "b_sent": now if outcome == "sent" else None}

    def _record_and_start(self, lane: _Lane, row: OutboxRow) -> bool:
        """The lane's pending outcome (one at most) and the start of `row`, in one statement; whether it started."""
        assert lane.quick is not None
        record = {**lane.records[0], "b_has": True} if lane.records else NO_RECORD
        values = {**record, "b_owner": self.lease.owner, "s_id": row.id, "s_from": row.state, "s_now": utcnow(),
                  "s_until": self._until()}
        for name in DATETIME_PARAMETERS:
            values[name] = STORED_TIME.process_bind_param(values[name], None)
        lane.quick_cursor.execute(_driver_sql(RECORD_AND_START, lane.quick.dialect), values, prepare=True)
        recorded, started = lane.quick_cursor.fetchone()
        if lane.records:
            lane.records = []
            if not recorded:
                self.lease.confirm(lane.db)  # taken back from this sender: it stops; else cancelled meanwhile
                lane.db.commit()
            if self.progress:
                with self._lock:
                    self.progress(1)
        return bool(started)

    def _write(self, lane: _Lane) -> None:
        """Record the lane's outcomes in the caller's transaction, each only while its row is still this sender's."""
        if not lane.records:
            return
        for record in lane.records:
            if lane.db.execute(RECORD, record).rowcount == 1:
                lane.db.execute(LOG, record)
            else:
                self.lease.confirm(lane.db)  # taken back from this sender: it stops; else cancelled meanwhile
        done = len(lane.records)
        lane.records = []
        if self.progress:
            with self._lock:
                self.progress(done)

    def _flush(self, lane: _Lane) -> None:
        if lane.records:
            self._check()
            with lane.db.begin():
                self._write(lane)

    def _release_claims(self) -> None:
        """Give back the rows this sender claimed and did not start (a run that stopped early leaves them due)."""
        with self.store.begin() as connection:
            connection.execute(update(outbox).where(outbox.c.claimed_by == self.lease.owner, outbox.c.state != "sending")
                               .values(claimed_by=None, lease_until=None))


def next_retry(store: Store, version_id: str) -> datetime | None:
    with store.connect() as connection:
        value = connection.execute(select(func.min(outbox.c.next_attempt_at)).where(
            outbox.c.version_id == version_id, outbox.c.state == "retry")).scalar_one()
    return value  # type: ignore[no-any-return]

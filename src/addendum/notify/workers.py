"""Sender processes: N workers on this machine send one version's outbox side by side, each under its own lease, and
die with the process that started them."""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait
from typing import Any

from addendum.errors import NotifyError, UsageError
from addendum.notify.outbox import Lease, LeaseLost, OutboxRow, OutboxSender, SendOptions, SendReport, next_retry, sending_lease
from addendum.notify.smtp import SmtpConnection, SmtpSettings
from addendum.notify.store import Store
from addendum.processes import die_with_parent, worker_context

MAX_WORKERS = 64


@dataclass(frozen=True)
class SendJob:
    """What every sender of one run needs: the version, the server, the envelope and the signature."""

    version_id: str
    envelope_from: str
    smtp: SmtpSettings
    options: SendOptions
    started_at: datetime
    envelope: Callable[[OutboxRow], str] | None = None
    sign: Callable[[bytes], bytes] | None = None
    connect: Callable[[SmtpSettings], SmtpConnection] = SmtpConnection

    def sender(self, store: Store, progress: Callable[[int], None] | None) -> OutboxSender:
        return OutboxSender(store, self.version_id, self.envelope_from, self.smtp, self.options, progress, self.connect,
                            self.envelope, self.sign, self.started_at)


def require_workers(store: Store, workers: int) -> None:
    """Refuse a number of workers the store cannot take: SQLite keeps one sender."""
    if not 1 <= workers <= MAX_WORKERS:
        raise UsageError(f"--workers must be between 1 and {MAX_WORKERS}, not {workers}")
    if workers > 1 and store.dialect != "postgresql":
        raise UsageError(f"--workers {workers}: a SQLite state store keeps one sender at a time",
                         "to send with several, use PostgreSQL: ADDENDUM_DATABASE_URL=postgresql+psycopg://… "
                         "(or --database); then run notify with --workers N here, and on other machines too")


def one_sender(store: Store, heartbeat_interval: float) -> AbstractContextManager[Lease | None]:
    """The lease that keeps a SQLite store to one sender; nothing on PostgreSQL, where senders share the outbox."""
    if store.dialect == "sqlite":
        return sending_lease(store, heartbeat_interval)
    return nullcontext()


def send(store: Store, job: SendJob, workers: int, progress: Callable[[int], None] | None = None,
         guards: tuple[Lease, ...] = ()) -> SendReport:
    """Send the outbox of `job` with `workers` processes (1: in this process) and report what they did together."""
    if workers == 1:
        with sending_lease(store, job.options.heartbeat_interval, sender=True) as lease:
            return job.sender(store, progress).run(lease, guards)  # type: ignore[arg-type]
    return _send_in_workers(store, job, workers, progress)


class _Advances:
    """A worker's progress, handed to its parent a few times a second rather than once per message: a message to
    the parent costs both processes more CPU than the notice's own database write."""

    INTERVAL = 0.1  # seconds

    def __init__(self, pipe: Pipe) -> None:
        self.pipe, self.count, self.last = pipe, 0, time.monotonic()
        self._lock = threading.Lock()  # a worker's SMTP connections advance from threads of their own

    def __call__(self, count: int) -> None:
        with self._lock:
            self.count += count
            if time.monotonic() - self.last >= self.INTERVAL:
                self._send()

    def flush(self) -> None:
        with self._lock:
            self._send()

    def _send(self) -> None:
        if self.count:
            self.pipe.send(("advance", self.count))
            self.count = 0
        self.last = time.monotonic()


def _worker(pipe: Pipe, parent: int, store: Store, job: SendJob) -> None:
    """One worker process: send, then hand the report (or the error) to the parent."""
    die_with_parent(parent)
    store.engine.dispose(close=False)  # the parent's pooled connections are the parent's: open new ones
    advances = _Advances(pipe)
    try:
        try:
            with sending_lease(store, job.options.heartbeat_interval, sender=True) as lease:
                report = job.sender(store, advances).run(lease)  # type: ignore[arg-type]
        finally:
            advances.flush()
        pipe.send(("done", report))
    except NotifyError as exc:
        pipe.send(("error", type(exc).__name__, exc.message, exc.hint))
    except BaseException:  # noqa: BLE001 - a worker reports everything to its parent, which raises it
        pipe.send(("crash", traceback.format_exc()))
    finally:
        pipe.close()


def _send_in_workers(store: Store, job: SendJob, workers: int, progress: Callable[[int], None] | None) -> SendReport:
    context = worker_context()
    parent = os.getpid()
    running: dict[Any, Any] = {}
    for _ in range(workers):
        reader, writer = context.Pipe(duplex=False)
        process = context.Process(target=_worker, args=(writer, parent, store, job), daemon=True)  # type: ignore[attr-defined]
        process.start()
        writer.close()
        running[reader] = process
    total = SendReport(workers=workers)
    errors: list[tuple[str, str, str]] = []
    reported: set[int] = set()
    try:
        while running:
            for ready in wait(list(running)):
                pipe = ready if isinstance(ready, Pipe) else None
                try:
                    message = pipe.recv() if pipe is not None else None
                except EOFError:
                    message = None
                if message is None:
                    process = running.pop(ready)
                    process.join()
                    if process.pid not in reported:
                        total.died.append(describe_exit(process.pid, process.exitcode))
                    continue
                kind = message[0]
                if kind == "advance" and progress is not None:
                    progress(message[1])
                elif kind == "done":
                    total.add(message[1])
                    reported.add(running[ready].pid)
                elif kind == "error":
                    errors.append(message[1:])
                    reported.add(running[ready].pid)
                elif kind == "crash":
                    errors.append(("crash", f"a sender process failed:\n{message[1]}", "run again with --debug"))
                    reported.add(running[ready].pid)
    finally:
        for process in context.active_children():
            process.kill()
            process.join()
    if errors:
        name, message, hint = next((e for e in errors if e[0] != "LeaseLost"), errors[0])
        raise (LeaseLost if name == "LeaseLost" else NotifyError)(message, hint)
    total.next_retry_at = next_retry(store, job.version_id)
    return total


def describe_exit(pid: int, code: int | None) -> str:
    if code is not None and code < 0:
        return f"process {pid} (killed by {signal.Signals(-code).name})"
    return f"process {pid} (exit {code})"

"""Many senders on one PostgreSQL outbox: `notify --workers N`, per-row claims that a killed worker gives back as they
were, a rate limit they share, workers that die with their parent, and SIGKILLs at random moments that lose nobody.
Real processes, a real PostgreSQL, a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from click.testing import Result
from sqlalchemy import select

from addendum.config import open_repo
from addendum.notify.outbox import INTERRUPTED, SENDER_PREFIX, RateGate, local_process
from addendum.notify.store import Store, attempts, locks, open_store, outbox
from smtp_server import SmtpServer
from tests_support import set_config

VERSION = "privacy@2020-09-01"
SITES = ("selentic", "cavallo", "equihealth")


def subscribe(run: Callable[..., Result], repo: Path, count: int) -> list[str]:
    """`count` people, 2 languages × 3 sites, one site each."""
    addresses = [f"p{n:05d}@example.org" for n in range(count)]
    lines = ["email,name,language,sites,audience"] + [
        f"{address},P {n},{('en', 'nl')[n % 2]},{SITES[n % 3]},account" for n, address in enumerate(addresses)]
    (repo.parent / "people.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run("--repo", repo, "subscribers", "import", repo.parent / "people.csv")
    return addresses


def start_notify(repo: Path, server: SmtpServer, database: str, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "ADDENDUM_SMTP_HOST": "127.0.0.1", "ADDENDUM_SMTP_PORT": str(server.port),
           "ADDENDUM_SMTP_SECURITY": "none", "ADDENDUM_SMTP_TIMEOUT": "10", "ADDENDUM_DATABASE_URL": database}
    return subprocess.Popen([sys.executable, "-m", "addendum", "--repo", str(repo), "notify", "privacy", VERSION, "--yes", "--late", "--reason", "a test of a past version",
                             *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@contextmanager
def store_of(repo: Path, database: str) -> Iterator[Store]:
    store = open_store(open_repo(repo), database)
    try:
        yield store
    finally:
        store.dispose()


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with suppress(OSError):  # a thread that ended meanwhile
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def gone(pid: int) -> bool:
    process = local_process(pid)
    return process is None or process.state in ("Z", "X")


def wait_for(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def rows(repo: Path, database: str) -> list[tuple[str, str, str | None]]:
    """(recipient, state, claimed_by) of every row of the version."""
    with store_of(repo, database) as store, store.connect() as connection:
        return [(r.recipient, r.state, r.claimed_by) for r in connection.execute(
            select(outbox.c.recipient, outbox.c.state, outbox.c.claimed_by).where(outbox.c.version_id == VERSION))]


def attempt_rows(repo: Path, database: str) -> list[tuple[str, str, str, str]]:
    """(recipient, outcome, reply, sender) of every attempt, oldest first."""
    with store_of(repo, database) as store, store.connect() as connection:
        return [(r.recipient, r.outcome, r.reply, r.sender or "") for r in connection.execute(
            select(outbox.c.recipient, attempts.c.outcome, attempts.c.reply, attempts.c.sender)
            .join(outbox, outbox.c.id == attempts.c.outbox_id).order_by(attempts.c.id))]


def test_sqlite_keeps_one_sender_and_says_so(run, notify_repo, smtp):
    subscribe(run, notify_repo, 3)
    refused = run("--repo", notify_repo, "notify", "privacy", VERSION, "--yes", "--late", "--reason", "a test of a past version", "--workers", "2", expect=2)
    assert "error: --workers 2: a SQLite state store keeps one sender at a time" in refused.stderr
    assert "use PostgreSQL: ADDENDUM_DATABASE_URL=postgresql+psycopg://" in refused.stderr
    assert not smtp.handler.received
    smtp.handler.drip_go_ahead = {"p00000@example.org": 0.3}  # the first sender waits on its first go-ahead
    first = start_notify(notify_repo, smtp, "", "--rate", "0")
    try:
        wait_for(lambda: bool(smtp.handler.data_started), 30, "the first sender sent nothing")
        second = run("--repo", notify_repo, "notify", "privacy", VERSION, "--yes", "--late", "--reason", "a test of a past version", expect=2)
        assert "another `addendum notify` is sending" in second.stderr
        assert "a SQLite state store keeps one sender at a time: to send with several, use PostgreSQL" in second.stderr
        assert first.wait(60) == 0, first.communicate()
    finally:
        first.kill()
        first.wait(10)
    assert Counter(r for item in smtp.handler.received for r in item.recipients) == Counter(
        f"p{n:05d}@example.org" for n in range(3))


def test_a_killed_worker_gives_back_what_it_only_claimed_and_only_its_started_message_is_unknown(
        run, notify_repo, postgres_url, monkeypatch):
    monkeypatch.setenv("ADDENDUM_DATABASE_URL", postgres_url)
    set_config(notify_repo, {"notify": {"rate_per_second": 0.0, "heartbeat_interval": 0.5}})
    people = subscribe(run, notify_repo, 80)
    with SmtpServer() as server:
        server.handler.drip_reply = {people[0]: 0.5}  # the first message's reply takes about ten seconds
        sender = start_notify(notify_repo, server, postgres_url)
        wait_for(lambda: bool(server.handler.received) or sender.poll() is not None, 30, "nothing arrived")
        assert sender.poll() is None, sender.communicate()
        [worker] = [pid for pid in [sender.pid]]
        sender.send_signal(signal.SIGKILL)
        sender.wait(10)
        states = Counter((state, claimed is not None) for _, state, claimed in rows(notify_repo, postgres_url))
        # One batch claimed (50 rows): one of them started, its DATA sent; 49 only claimed, still pending.
        assert states == Counter({("pending", True): 49, ("sending", True): 1, ("pending", False): 30}), (worker, states)
        rerun = start_notify(notify_repo, server, postgres_url, "--workers", "2")
        out, err = rerun.communicate(timeout=60)
        assert rerun.returncode == 0, err
        assert "sent 80, retry 0, failed 0, unknown 0; 1 interrupted earlier (2 workers)" in out
    log = attempt_rows(notify_repo, postgres_url)
    assert [(r, o, reply) for r, o, reply, _ in log if o != "sent"] == [(people[0], "unknown", INTERRUPTED)]
    assert people[0] in server.handler.data_started  # the unknown one had its DATA started: it did arrive
    delivered = Counter(r for item in server.handler.received for r in item.recipients)
    assert delivered == Counter({**dict.fromkeys(people, 1), people[0]: 2})
    senders = Counter(sender for _, outcome, _, sender in log if outcome == "sent")
    assert len(senders) == 2 and sum(senders.values()) == 80  # the evidence names the worker of each notice


def test_workers_die_with_their_parent(run, notify_repo, postgres_url, monkeypatch):
    monkeypatch.setenv("ADDENDUM_DATABASE_URL", postgres_url)
    set_config(notify_repo, {"notify": {"rate_per_second": 0.0, "claim_batch": 5}})
    people = subscribe(run, notify_repo, 30)
    with SmtpServer() as server:
        server.handler.drip_go_ahead = dict.fromkeys(people, 0.5)  # every worker waits on a go-ahead
        parent = start_notify(notify_repo, server, postgres_url, "--workers", "3")
        wait_for(lambda: len(children(parent.pid)) == 3 and len(server.handler.data_started) >= 3 or parent.poll() is not None,
                 30, "no three workers waiting on the server")
        workers = children(parent.pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        killed_at = time.monotonic()
        wait_for(lambda: all(gone(pid) for pid in workers), 1.0, f"workers outlived their parent: {workers}")
        assert time.monotonic() - killed_at < 1.0


def test_the_rate_limit_holds_for_all_workers_together(run, notify_repo, postgres_url, monkeypatch):
    monkeypatch.setenv("ADDENDUM_DATABASE_URL", postgres_url)
    rate = 40.0
    set_config(notify_repo, {"notify": {"rate_per_second": rate}})
    people = subscribe(run, notify_repo, 120)
    arrivals: list[float] = []
    with SmtpServer() as server:
        server.handler.on_accept = lambda item, count: arrivals.append(time.monotonic())
        sender = start_notify(notify_repo, server, postgres_url, "--workers", "4")
        out, err = sender.communicate(timeout=60)
    assert sender.returncode == 0, err
    assert "sent 120, retry 0, failed 0, unknown 0 (4 workers)" in out
    assert len(arrivals) == len(people)
    took = arrivals[-1] - arrivals[0]
    assert took >= (len(people) - rate * 0.2) / rate * 0.95, took  # a fifth of a second's burst at most
    busiest = max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals)
    # A second's tokens, what the bucket holds, and what each of the 4 workers may hold unspent.
    assert busiest <= rate * (1 + RateGate.BURST_SECONDS) + 4 * max(1, int(rate * RateGate.GRANT_SECONDS)) + 2, busiest


def test_four_workers_killed_at_random_lose_nobody(run, notify_repo, postgres_url, monkeypatch):
    """Acceptance: 4 workers, 5,000 recipients, SIGKILL of random workers (and at times of all of them, with their
    parent) at random moments, then runs again until done: nobody is missed, duplicates are at most the messages in
    flight at the kills, and every `unknown` row had its DATA started."""
    monkeypatch.setenv("ADDENDUM_DATABASE_URL", postgres_url)
    set_config(notify_repo, {"notify": {"rate_per_second": 400.0, "heartbeat_interval": 0.5}})
    began = time.monotonic()
    people = subscribe(run, notify_repo, 5000)
    print(f"subscribed in {time.monotonic() - began:.1f} s", flush=True)
    rng = random.Random(1708)
    kills = rounds = 0
    with SmtpServer() as server:
        while rounds < 12:
            parent = start_notify(notify_repo, server, postgres_url, "--workers", "4")
            try:
                wait_for(lambda started=parent: len(children(started.pid)) == 4 or started.poll() is not None, 60,  # type: ignore[misc]
                         "no workers started")
                for _ in range(rng.randint(1, 3)):  # a few kills in one run, each of some of its workers
                    time.sleep(rng.uniform(0.2, 1.5))
                    workers = children(parent.pid)
                    if not workers:
                        break
                    victims = rng.sample(workers, rng.randint(1, len(workers)))
                    for pid in victims:
                        os.kill(pid, signal.SIGKILL)
                    kills += len(victims)
                    print(f"{time.monotonic() - began:.1f} s: killed {len(victims)} of {len(workers)}", flush=True)
                rounds += 1
                if rng.random() < 0.4 and (workers := children(parent.pid)):
                    parent.send_signal(signal.SIGKILL)  # the rest die with it
                    kills += len(workers)
                    print(f"{time.monotonic() - began:.1f} s: killed the parent of {len(workers)}", flush=True)
                parent.communicate(timeout=120)
            finally:
                parent.kill()
                parent.wait(10)
            if Counter(state for _, state, _ in rows(notify_repo, postgres_url)) == Counter({"sent": 5000}):
                break
        final = start_notify(notify_repo, server, postgres_url, "--workers", "4")
        out, err = final.communicate(timeout=180)
        assert final.returncode == 0, out + err
    print(f"done in {time.monotonic() - began:.1f} s", flush=True)
    assert kills >= 5
    assert Counter(state for _, state, _ in rows(notify_repo, postgres_url)) == Counter({"sent": 5000})
    delivered = Counter(r for item in server.handler.received for r in item.recipients)
    assert set(delivered) == set(people)  # none lost
    log = attempt_rows(notify_repo, postgres_url)
    interrupted = [recipient for recipient, outcome, reply, _ in log if outcome == "unknown" and reply == INTERRUPTED]
    assert sum(delivered.values()) - len(people) <= len(interrupted)  # duplicates only among the messages in flight
    assert len(interrupted) <= kills  # one connection per worker: at most one message in flight each
    started = set(server.handler.data_started)
    assert all(recipient in started for recipient in interrupted)  # no unknown row whose DATA was never started
    assert not [outcome for _, outcome, _, _ in log if outcome not in ("sent", "unknown")]
    with store_of(notify_repo, postgres_url) as store, store.connect() as connection:
        assert not connection.execute(select(locks.c.name).where(locks.c.name.like(SENDER_PREFIX + "%"))).all()
    print(f"{kills} workers killed, {len(interrupted)} in flight, {sum(delivered.values()) - len(people)} duplicates")

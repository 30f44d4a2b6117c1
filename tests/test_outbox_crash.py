"""Killing `addendum notify` with SIGKILL at any moment, then running it again: nobody is missed, and duplicates are
bounded by the messages in flight at the kill (recorded `unknown`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import func, insert, select

from addendum.config import open_repo
from addendum.errors import NotifyError
from addendum.notify.outbox import LOCK_NAME, sending_lease
from addendum.notify.state import open_state
from addendum.notify.store import locks, outbox, utcnow
from smtp_server import Received, SmtpServer
from tests_support import set_config

VERSION = "privacy@2020-09-01"
PEOPLE = 30


def people(run: Callable[..., Result], repo: Path) -> set[str]:
    sites = ("selentic", "cavallo", "equihealth")
    lines = ["email,name,language,sites,audience"] + [
        f"p{n:02d}@example.org,Person {n},{'en' if n % 2 else 'nl'},{sites[n % 3]},{'account' if n % 4 else 'subscriber'}"
        for n in range(PEOPLE)]
    (repo.parent / "people.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run("--repo", repo, "subscribers", "import", repo.parent / "people.csv")
    return {f"p{n:02d}@example.org" for n in range(PEOPLE)}


def start_notify(repo: Path, server: SmtpServer, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "ADDENDUM_SMTP_HOST": "127.0.0.1", "ADDENDUM_SMTP_PORT": str(server.port),
           "ADDENDUM_SMTP_SECURITY": "none", "ADDENDUM_SMTP_TIMEOUT": "10"}
    return subprocess.Popen([sys.executable, "-m", "addendum", "--repo", str(repo), "notify", "privacy", VERSION, "--yes", "--late", "--reason", "a test of a past version", *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def states(repo: Path) -> Counter[str]:
    with open_state(open_repo(repo)) as state, state.store.connect() as connection:
        rows = connection.execute(select(outbox.c.state, func.count()).where(outbox.c.version_id == VERSION)
                                  .group_by(outbox.c.state)).all()
    return Counter({state: count for state, count in rows})


def kill_on_accept(server: SmtpServer, process: list[subprocess.Popen[str]], k: int) -> threading.Event:
    """SIGKILL the sender while the k-th accepted message awaits its reply: that message is in flight."""
    killed = threading.Event()

    def on_accept(_item: Received, count: int) -> None:
        if count == k and not killed.is_set():
            os.kill(process[0].pid, signal.SIGKILL)
            killed.set()

    server.handler.on_accept = on_accept
    return killed


@pytest.mark.parametrize(("k", "connections"), [(1, 1), (13, 1), (29, 1), (8, 3)])
def test_sigkill_after_k_accepted_then_rerun_delivers_to_everyone(run, notify_repo, k, connections):
    set_config(notify_repo, {"notify": {"rate_per_second": 0.0}, "notify.smtp": {"connections": connections}})
    expected = people(run, notify_repo)
    with SmtpServer() as server:
        process: list[subprocess.Popen[str]] = []
        killed = kill_on_accept(server, process, k)
        process.append(start_notify(notify_repo, server))
        process[0].wait(60)
        assert killed.is_set() and process[0].returncode == -signal.SIGKILL
        in_flight = states(notify_repo)["sending"]
        assert 1 <= in_flight <= connections  # the kth message at least, at most one per connection
        server.handler.on_accept = None
        rerun = start_notify(notify_repo, server)
        out, err = rerun.communicate(timeout=60)
        assert rerun.returncode == 0, err
        assert f"{in_flight} interrupted earlier" in out
    delivered = Counter(r for item in server.handler.received for r in item.recipients)
    assert set(delivered) == expected  # none lost
    duplicates = sum(delivered.values()) - len(expected)
    assert duplicates <= in_flight
    assert states(notify_repo) == Counter({"sent": PEOPLE})


def test_killed_at_random_moments_until_done(run, notify_repo):
    """Kills land anywhere: while starting, queueing or sending. Each re-run picks up where the last stopped."""
    set_config(notify_repo, {"notify": {"rate_per_second": 150.0}})
    expected = people(run, notify_repo)
    in_flight_total = 0
    with SmtpServer() as server:
        for delay in (0.5, 1.2, 1.6, 1.9, 2.3):
            process = start_notify(notify_repo, server)
            try:
                process.wait(delay)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait(10)
            in_flight_total += states(notify_repo)["sending"]
        final = start_notify(notify_repo, server)
        out, err = final.communicate(timeout=60)
        assert final.returncode == 0, err
    delivered = Counter(r for item in server.handler.received for r in item.recipients)
    assert set(delivered) == expected
    assert sum(delivered.values()) - len(expected) <= in_flight_total
    assert states(notify_repo) == Counter({"sent": PEOPLE})


def test_in_flight_messages_can_be_held_for_inspection(run, notify_repo):
    set_config(notify_repo, {"notify": {"rate_per_second": 0.0}})
    expected = people(run, notify_repo)
    with SmtpServer() as server:
        process: list[subprocess.Popen[str]] = []
        kill_on_accept(server, process, 5)
        process.append(start_notify(notify_repo, server))
        process[0].wait(60)
        server.handler.on_accept = None
        held = start_notify(notify_repo, server, "--unknown", "hold")
        out, err = held.communicate(timeout=60)
        assert held.returncode == 1, err  # the held notice is still owed: the run is not done
        assert out.endswith("outstanding: 1 unknown (may have arrived; held: `--unknown retry` sends them again)\n")
        assert states(notify_repo) == Counter({"sent": PEOPLE - 1, "unknown": 1})
    delivered = Counter(r for item in server.handler.received for r in item.recipients)
    assert set(delivered) == expected and sum(delivered.values()) == PEOPLE  # the held one had arrived: no duplicate
    listing = subprocess.run([sys.executable, "-m", "addendum", "--repo", str(notify_repo), "notices", "privacy", VERSION,
                              "--state", "unknown"], capture_output=True, text=True)
    assert "interrupted while sending: it may have been delivered" in listing.stdout


def test_a_lock_left_with_our_pid_by_a_killed_run_is_taken_over(run, notify_repo, smtp):
    """A container restarted with the same hostname can give the new run the pid the killed one had."""
    people(run, notify_repo)
    with open_state(open_repo(notify_repo)) as state:
        with state.store.begin() as connection:
            connection.execute(insert(locks).values(name=LOCK_NAME, owner="killed-run", host=socket.gethostname()[:255],
                                                    pid=os.getpid(), heartbeat_at=utcnow()))
        held = sending_lease(state.store)
        with held, pytest.raises(NotifyError, match="another `addendum notify` is sending"), sending_lease(state.store):
            pass  # a lease this process holds is alive, whatever the pid says
    run("--repo", notify_repo, "notify", "privacy", VERSION, "--yes", "--late", "--reason", "a test of a past version")
    assert states(notify_repo) == Counter({"sent": len(smtp.handler.received)}) and len(smtp.handler.received) > 0

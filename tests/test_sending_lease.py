"""One sender at a time: the sending lease is taken over from a dead, zombie or stopped holder within a heartbeat, never
from a live one busy with one slow delivery, and a sender that lost it records nothing more. Real processes, a real
SMTP server that drips its replies, SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from click.testing import Result
from sqlalchemy import insert, select, update

from addendum.config import open_repo
from addendum.errors import NotifyError
from addendum.notify.campaign import attempt_log
from addendum.notify.outbox import LOCK_NAME, Lease, local_process
from addendum.notify.state import open_state
from addendum.notify.store import Store, locks, open_store, outbox, utcnow
from smtp_server import SmtpServer
from tests_support import set_config

VERSION = "privacy@2020-09-01"
PEOPLE = [f"p{n}@example.org" for n in range(6)]
OTHER_HOST = """\
import socket
import sys

socket.gethostname = lambda: "other-host"  # another machine, as far as the lease can tell
from addendum.cli import main

sys.argv[0] = "addendum"
main()
"""


def subscribe(run: Callable[..., Result], repo: Path) -> None:
    lines = ["email,name,language,sites,audience"] + [f"{address},P,en,selentic,subscriber" for address in PEOPLE]
    (repo.parent / "people.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run("--repo", repo, "subscribers", "import", repo.parent / "people.csv")


def start_notify(repo: Path, *, host: str = "", database: str = "") -> subprocess.Popen[str]:
    """`addendum notify` in a process of its own, on this host or (host="other") as if on another machine."""
    env = {**os.environ, **({"ADDENDUM_DATABASE_URL": database} if database else {})}
    command = [sys.executable, "-m", "addendum"]
    if host == "other":
        script = repo.parent / "other_host.py"
        script.write_text(OTHER_HOST, encoding="utf-8")
        command = [sys.executable, str(script)]
    return subprocess.Popen([*command, "--repo", str(repo), "notify", "privacy", VERSION, "--yes", "--late", "--reason", "a test of a past version"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@contextmanager
def store_of(repo: Path, database: str = "") -> Iterator[Store]:
    store = open_store(open_repo(repo), database or None)
    try:
        yield store
    finally:
        store.dispose()


def stall_first_delivery(server: SmtpServer, seconds_per_byte: float) -> None:
    """The reply to the first message that arrives drips one byte every `seconds_per_byte` (its 21 bytes take long)."""
    server.handler.drip_reply = dict.fromkeys(PEOPLE, seconds_per_byte)


def wait_for_first_message(server: SmtpServer, process: subprocess.Popen[str]) -> None:
    """Until the first message is in and its reply is dripping; the rest then get a prompt reply."""
    deadline = time.monotonic() + 30
    while not server.handler.received:
        assert process.poll() is None, process.communicate()[1][-1200:]
        assert time.monotonic() < deadline, "the sender sent nothing"
        time.sleep(0.02)
    with server.handler.lock:
        server.handler.drip_reply.clear()


def take_over(store: Store, interval: float, within: float) -> tuple[float, list[str]]:
    """Try to take the lease until it is allowed: (seconds it took, the refusals seen on the way)."""
    started, refusals = time.monotonic(), []
    while True:
        lease = Lease(store, interval)
        try:
            lease.acquire()
        except NotifyError as exc:
            refusals.append(exc.format())
            assert time.monotonic() - started < within + 5, refusals[-1]
            time.sleep(0.05)
            continue
        lease.release()
        return time.monotonic() - started, refusals


def deliveries(server: SmtpServer) -> Counter[str]:
    return Counter(r for item in server.handler.received for r in item.recipients)


def outcomes(repo: Path, database: str = "") -> dict[str, list[str]]:
    """Every recorded attempt's outcome, per recipient, oldest first."""
    with open_state(open_repo(repo), database or None) as state:
        log = attempt_log(state.store, VERSION)
    found: dict[str, list[str]] = {}
    for recipient, _, outcome, _ in log:
        found.setdefault(recipient, []).append(outcome)
    return found


def states(repo: Path, database: str = "") -> Counter[str]:
    with store_of(repo, database) as store, store.connect() as connection:
        return Counter(row.state for row in connection.execute(select(outbox.c.state).where(outbox.c.version_id == VERSION)))


def assert_duplicates_only_among_unknown(server: SmtpServer, repo: Path, database: str = "") -> None:
    delivered, recorded = deliveries(server), outcomes(repo, database)
    assert set(delivered) == set(PEOPLE)  # nobody missed
    for recipient, count in delivered.items():
        assert count == 1 or "unknown" in recorded[recipient], (recipient, count, recorded[recipient])


def test_a_zombie_holder_is_taken_over_at_once(run, notify_repo, smtp, tmp_path):
    """A killed sender its parent has not reaped still answers kill(pid, 0); its process state says it is dead."""
    subscribe(run, notify_repo)
    script = tmp_path / "zombie.py"
    script.write_text(f"""\
import os, sys, time
from pathlib import Path
child = os.fork()
if child == 0:
    from addendum.config import open_repo
    from addendum.notify.outbox import Lease
    from addendum.notify.store import open_store
    Lease(open_store(open_repo(Path({str(notify_repo)!r})))).acquire()
    os._exit(0)  # holding the lease, with a fresh heartbeat
print(child, flush=True)
time.sleep(60)  # never wait()s: the child stays a zombie
""", encoding="utf-8")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        zombie = int(parent.stdout.readline())
        deadline = time.monotonic() + 20
        while (process := local_process(zombie)) is None or process.state != "Z":
            assert time.monotonic() < deadline, f"the child did not become a zombie: {process}"
            time.sleep(0.05)
        with store_of(notify_repo) as store, store.connect() as connection:
            holder = connection.execute(select(locks)).one()
        assert holder.pid == zombie and utcnow() - holder.heartbeat_at < timedelta(seconds=10)
        result = run("--repo", notify_repo, "notify", "privacy", VERSION, "--yes", "--late", "--reason", "a test of a past version")
        assert "sent 6, retry 0, failed 0, unknown 0" in result.stdout
        assert deliveries(smtp) == Counter(PEOPLE)
    finally:
        parent.kill()
        parent.wait(10)


def test_a_stopped_sender_is_taken_over_within_one_heartbeat_and_records_nothing_when_resumed(run, notify_repo, smtp):
    interval = 0.5
    set_config(notify_repo, {"notify": {"heartbeat_interval": interval, "rate_per_second": 0.0}})
    subscribe(run, notify_repo)
    stall_first_delivery(smtp, 0.2)
    stopped = start_notify(notify_repo)
    try:
        wait_for_first_message(smtp, stopped)
        stopped.send_signal(signal.SIGSTOP)
        with store_of(notify_repo) as store:
            took, refusals = take_over(store, interval, within=interval)
        assert took <= interval + 0.3, (took, refusals)
        for refusal in refusals:  # each says why, and how long until the takeover is allowed
            assert re.search(rf"process {stopped.pid} on .*: it is stopped \(state T\), renewed [0-9.]+ s ago", refusal)
            wait = float(re.search(r"can be taken over in ([0-9.]+) s if it stays stopped", refusal)[1])
            assert 0 < wait <= interval
        first = smtp.handler.received[0].recipients[0]
        rerun = run("--repo", notify_repo, "notify", "privacy", VERSION, "--yes", "--late", "--reason", "a test of a past version")
        assert "sent 6, retry 0, failed 0, unknown 0; 1 interrupted earlier" in rerun.stdout
        stopped.send_signal(signal.SIGCONT)
        out, err = stopped.communicate(timeout=30)
    finally:
        stopped.send_signal(signal.SIGCONT)
        stopped.kill()
        stopped.wait(10)
    assert stopped.returncode == 2, err
    assert "error: this run's sending lease was taken over by another sender: it stopped at once and recorded nothing" in err
    assert outcomes(notify_repo)[first] == ["unknown", "sent"]  # the resumed sender recorded nothing of its own
    assert states(notify_repo) == Counter({"sent": 6})
    assert deliveries(smtp)[first] == 2
    assert_duplicates_only_among_unknown(smtp, notify_repo)


def test_a_sender_that_lost_its_lease_stops_touching_rows(run, notify_repo, smtp):
    """However a lease is lost (here: taken by a sender elsewhere that misjudged it), its old holder records nothing
    more: the message it had in flight stays `sending` for the new holder to record `unknown`, and it claims no other."""
    set_config(notify_repo, {"notify": {"heartbeat_interval": 0.5, "rate_per_second": 0.0}})
    subscribe(run, notify_repo)
    stall_first_delivery(smtp, 0.15)
    sender = start_notify(notify_repo)
    try:
        wait_for_first_message(smtp, sender)
        with store_of(notify_repo) as store, store.begin() as connection:
            connection.execute(update(locks).where(locks.c.name == LOCK_NAME).values(
                owner="thief", host="elsewhere", pid=1, heartbeat_at=utcnow() - timedelta(hours=1)))
        out, err = sender.communicate(timeout=30)
    finally:
        sender.kill()
        sender.wait(10)
    assert sender.returncode == 2, err
    assert "this run's sending lease was taken over by process 1 on elsewhere: it stopped at once" in err
    assert states(notify_repo) == Counter({"sending": 1, "pending": 5}) and len(smtp.handler.received) == 1
    assert outcomes(notify_repo) == {}
    rerun = run("--repo", notify_repo, "notify", "privacy", VERSION, "--yes", "--late", "--reason", "a test of a past version")  # the thief is silent: taken over
    assert "sent 6, retry 0, failed 0, unknown 0; 1 interrupted earlier" in rerun.stdout
    assert_duplicates_only_among_unknown(smtp, notify_repo)


def claims(database: str, repo: Path) -> Counter[str]:
    """Who holds the version's rows: claimed_by per row ("" for nobody)."""
    with store_of(repo, database) as store, store.connect() as connection:
        return Counter(row.claimed_by or "" for row in connection.execute(
            select(outbox.c.claimed_by).where(outbox.c.version_id == VERSION)))


def test_a_live_sender_on_another_host_keeps_its_claims_through_a_slow_delivery_until_it_dies(run, notify_repo, smtp,
                                                                                              postgres_url, monkeypatch):
    """PostgreSQL: senders share the outbox. The heartbeat does not wait for the send loop: a reply dripping for many
    heartbeat intervals does not make the holder look dead to a sender on this host, which leaves its rows alone. Once
    it is killed, its rows are taken back after three missed beats: the one it was sending is `unknown`, the ones it
    had only claimed are pending again."""
    interval = 1.0
    monkeypatch.setenv("ADDENDUM_DATABASE_URL", postgres_url)
    set_config(notify_repo, {"notify": {"heartbeat_interval": interval, "rate_per_second": 0.0}})
    subscribe(run, notify_repo)
    stall_first_delivery(smtp, 0.5)  # about 10 s for one reply
    remote = start_notify(notify_repo, host="other", database=postgres_url)
    try:
        wait_for_first_message(smtp, remote)
        held = claims(postgres_url, notify_repo)
        assert len(held) == 1 and "" not in held  # the remote sender claimed all six (one batch)
        probe_until = time.monotonic() + 2 * 3 * interval  # twice as long as a silent holder is given
        while time.monotonic() < probe_until:
            joined = run("--repo", notify_repo, "notify", "privacy", VERSION, "--yes", "--late", "--reason", "a test of a past version", expect=1)
            assert "this run: sent 0, retry 0, failed 0, unknown 0\n" in joined.stdout
            assert "outstanding: 5 pending (held by other senders), 1 sending (being sent by other senders)" in joined.stdout, joined.stdout
            assert claims(postgres_url, notify_repo) == held
            time.sleep(0.3)
        remote.send_signal(signal.SIGKILL)
        remote.wait(10)
        killed_at = time.monotonic()
        while True:
            rerun = run("--repo", notify_repo, "notify", "privacy", VERSION, "--yes", "--late", "--reason", "a test of a past version", expect=None)
            if "sent 6" in rerun.stdout:
                break
            assert time.monotonic() - killed_at < 3 * interval + 2, rerun.stdout
            time.sleep(0.1)
        took = time.monotonic() - killed_at
    finally:
        remote.kill()
        remote.wait(10)
    assert 2 * interval <= took <= 3 * interval + 1, took  # judged by its heartbeat: three missed beats
    assert rerun.exit_code == 0 and "sent 6, retry 0, failed 0, unknown 0; 1 interrupted earlier" in rerun.stdout
    assert len(smtp.handler.received) == 7  # it was still on its first message when it died
    assert_duplicates_only_among_unknown(smtp, notify_repo, postgres_url)
    assert [outcome for outcomes_ in outcomes(notify_repo, postgres_url).values() for outcome in outcomes_].count("unknown") == 1


def test_two_senders_on_two_hosts_deliver_each_message_once(run, notify_repo, smtp, postgres_url, monkeypatch):
    """The case of the slow server: the sender on one host is blocked on one reply while a second host sends the
    rest; neither touches a row the other holds."""
    monkeypatch.setenv("ADDENDUM_DATABASE_URL", postgres_url)
    set_config(notify_repo, {"notify": {"heartbeat_interval": 0.5, "rate_per_second": 0.0, "claim_batch": 2}})
    subscribe(run, notify_repo)
    stall_first_delivery(smtp, 0.25)  # five seconds: ten heartbeat intervals
    remote = start_notify(notify_repo, host="other", database=postgres_url)
    try:
        wait_for_first_message(smtp, remote)
        second = run("--repo", notify_repo, "notify", "privacy", VERSION, "--yes", "--late", "--reason", "a test of a past version", expect=1)
        assert "this run: sent 4, retry 0, failed 0, unknown 0" in second.stdout
        assert "outstanding: 1 pending (held by other senders), 1 sending (being sent by other senders)" in second.stdout, second.stdout
        out, err = remote.communicate(timeout=30)
    finally:
        remote.kill()
        remote.wait(10)
    assert remote.returncode == 0, err
    assert "sent 2, retry 0, failed 0, unknown 0" in out
    assert deliveries(smtp) == Counter(PEOPLE)  # each exactly once
    assert states(notify_repo, postgres_url) == Counter({"sent": 6})
    senders = {sender for sender in attempt_senders(notify_repo, postgres_url)}
    assert len(senders) == 2 and any("other-host" in sender for sender in senders)  # the evidence names who sent what


def attempt_senders(repo: Path, database: str) -> list[str]:
    from addendum.notify.store import attempts

    with store_of(repo, database) as store, store.connect() as connection:
        return [row.sender for row in connection.execute(select(attempts.c.sender))]


def test_a_lease_naming_a_process_number_a_later_process_took_is_taken_at_once(run, notify_repo, smtp):
    subscribe(run, notify_repo)
    later = subprocess.Popen(["sleep", "30"])
    try:
        with store_of(notify_repo) as store, store.begin() as connection:
            connection.execute(insert(locks).values(name=LOCK_NAME, owner="gone", host=socket.gethostname(),
                                                    pid=later.pid, heartbeat_at=utcnow() - timedelta(seconds=5)))
        run("--repo", notify_repo, "notify", "privacy", VERSION, "--yes", "--late", "--reason", "a test of a past version")
    finally:
        later.kill()
        later.wait(10)
    assert deliveries(smtp) == Counter(PEOPLE)

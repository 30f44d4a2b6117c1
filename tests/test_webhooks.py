"""Signed webhooks against a real receiver on 127.0.0.1 that verifies each delivery with the `standardwebhooks` package."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from addendum.config import open_repo
from addendum.notify.store import open_store, utcnow, webhook_attempts, webhook_deliveries, webhook_events
from addendum.notify.webhooks import Event, emit, load_secrets, signature_header
from addendum.operations.webhooks import secret_file
from tests_support import Served, WebhookReceiver, git_in, set_config

FAST = {"webhooks": {"retry_delay": 0.0, "timeout": 1.0, "deadline": 3.0, "delivery_time": 5.0}}


def add_hook(run: Callable[..., Result], repo: Path, url: str, events: str = "version.published,version.effective,notices.finished",
             *extra: str) -> tuple[str, str]:
    out = run("--repo", repo, "webhooks", "add", url, "--events", events, *extra).stdout
    endpoint = out.split()[1].rstrip(":")
    secret = next(line.split()[1] for line in out.splitlines() if line.startswith("secret: "))
    return endpoint, secret


def publish_typo_fix(run: Callable[..., Result], repo: Path, effective: date | None = None) -> str:
    """Publish an editorial version of privacy, published today, taking effect on `effective` (default today)."""
    en = repo / "policies/privacy/en.md"
    en.write_text(en.read_text(encoding="utf-8").replace("no longer wish to receive", "no longer wish to get"), encoding="utf-8")
    git_in(repo, "commit", "-q", "-am", "Wording")
    day = effective or date.today()
    out = run("--repo", repo, "publish", "privacy", "--effective", day.isoformat(), "--published", date.today().isoformat(),
              "--editorial", "--reason", "Wording only.", "--summary", "Wording.", "--summary-nl", "Woorden.")
    return f"privacy@{day.isoformat()}" if "published privacy@" in out.stdout else ""


def stored_body(repo: Path) -> bytes:
    """The body of the one event in the store, byte for byte as it is delivered."""
    store = open_store(open_repo(repo))
    with store.connect() as connection:
        body: bytes = connection.execute(webhook_events.select()).one().body
    store.dispose()
    return body


def deliveries(run: Callable[..., Result], repo: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in run("--repo", repo, "webhooks", "deliveries", "--json").stdout.splitlines()]


def test_add_keeps_the_secret_private_and_rotate_signs_with_both_during_the_overlap(run, notify_repo):
    endpoint, secret = add_hook(run, notify_repo, "https://hooks.example.org/addendum")
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    file = secret_file(open_repo(notify_repo))
    assert stat.S_IMODE(file.stat().st_mode) == 0o600 and secret in file.read_text(encoding="utf-8")
    assert "webhook-secrets" not in git_in(notify_repo, "status", "--porcelain", "--ignored=no")
    assert endpoint in run("--repo", notify_repo, "webhooks", "list").stdout

    rotated = run("--repo", notify_repo, "webhooks", "rotate-secret", endpoint).stdout.split()[1]
    keys = load_secrets(file)
    assert keys.signing(endpoint, utcnow()) == [secret, rotated]
    assert keys.signing(endpoint, utcnow() + timedelta(days=2)) == [rotated]  # the default overlap is a day
    header = signature_header(keys.signing(endpoint, utcnow()), "msg_x", 1_700_000_000, b"{}")
    assert len(header.split(" ")) == 2 and all(part.startswith("v1,") for part in header.split(" "))

    run("--repo", notify_repo, "webhooks", "remove", endpoint)
    assert endpoint not in file.read_text(encoding="utf-8")
    assert "no webhook endpoints" in run("--repo", notify_repo, "webhooks", "list").stderr


def test_bad_input_is_refused_with_a_way_out(run, notify_repo):
    result = run("--repo", notify_repo, "webhooks", "add", "ftp://x.example.org/", "--events", "version.published", expect=2)
    assert "is not an http(s) URL" in result.stderr
    result = run("--repo", notify_repo, "webhooks", "add", "https://x.example.org/", "--events", "version.deleted", expect=2)
    assert "unknown event type(s): version.deleted" in result.stderr and "version.published" in result.stderr
    result = run("--repo", notify_repo, "webhooks", "add", "https://x.example.org/", "--events", "version.published",
                 "--site", "nowhere", expect=2)
    assert "no policy has a site 'nowhere'" in result.stderr
    result = run("--repo", notify_repo, "webhooks", "remove", "ep_nothing", expect=2)
    assert "no webhook endpoint 'ep_nothing'" in result.stderr


def test_publish_delivers_a_signed_version_published_the_receiver_library_verifies(run, notify_repo):
    set_config(notify_repo, {**FAST, "archive": {"base_url": "https://example.org/history/"}})
    with WebhookReceiver() as receiver:
        endpoint, secret = add_hook(run, notify_repo, receiver.url)
        receiver.secrets.append(secret)
        version = publish_typo_fix(run, notify_repo)
        assert receiver.rejected == [] and len(receiver.delivered) == 1
    message_id, payload = receiver.delivered[0]
    assert payload["type"] == "version.published"
    data = payload["data"]
    assert data["policy"] == "privacy" and data["version"] == version and data["class"] == "editorial"
    assert data["previous"] == "privacy@2020-10-01" and data["summary"]["nl"] == "Woorden."
    assert data["links"]["selentic/en"]["version"].startswith("https://example.org/history/privacy/")
    assert data["links"]["selentic/en"]["redline"] and "selentic" in data["sites"]
    headers = receiver.headers[0]
    assert headers["webhook-id"] == message_id and headers["webhook-signature"].startswith("v1,")
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    [record] = deliveries(run, notify_repo)
    assert record["state"] == "delivered" and record["message_id"] == message_id and record["endpoint_id"] == endpoint


def test_the_timestamp_is_signed_and_an_old_one_is_rejected(run, notify_repo):
    """A delivery replayed later, or with its timestamp changed, fails the receiver library's verification."""
    set_config(notify_repo, FAST)
    with WebhookReceiver() as receiver:
        _, secret = add_hook(run, notify_repo, receiver.url)
        receiver.secrets.append(secret)
        publish_typo_fix(run, notify_repo)
    headers = receiver.headers[0]
    body = stored_body(notify_repo)
    Webhook(secret).verify(body, headers)  # as delivered: valid
    moved = {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) + 60)}
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(secret).verify(body, moved)  # the timestamp is part of what is signed
    old = int(time.time()) - 600
    replayed = {**headers, "webhook-timestamp": str(old),
                "webhook-signature": signature_header([secret], headers["webhook-id"], old, body)}
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(body, replayed)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)  # and so is the body


def test_a_receiver_that_is_down_does_not_fail_the_publish_and_gets_it_byte_identical_later(run, notify_repo):
    set_config(notify_repo, FAST)
    with WebhookReceiver(behave=lambda n: 500 if n <= 2 else "ok") as receiver:
        _, secret = add_hook(run, notify_repo, receiver.url, "version.published")
        receiver.secrets.append(secret)
        publish_typo_fix(run, notify_repo)
        assert receiver.requests == 1 and deliveries(run, notify_repo)[0]["state"] == "retry"
        assert run("--repo", notify_repo, "webhooks", "deliver", expect=1).stdout.startswith("retry")
        run("--repo", notify_repo, "webhooks", "deliver", expect=0)
    assert receiver.requests == 3 and len(receiver.delivered) == 1
    ids = {h["webhook-id"] for h in receiver.headers}
    assert len(ids) == 1  # one webhook-id for every attempt
    [record] = deliveries(run, notify_repo)
    assert record["state"] == "delivered" and record["attempts"] == 3


@pytest.mark.parametrize(("fate", "state", "reply"), [
    (404, "failed", "404"), (410, "failed", "410"), ("redirect", "failed", "redirect to http://127.0.0.1:9/elsewhere not followed"),
    (408, "retry", "408"), (429, "retry", "429"), (503, "retry", "503"),
    ("drop", "retry", ""), (2.5, "retry", "timed out after 1 s"),
])
def test_what_each_answer_comes_to(run, notify_repo, fate, state, reply):
    set_config(notify_repo, FAST)
    with WebhookReceiver(behave=lambda n: fate) as receiver:
        _, secret = add_hook(run, notify_repo, receiver.url, "version.published")
        receiver.secrets.append(secret)
        publish_typo_fix(run, notify_repo)
    [record] = deliveries(run, notify_repo)
    assert record["state"] == state and reply in str(record["reply"])
    assert receiver.requests == 1  # a redirect is never followed, a failure never retried within the run


def test_a_receiver_that_refuses_connections_leaves_the_publish_as_it_was(run, notify_repo):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    set_config(notify_repo, FAST)
    add_hook(run, notify_repo, f"http://127.0.0.1:{closed}/hook", "version.published")
    version = publish_typo_fix(run, notify_repo)
    assert version and "privacy@" in run("--repo", notify_repo, "log", "privacy").stdout
    [record] = deliveries(run, notify_repo)
    assert record["state"] == "retry" and "ConnectionRefusedError" in str(record["reply"])


def test_publish_delivers_for_no_longer_than_its_time_limit(run, notify_repo):
    set_config(notify_repo, {"webhooks": {"retry_delay": 0.0, "timeout": 30.0, "deadline": 30.0, "delivery_time": 1.0}})
    with WebhookReceiver(behave=lambda n: 5.0) as receiver:
        _, secret = add_hook(run, notify_repo, receiver.url, "version.published")
        receiver.secrets.append(secret)
        started = time.monotonic()
        publish_typo_fix(run, notify_repo)
        assert time.monotonic() - started < 5.0
    [record] = deliveries(run, notify_repo)
    assert record["state"] == "retry" and "no answer within 1 s" in str(record["reply"])


def test_a_slow_trickle_is_cut_at_the_deadline_and_a_huge_answer_is_not_read(run, notify_repo):
    set_config(notify_repo, {"webhooks": {"retry_delay": 0.0, "timeout": 5.0, "deadline": 1.0}})
    with WebhookReceiver(behave=lambda n: 2.5) as receiver:
        _, secret = add_hook(run, notify_repo, receiver.url, "version.published")
        receiver.secrets.append(secret)
        started = time.monotonic()
        publish_typo_fix(run, notify_repo)
        assert time.monotonic() - started < 15
    [record] = deliveries(run, notify_repo)
    assert record["state"] == "retry" and "no answer within 1 s" in str(record["reply"])


def test_version_effective_is_emitted_once_by_tick_and_only_for_the_sites_an_endpoint_listens_to(run, notify_repo):
    set_config(notify_repo, FAST)
    with WebhookReceiver() as receiver, WebhookReceiver() as elsewhere:
        _, secret = add_hook(run, notify_repo, receiver.url, "version.effective")
        receiver.secrets.append(secret)
        _, other = add_hook(run, notify_repo, elsewhere.url, "version.effective", "--site", "equihealth")
        elsewhere.secrets.append(other)
        future = date.today() + timedelta(days=40)
        version = publish_typo_fix(run, notify_repo, effective=future)
        assert "emitted" not in run("--repo", notify_repo, "tick").stdout  # not yet
        first = run("--repo", notify_repo, "tick", "--today", future.isoformat()).stdout
        again = run("--repo", notify_repo, "tick", "--today", (future + timedelta(days=1)).isoformat()).stdout
    assert f"emitted version.effective:{version}" in first and "emitted" not in again
    assert [p["type"] for _, p in receiver.delivered] == ["version.effective"]
    assert receiver.delivered[0][1]["data"]["version"] == version
    sites = receiver.delivered[0][1]["data"]["sites"]
    assert (len(elsewhere.delivered) == 1) == ("equihealth" in sites)
    # The shipped history took effect before the endpoints were added: a new receiver is not told all of it.
    assert all(key.endswith(version) for key in (r["event_key"] for r in deliveries(run, notify_repo)))


def test_a_notice_run_ends_with_notices_finished(run, notify_repo, smtp):
    set_config(notify_repo, FAST)
    (notify_repo.parent / "people.csv").write_text("email,name,language,sites,audience\n"
                                                   "a@example.org,A,en,selentic,account\nb@example.org,B,nl,cavallo,account\n")
    run("--repo", notify_repo, "subscribers", "import", notify_repo.parent / "people.csv")
    with WebhookReceiver() as receiver:
        _, secret = add_hook(run, notify_repo, receiver.url, "notices.finished")
        receiver.secrets.append(secret)
        run("--repo", notify_repo, "notify", "privacy", "privacy@2020-09-01", "--yes", "--late", "--reason", "a test")
    [(_, payload)] = receiver.delivered
    data = payload["data"]
    assert payload["type"] == "notices.finished" and data["version"] == "privacy@2020-09-01"
    assert data["run"]["sent"] == 2 and data["notices"] == {"sent": 2} and data["complete"] is True


def test_during_a_rotation_a_receiver_with_either_secret_verifies(run, notify_repo):
    set_config(notify_repo, FAST)
    with WebhookReceiver() as old_side:
        endpoint, old = add_hook(run, notify_repo, old_side.url, "version.published")
        new = run("--repo", notify_repo, "webhooks", "rotate-secret", endpoint).stdout.split()[1]
        old_side.secrets.append(old)
        publish_typo_fix(run, notify_repo)
        assert len(old_side.delivered) == 1
        headers = old_side.headers[0]
    assert len(headers["webhook-signature"].split()) == 2
    Webhook(new).verify(stored_body(notify_repo), headers)


def test_removing_an_endpoint_cancels_what_it_was_owed(run, notify_repo):
    set_config(notify_repo, {"webhooks": {"delivery_time": 0.0}})
    endpoint, _ = add_hook(run, notify_repo, "http://127.0.0.1:9/never", "version.published")
    publish_typo_fix(run, notify_repo)
    assert deliveries(run, notify_repo)[0]["state"] == "pending"
    assert "1 outstanding delivery(ies) cancelled" in run("--repo", notify_repo, "webhooks", "remove", endpoint).stdout
    assert deliveries(run, notify_repo)[0]["state"] == "cancelled"
    run("--repo", notify_repo, "webhooks", "deliver", expect=0)


def test_the_servers_background_task_emits_and_delivers(run, notify_repo):
    set_config(notify_repo, {**FAST, "webhooks": {**FAST["webhooks"], "tick_interval": 0.3, "delivery_time": 0.0}})
    with WebhookReceiver() as receiver:
        _, secret = add_hook(run, notify_repo, receiver.url, "version.published,version.effective")
        receiver.secrets.append(secret)
        version = publish_typo_fix(run, notify_repo)  # effective today: due at once
        served = Served(notify_repo, "--no-watch")
        try:
            deadline = time.monotonic() + 20
            while len(receiver.delivered) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            served.stop()
    assert sorted(p["type"] for _, p in receiver.delivered) == ["version.effective", "version.published"]
    assert {p["data"]["version"] for _, p in receiver.delivered} == {version}


def emit_events(repo: Path, count: int) -> set[str]:
    """`count` events straight into the outbox: the webhook-ids of their deliveries."""
    store = open_store(open_repo(repo))
    for n in range(count):
        emit(store, Event(f"version.published:test-{n}", "version.published", {"n": n}))
    with store.connect() as connection:
        ids = set(connection.execute(webhook_deliveries.select().with_only_columns(webhook_deliveries.c.message_id)).scalars())
    store.dispose()
    return ids


def interrupted_ids(repo: Path) -> set[str]:
    """The webhook-ids of deliveries that were in flight when their deliverer was killed."""
    store = open_store(open_repo(repo))
    with store.connect() as connection:
        rows = connection.execute(webhook_deliveries.select().with_only_columns(webhook_deliveries.c.message_id)
                                  .join(webhook_attempts, webhook_attempts.c.delivery_id == webhook_deliveries.c.id)
                                  .where(webhook_attempts.c.outcome == "unknown")).scalars()
        found = set(rows)
    store.dispose()
    return found


def start_deliver(repo: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "addendum", "--repo", str(repo), "webhooks", "deliver"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def check_every_event_delivered(repo: Path, receiver: WebhookReceiver, expected: set[str]) -> None:
    seen = Counter(receiver.ids())
    assert set(seen) == expected, f"missed: {expected - set(seen)}"
    twice = {message_id for message_id, n in seen.items() if n > 1}
    assert twice <= interrupted_ids(repo), "a duplicate that was not in flight at a kill"
    assert receiver.rejected == []


@pytest.mark.parametrize("k", [1, 7, 20])
def test_sigkill_while_a_delivery_is_in_flight_then_rerun(run, notify_repo, k):
    """The deliverer is killed while the receiver holds the k-th request: that one is `unknown`, sent again with the
    same webhook-id (the receiver sees it twice and deduplicates), and nothing else is sent twice or missed."""
    set_config(notify_repo, FAST)
    process: list[subprocess.Popen[str]] = []

    def behave(n: int) -> object:
        if n == k:
            os.kill(process[0].pid, signal.SIGKILL)
            time.sleep(0.2)
        return "ok"

    with WebhookReceiver(behave=behave) as receiver:
        _, secret = add_hook(run, notify_repo, receiver.url, "version.published")
        receiver.secrets.append(secret)
        expected = emit_events(notify_repo, 20)
        process.append(start_deliver(notify_repo))
        process[0].wait(60)
        assert process[0].returncode == -signal.SIGKILL
        after = start_deliver(notify_repo)
        out, err = after.communicate(timeout=60)
        assert after.returncode == 0, err
        assert "1 interrupted earlier" in err
        check_every_event_delivered(notify_repo, receiver, expected)
    assert len(receiver.ids()) == 21


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_at_random_moments_then_rerun_delivers_every_event(run, notify_repo, seed):
    """Killed at random: at a random moment of the run (starting up, between a commit and a request, waiting for an
    answer), or while the receiver holds a random request. Re-run until done: every event arrives at each receiver,
    and only deliveries in flight at a kill arrive twice."""
    set_config(notify_repo, FAST)
    chance = random.Random(seed)
    current: list[subprocess.Popen[str]] = []
    kill_at = [0]

    def behave(n: int) -> object:
        if n == kill_at[0] and current and current[-1].poll() is None:
            os.kill(current[-1].pid, signal.SIGKILL)
        return 0.01

    with WebhookReceiver(behave=behave) as receiver, WebhookReceiver() as second:
        _, secret = add_hook(run, notify_repo, receiver.url, "version.published")
        _, other = add_hook(run, notify_repo, second.url, "version.published")
        receiver.secrets.append(secret)
        second.secrets.append(other)
        expected = emit_events(notify_repo, 16)
        kills = 0
        for attempt in range(60):
            # the first two runs are killed while the receiver holds one of their first requests (16 are owed, so
            # those kills happen however fast the machine is); after that, at random
            in_flight = attempt < 2 or chance.random() < 0.5
            kill_at[0] = receiver.requests + chance.randint(1, 3 if attempt < 2 else 6) if in_flight else 0
            current.append(start_deliver(notify_repo))
            process = current[-1]
            timer = threading.Timer(chance.uniform(0.3, 2.0), lambda p=process: p.poll() is None and os.kill(p.pid, signal.SIGKILL))
            if not in_flight:
                timer.start()
            process.communicate(timeout=60)
            timer.cancel()
            if process.returncode == 0:
                break
            assert process.returncode == -signal.SIGKILL, process.stderr
            kills += 1
        else:
            pytest.fail("never finished")
        assert kills >= 2
        assert set(receiver.ids()) | set(second.ids()) == expected
        for side in (receiver, second):
            twice = {i for i, n in Counter(side.ids()).items() if n > 1}
            assert twice <= interrupted_ids(notify_repo) and side.rejected == []
    assert all(r["state"] == "delivered" for r in deliveries(run, notify_repo))


def test_webhooks_work_the_same_on_postgresql(run, notify_repo, postgres_url, monkeypatch):
    """Publish, a retry, a deliverer killed in flight and its successor, and tick's once-only emission, on PostgreSQL."""
    monkeypatch.setenv("ADDENDUM_DATABASE_URL", postgres_url)
    set_config(notify_repo, FAST)
    process: list[subprocess.Popen[str]] = []

    def behave(n: int) -> object:
        if n == 1:
            return 503
        if n == 3 and process:
            os.kill(process[0].pid, signal.SIGKILL)
            time.sleep(0.2)
        return "ok"

    with WebhookReceiver(behave=behave) as receiver:
        _, secret = add_hook(run, notify_repo, receiver.url, "version.published,version.effective")
        receiver.secrets.append(secret)
        version = publish_typo_fix(run, notify_repo)
        assert [r["state"] for r in deliveries(run, notify_repo)] == ["retry"]
        emit_events(notify_repo, 3)
        process.append(start_deliver(notify_repo))
        process[0].wait(60)
        assert process[0].returncode == -signal.SIGKILL
        assert "emitted version.effective:" + version in run("--repo", notify_repo, "tick").stdout
        assert "emitted" not in run("--repo", notify_repo, "tick").stdout
        check_every_event_delivered(notify_repo, receiver, {str(r["message_id"]) for r in deliveries(run, notify_repo)})
    assert {r["state"] for r in deliveries(run, notify_repo)} == {"delivered"}


def test_a_429_waits_at_least_as_long_as_retry_after_says(run, notify_repo):
    set_config(notify_repo, FAST)

    with WebhookReceiver(behave=lambda n: 429) as receiver:
        receiver.retry_after = "120"
        _, secret = add_hook(run, notify_repo, receiver.url, "version.published")
        receiver.secrets.append(secret)
        publish_typo_fix(run, notify_repo)
        run("--repo", notify_repo, "webhooks", "deliver", expect=1)  # not due yet: nothing sent
        assert receiver.requests == 1
    [record] = deliveries(run, notify_repo)
    wait = datetime.fromisoformat(str(record["next_attempt_at"])) - datetime.fromisoformat(str(record["updated_at"]))
    assert record["state"] == "retry" and timedelta(seconds=119) <= wait <= timedelta(seconds=121)

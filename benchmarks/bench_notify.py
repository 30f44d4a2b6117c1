"""Change notices to 10,000 subscribers (2 languages × 3 sites) through a local aiosmtpd sink: messages per second
(queueing, sending, end to end) and peak memory, which must stay flat in the number of recipients. Beside it, what
the sink takes from minimal clients, and what our sender reaches through the least SMTP server there is.

Runs alone (`python benchmarks/bench_notify.py`) or from benchmarks/run.py. ADDENDUM_BENCH_RECIPIENTS=N changes
the large run's size; ADDENDUM_BENCH_CONNECTIONS=N the SMTP connections (default 2). Each size runs in a fresh
process, so its peak resident memory is its own.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from addendum.config import Repo

RECIPIENTS = int(os.environ.get("ADDENDUM_BENCH_RECIPIENTS", "10000"))
CONNECTIONS = int(os.environ.get("ADDENDUM_BENCH_CONNECTIONS", "2"))
TARGET_PER_SECOND = 1000.0
PROJECT = Path(__file__).resolve().parents[1]
SITES = ("selentic", "cavallo", "equihealth")
GIT_ENV = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.org", "GIT_COMMITTER_NAME": "Bench",
           "GIT_COMMITTER_EMAIL": "bench@example.org"}
SINK = """
import sys, threading, signal
from aiosmtpd.controller import Controller
class Count:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        Count.n += 1
        return "250 OK"
controller = Controller(Count(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
print(Count.n, flush=True)
"""

# The least an SMTP server can do (one thread per connection, a reply per command): what our sender reaches when the
# server is not the limit.
MINIMAL_SINK = """
import socket, sys, threading
def serve(link):
    lines = link.makefile("rb")
    link.sendall(b"220 sink\\r\\n")
    while line := lines.readline():
        command = line[:4].upper()
        if command == b"EHLO":
            link.sendall(b"250-sink\\r\\n250-8BITMIME\\r\\n250 SIZE 33554432\\r\\n")
        elif command == b"DATA":
            link.sendall(b"354 go on\\r\\n")
            while (body := lines.readline()) and body != b".\\r\\n":
                pass
            link.sendall(b"250 OK\\r\\n")
        elif command == b"QUIT":
            link.sendall(b"221 bye\\r\\n")
            break
        else:
            link.sendall(b"250 OK\\r\\n")
    link.close()
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
while True:  # until killed
    link, _ = server.accept()
    threading.Thread(target=serve, args=(link,), daemon=True).start()
"""


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, env={**os.environ, **GIT_ENV}, check=True, capture_output=True)


def build_repository(folder: Path) -> Path:
    """The shipped policy in a fresh git repository, published twice (the second version material)."""
    from addendum.config import open_repo
    from addendum.publish.record import publish

    root = folder / "repo"
    root.mkdir()
    shutil.copy(PROJECT / "addendum.toml", root / "addendum.toml")
    # The policy as first published (the working tree already holds the later example revision).
    shutil.copytree(PROJECT / "history" / "privacy" / "2018-05-19" / "source", root / "policies" / "privacy")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "Policy")
    os.environ.update(GIT_ENV)
    publish(open_repo(root), "privacy", effective=date(2018, 5, 19), published=date(2018, 5, 19), classification="material",
            summaries={"en": "First version.", "nl": "Eerste versie."})
    en = root / "policies/privacy/en.md"
    en.write_text(en.read_text(encoding="utf-8").replace("is certified in the EU-U.S. Privacy Shield Framework",
                                                         "relies on standard contractual clauses"), encoding="utf-8")
    _git(root, "commit", "-q", "-am", "Replace the Privacy Shield")
    publish(open_repo(root), "privacy", effective=date(2020, 9, 1), published=date(2020, 8, 1), classification="material",
            summaries={"en": "MailChimp relies on standard contractual clauses.", "nl": "MailChimp steunt op standaardcontractbepalingen."})
    return root


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child(count: int, connections: int, minimal: bool = False) -> dict[str, float]:
    """One measured run in this (fresh) process: import `count` subscribers, then notify them all (through aiosmtpd, or
    with `minimal` through the least SMTP server there is)."""
    from addendum.config import open_repo
    from addendum.notify.campaign import NoProgress, NotifyOptions, notify
    from addendum.notify.state import open_state
    from addendum.notify.subscribers import import_subscribers

    folder = Path(tempfile.mkdtemp(prefix="addendum-bench-notify-"))
    port = _free_port()
    sink = subprocess.Popen([sys.executable, "-c", MINIMAL_SINK if minimal else SINK, str(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        root = build_repository(folder)
        os.environ.update(ADDENDUM_SMTP_HOST="127.0.0.1", ADDENDUM_SMTP_PORT=str(port), ADDENDUM_SMTP_SECURITY="none")
        csv = folder / "people.csv"
        with csv.open("w", encoding="utf-8") as stream:
            stream.write("email,name,language,sites,audience\n")
            for n in range(count):
                stream.write(f"person{n}@example.org,Person {n},{('en', 'nl')[n % 2]},{SITES[n % 3]},"
                             f"{('subscriber', 'account')[n % 5 == 0]}\n")
        repo = open_repo(root)
        started = time.perf_counter()
        with open_state(repo) as state:
            report = import_subscribers(state, csv)
        imported = time.perf_counter() - started
        assert report.added == count, report

        class Phases(NoProgress):
            marks: dict[str, float] = {}

            def start(self, label: str, total: int) -> None:
                self.marks[label] = time.perf_counter()

        phases = Phases()
        started = time.perf_counter()
        result = notify(repo, "privacy", "privacy@2020-09-01",
                        NotifyOptions(rate_per_second=0.0, connections=connections), lambda audience: True, phases)
        total = time.perf_counter() - started
        assert result.send is not None and result.send.sent == count, result.send
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        bare = raw = 0.0
        if not minimal:
            bare, raw = smtp_alone(repo, connections), raw_ceiling(port)
            sink.communicate("", timeout=60)
        queue_seconds = phases.marks["sending"] - phases.marks["queueing"]
        send_seconds = started + total - phases.marks["sending"]
        return {"recipients": count, "import_s": imported, "queue_per_s": count / queue_seconds,
                "send_per_s": count / send_seconds, "end_to_end_per_s": count / total, "total_s": total,
                "bare_per_s": bare, "raw_per_s": raw, "peak_rss_mb": peak_mb}
    finally:
        if sink.poll() is None:
            sink.kill()
        shutil.rmtree(folder, ignore_errors=True)


def smtp_alone(repo: Repo, connections: int, count: int = 1000) -> float:
    """What the sink accepts with no outbox at all: the same stored messages through the same SMTP code, in
    `connections` threads. The ceiling any sender reaches against this sink on this machine."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import select

    from addendum.notify.smtp import SmtpConnection, smtp_settings
    from addendum.notify.state import open_state
    from addendum.notify.store import outbox

    with open_state(repo) as state, state.store.connect() as connection:
        rows = connection.execute(select(outbox.c.recipient, outbox.c.message).limit(count)).all()
    settings = smtp_settings(repo)
    share = [rows[n::connections] for n in range(connections)]

    def send(batch: list[Any]) -> None:
        link = SmtpConnection(settings)
        for row in batch:
            assert link.deliver("bench@example.org", row.recipient, row.message).outcome == "sent"
        link.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(send, share))
    return len(rows) / (time.perf_counter() - started)


RAW_CLIENTS = 4
RAW_MESSAGE = (b"From: bench@example.org\r\nTo: person@example.org\r\nSubject: Notice\r\n\r\n"
               + b"A line of the notice, as long as a line of a real one.\r\n" * 120)


def _raw_client(port: int, count: int) -> None:
    """The least a client can do per message: one command per line, waiting for each reply (the sink offers no pipelining)."""
    import socket

    with socket.create_connection(("127.0.0.1", port)) as link, link.makefile("rb") as replies:
        replies.readline()
        link.sendall(b"EHLO bench\r\n")
        while replies.readline()[3:4] != b" ":
            pass
        for n in range(count):
            for command in (b"MAIL FROM:<bench@example.org>\r\n", b"RCPT TO:<p%d@example.org>\r\n" % n, b"DATA\r\n"):
                link.sendall(command)
                replies.readline()
            link.sendall(RAW_MESSAGE + b".\r\n")
            replies.readline()
        link.sendall(b"QUIT\r\n")


def raw_ceiling(port: int, count: int = 4000) -> float:
    """Messages per second the sink takes from minimal clients in separate processes: no client does better here."""
    import multiprocessing

    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(RAW_CLIENTS) as pool:
        pool.starmap(_raw_client, [(port, count // RAW_CLIENTS)] * RAW_CLIENTS)
    return count / (time.perf_counter() - started)


def _run_child(count: int, connections: int, minimal: bool = False) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--child", str(count), str(connections), "minimal" if minimal else "aiosmtpd"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark run of {count} recipients failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    print(f"== notify: {RECIPIENTS:,} subscribers (2 languages × 3 sites) to a local aiosmtpd sink, "
          f"{CONNECTIONS} SMTP connection(s), no rate limit")
    small = _run_child(max(1, RECIPIENTS // 10), CONNECTIONS)
    large = _run_child(RECIPIENTS, CONNECTIONS)
    unhindered = _run_child(RECIPIENTS, CONNECTIONS, minimal=True)
    print(f"{'recipients':>10} {'import s':>9} {'queue/s':>9} {'send/s':>9} {'total/s':>9} {'total s':>8} {'peak MB':>8}")
    for run in (small, large):
        print(f"{run['recipients']:>10,.0f} {run['import_s']:>9.2f} {run['queue_per_s']:>9.0f} {run['send_per_s']:>9.0f} "
              f"{run['end_to_end_per_s']:>9.0f} {run['total_s']:>8.2f} {run['peak_rss_mb']:>8.1f}")
    growth = large["peak_rss_mb"] / small["peak_rss_mb"]
    verdict = "meets" if large["send_per_s"] >= TARGET_PER_SECOND else "misses"
    print(f"sending {large['send_per_s']:.0f} messages/s {verdict} the target of {TARGET_PER_SECOND:.0f}/s "
          f"(end to end, rendering and storing included: {large['end_to_end_per_s']:.0f}/s)")
    print(f"the sink's ceiling here: {large['bare_per_s']:.0f} messages/s through the same SMTP code with no outbox "
          f"(the outbox sends at {large['send_per_s'] / large['bare_per_s']:.0%} of it); rendering and storing alone: "
          f"{large['queue_per_s']:.0f}/s")
    print(f"the sink itself, fed by minimal clients in {RAW_CLIENTS} processes: {large['raw_per_s']:.0f} messages/s (it and the sender "
          f"share this machine's {os.cpu_count()} cores)")
    print(f"our sender when the server is not the limit (the least SMTP server there is, same {RECIPIENTS:,} recipients): "
          f"{unhindered['send_per_s']:.0f} messages/s sent, {unhindered['end_to_end_per_s']:.0f}/s end to end")
    print(f"peak memory ×{growth:.2f} for ×10 recipients ({'flat' if growth < 1.3 else 'NOT flat'})")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        print(json.dumps(child(int(sys.argv[2]), int(sys.argv[3]), minimal=sys.argv[4] == "minimal")))
    else:
        main()

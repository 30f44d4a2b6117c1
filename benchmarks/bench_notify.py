"""Change notices at scale: 100,000 subscribers (2 languages × 3 sites) on PostgreSQL, sent by 1, 2 and 4 sender
processes (`notify --workers N`) to two local sinks, aiosmtpd and Postfix's smtp-sink (the C test server shipped with
Postfix). For each: messages per second sent and end to end (queueing included), peak memory per worker, and the
ratio to that sink's ceiling, measured in the same run from minimal clients (4 processes, pipelining where the sink
offers it). A 10,000-recipient run with 4 workers shows that a worker's memory is flat in the number of recipients.

Targets: 4 workers against smtp-sink reach 80 % of its ceiling; N workers send at least 0.8 × N × one worker's rate,
until the sink or the cores are the limit. Each row names its limit from the CPU used while it ran: the sink when it
kept its one core busy (both sinks are single-threaded), the cores when the machine's were all busy (this run's
senders, sink and PostgreSQL, or other work on a shared machine), else the round trips the senders wait for.
Runs alone (`python benchmarks/bench_notify.py`) or from benchmarks/run.py (`python benchmarks/run.py notify`).
ADDENDUM_BENCH_RECIPIENTS=N changes the large size, ADDENDUM_BENCH_CONNECTIONS the SMTP connections per worker
(default 1), ADDENDUM_BENCH_RUNS the runs of each row and ceiling (default 1; the table shows medians). Each measured
run is a fresh process, so its peak memory is its own.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from addendum.progress import NoProgress as NoProgressBase

RECIPIENTS = int(os.environ.get("ADDENDUM_BENCH_RECIPIENTS", "100000"))
CONNECTIONS = int(os.environ.get("ADDENDUM_BENCH_CONNECTIONS", "1"))
RUNS = int(os.environ.get("ADDENDUM_BENCH_RUNS", "1"))
VERSION = "privacy@2020-09-01"
PROJECT = Path(__file__).resolve().parents[1]
SITES = ("selentic", "cavallo", "equihealth")
GIT_ENV = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.org", "GIT_COMMITTER_NAME": "Bench",
           "GIT_COMMITTER_EMAIL": "bench@example.org"}
sys.path.insert(0, str(PROJECT / "tests"))  # the private PostgreSQL server the tests start
from postgres_server import PostgresServer  # noqa: E402

# The settings of a store on one machine that may lose its last commits in a crash of the machine, not of a process:
# the outbox's guarantees are about killed processes (synchronous_commit=off keeps each commit atomic).
POSTGRES_SETTINGS = {"synchronous_commit": "off", "max_connections": "200"}
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


class Sink:
    """A local SMTP sink in a process of its own: aiosmtpd, or Postfix's smtp-sink."""

    def __init__(self, kind: str) -> None:
        self.kind, self.port = kind, _free_port()
        if kind == "aiosmtpd":
            self.process = subprocess.Popen([sys.executable, "-c", SINK, str(self.port)], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, text=True)
            assert self.process.stdout is not None and self.process.stdout.readline().strip() == "ready"
        else:
            binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
            user = ["-u", "nobody"] if os.geteuid() == 0 else []
            self.process = subprocess.Popen([binary, *user, f"127.0.0.1:{self.port}", "1000"], stdout=subprocess.DEVNULL)
            _wait_for_port(self.port)

    def cpu_seconds(self) -> float:
        return process_cpu(self.process.pid)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(30)


def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/PID/stat after the command name: state, parent, …, user and system time at 11 and 12."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_cpu(pid: int, ended_children: bool = False) -> float:
    """CPU seconds a process used so far (its threads included); with `ended_children`, those of the children it
    waited for as well."""
    fields = _stat(pid)
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if ended_children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu(postmaster: int) -> float:
    """CPU seconds of the PostgreSQL server so far: the postmaster, the backends that ended, and those that run."""
    total = process_cpu(postmaster, ended_children=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = _stat(entry.name)
            except OSError:  # ended meanwhile: its time is the postmaster's children's now
                continue
            if int(fields[1]) == postmaster:
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _wait_for_port(port: int) -> None:
    import socket

    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"nothing listens on port {port}") from None
            time.sleep(0.05)


def _people(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as stream:
        stream.write("email,name,language,sites,audience\n")
        for n in range(count):
            stream.write(f"person{n}@example.org,Person {n},{('en', 'nl')[n % 2]},{SITES[n % 3]},"
                         f"{('subscriber', 'account')[n % 5 == 0]}\n")


def prepare(folder: Path, database: str, count: int) -> dict[str, float]:
    """A repository whose outbox on `database` holds `count` rendered notices: import, then queue (timed)."""
    from addendum.config import open_repo
    from addendum.notify.campaign import Campaign
    from addendum.notify.content import plan_notice
    from addendum.notify.state import open_state
    from addendum.notify.subscribers import import_subscribers
    from addendum.progress import NoProgress

    folder.mkdir(parents=True, exist_ok=True)
    root = build_repository(folder)
    csv = folder / "people.csv"
    _people(csv, count)
    repo = open_repo(root)
    with open_state(repo, database) as state:
        started = time.perf_counter()
        assert import_subscribers(state, csv).added == count
        imported = time.perf_counter() - started
        started = time.perf_counter()
        queued = Campaign(state, plan_notice(repo, "privacy", VERSION, False), False).queue(NoProgress())
        queue_seconds = time.perf_counter() - started
    assert queued == count, queued
    return {"import_s": imported, "queue_s": queue_seconds}


def reset_outbox(root: Path, database: str) -> None:
    """Every notice pending again, as if never sent: the next run sends the same stored bytes."""
    from sqlalchemy import delete, update

    from addendum.config import open_repo
    from addendum.notify.store import attempts, locks, open_store, outbox, rate_limits

    store = open_store(open_repo(root), database)
    with store.begin() as connection:
        connection.execute(delete(attempts))
        connection.execute(delete(locks))
        connection.execute(delete(rate_limits))
        connection.execute(update(outbox).values(state="pending", attempts=0, reply="", sent_at=None, next_attempt_at=None,
                                                 claimed_by=None, lease_until=None))
    with store.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE outbox")
    store.dispose()


def _busy_cores() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / tick, sum(fields) / tick


def send_child(root: str, database: str, port: int, workers: int, connections: int) -> dict[str, float]:
    """One measured send in this fresh process: `workers` senders through `notify` (the whole command but the
    confirmation), then this process's and its workers' peak memory."""
    from addendum.config import open_repo
    from addendum.notify.campaign import NotifyOptions, notify

    os.environ.update(ADDENDUM_SMTP_HOST="127.0.0.1", ADDENDUM_SMTP_PORT=str(port), ADDENDUM_SMTP_SECURITY="none")

    class Phases(NoProgressBase):
        marks: dict[str, float] = {}

        def start(self, label: str, total: int) -> None:
            self.marks[label] = time.perf_counter()

    phases = Phases()
    started = time.perf_counter()
    result = notify(open_repo(Path(root)), "privacy", VERSION,
                    NotifyOptions(rate_per_second=0.0, connections=connections, database_url=database, workers=workers,
                                  late=True, reason="benchmark"), lambda audience: True, phases)
    ended = time.perf_counter()
    assert result.send is not None and result.send.sent == result.audience.to_send, result.send
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    per_worker = (children.ru_maxrss if workers > 1 else own.ru_maxrss) / 1024
    return {"sent": result.send.sent, "send_s": ended - phases.marks["sending"], "total_s": ended - started,
            "worker_peak_mb": per_worker, "parent_peak_mb": own.ru_maxrss / 1024,
            "cpu_s": own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime}


def _run_send(root: Path, database: str, postmaster: int, sink: Sink, workers: int, connections: int) -> dict[str, float]:
    """One measured send in a fresh process, with the CPU the senders, the sink and PostgreSQL used meanwhile, and how
    busy the whole machine was (other people's work included)."""
    reset_outbox(root, database)
    sink_cpu, server_cpu, (busy, total) = sink.cpu_seconds(), postgres_cpu(postmaster), _busy_cores()
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--send", str(root), database, str(sink.port), str(workers),
                           str(connections)], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"send with {workers} worker(s) to {sink.kind} failed:\n{done.stderr[-4000:]}")
    run = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    busy_after, total_after = _busy_cores()
    run["wall_s"] = wall
    run["sink_cpu_s"] = sink.cpu_seconds() - sink_cpu
    run["postgres_cpu_s"] = postgres_cpu(postmaster) - server_cpu
    run["machine_busy"] = (busy_after - busy) / max(1e-9, total_after - total)
    return run


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each measure's median over repeated runs."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def limit(run: dict[str, float], cores: int) -> str:
    """What held a send back: the sink (a single-threaded server, at its one core), the cores (all busy: ours, and
    other people's on a shared machine), or neither (the senders wait on round trips)."""
    sink_core = run["sink_cpu_s"] / run["wall_s"]
    ours = (run["cpu_s"] + run["sink_cpu_s"] + run["postgres_cpu_s"]) / (cores * run["wall_s"])
    others = max(0.0, run["machine_busy"] - ours)
    if sink_core >= 0.8:
        return f"the sink (at {sink_core:.0%} of its one core)"
    if run["machine_busy"] >= 0.85:
        return f"the cores (busy {run['machine_busy']:.0%}: {ours:.0%} this run, {others:.0%} other work)"
    return f"round trips (cores busy {run['machine_busy']:.0%}, sink at {sink_core:.0%} of a core)"


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.machine())
    memory = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0) / 1024 / 1024
    return (f"{os.cpu_count()} cores ({model}), {memory:.0f} GB, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


RAW_CLIENTS = 4
RAW_MESSAGE = (b"From: bench@example.org\r\nTo: person@example.org\r\nSubject: Notice\r\n\r\n"
               + b"A line of the notice, as long as a line of a real one.\r\n" * 120)


def _raw_client(port: int, count: int) -> None:
    """The least a client can do per message: MAIL, RCPT and DATA in one write where the sink offers PIPELINING (one
    at a time where it does not), then the message; nothing is parsed but the reply codes."""
    import socket

    with socket.create_connection(("127.0.0.1", port)) as link, link.makefile("rb") as replies:
        replies.readline()
        link.sendall(b"EHLO bench\r\n")
        pipelining = False
        while (line := replies.readline())[3:4] != b" ":
            pipelining = pipelining or b"PIPELINING" in line.upper()
        pipelining = pipelining or b"PIPELINING" in line.upper()
        for n in range(count):
            commands = (b"MAIL FROM:<bench@example.org>\r\n", b"RCPT TO:<p%d@example.org>\r\n" % n, b"DATA\r\n")
            if pipelining:
                link.sendall(b"".join(commands))
                for _ in commands:
                    replies.readline()
            else:
                for command in commands:
                    link.sendall(command)
                    replies.readline()
            link.sendall(RAW_MESSAGE + b".\r\n")
            replies.readline()
        link.sendall(b"QUIT\r\n")


def raw_ceiling(port: int, count: int = 20000) -> float:
    """Messages per second the sink takes from minimal clients in separate processes: no client does better here."""
    import multiprocessing

    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(RAW_CLIENTS) as pool:
        pool.starmap(_raw_client, [(port, count // RAW_CLIENTS)] * RAW_CLIENTS)
    return count / (time.perf_counter() - started)




def _table_row(sink: str, workers: int, run: dict[str, float], ceiling: float, queue_s: float, cores: int) -> str:
    send_rate = run["sent"] / run["send_s"]
    end_to_end = run["sent"] / (queue_s + run["send_s"])
    senders = run["cpu_s"] / run["wall_s"]
    return (f"{sink:<10} {workers:>7} {send_rate:>8,.0f} {end_to_end:>8,.0f} {run['worker_peak_mb']:>10.1f} "
            f"{send_rate / ceiling:>8.0%} {senders:>8.0%} {run['sink_cpu_s'] / run['wall_s']:>7.0%} "
            f"{run['postgres_cpu_s'] / run['wall_s']:>6.0%}  {limit(run, cores)}")


def main() -> None:
    cores = os.cpu_count() or 1
    print(f"== notify: {RECIPIENTS:,} subscribers (2 languages × 3 sites) on PostgreSQL, 1, 2 and 4 sender processes, "
          f"{CONNECTIONS} SMTP connection(s) each, no rate limit; medians of {RUNS} run(s)")
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at the start")
    folder = Path(tempfile.mkdtemp(prefix="addendum-bench-notify-"))
    postgres = PostgresServer(POSTGRES_SETTINGS, prefix="addendum-bench-pg-").start()
    assert postgres.process is not None
    postmaster = postgres.process.pid
    sinks: list[Sink] = []
    try:
        large, small = postgres.database("bench_large"), postgres.database("bench_small")
        prepared = prepare(folder / "large", large, RECIPIENTS)
        prepare(folder / "small", small, max(1, RECIPIENTS // 10))
        print(f"import {RECIPIENTS / prepared['import_s']:,.0f} rows/s; queueing (render and store) "
              f"{RECIPIENTS / prepared['queue_s']:,.0f} notices/s in one process")
        sinks = [Sink("aiosmtpd"), Sink("smtp-sink")]
        results: dict[str, dict[int, dict[str, float]]] = {}
        ceilings: dict[str, float] = {}
        for sink in sinks:
            ceilings[sink.kind] = statistics.median(raw_ceiling(sink.port) for _ in range(RUNS))
            # Round by round (1, 2, 4 workers, then again), so that a busy spell of the machine spreads over all three.
            runs: dict[int, list[dict[str, float]]] = {1: [], 2: [], 4: []}
            for _ in range(RUNS):
                for n, done in runs.items():
                    done.append(_run_send(folder / "large" / "repo", large, postmaster, sink, n, CONNECTIONS))
            results[sink.kind] = {n: median_run(done) for n, done in runs.items()}
        flat = _run_send(folder / "small" / "repo", small, postmaster, sinks[1], 4, CONNECTIONS)
        for sink in sinks:
            print(f"{sink.kind}: ceiling {ceilings[sink.kind]:,.0f} messages/s from {RAW_CLIENTS} minimal clients")
        print(f"{'sink':<10} {'workers':>7} {'sent/s':>8} {'total/s':>8} {'MB/worker':>10} {'ceiling':>8} "
              f"{'senders':>8} {'sink':>7} {'pg':>6}  limit")
        for sink in sinks:
            for n, run in results[sink.kind].items():
                print(_table_row(sink.kind, n, run, ceilings[sink.kind], prepared["queue_s"], cores))
        print("(sent/s: the sending phase; total/s: queueing (one process) included; MB/worker: peak resident memory of "
              "one sender process; ceiling: sent/s over the sink's ceiling; senders, sink, pg: CPU they used, in cores "
              "(100% = one core busy all along); limit: what held the run back)")
        four = results["smtp-sink"][4]
        ratio = four["sent"] / four["send_s"] / ceilings["smtp-sink"]
        print(f"target: 4 workers against smtp-sink at {ratio:.0%} of its ceiling ({'meets' if ratio >= 0.8 else 'misses'} 80%)")
        # What a message costs in CPU, all processes of the run together, against what the target leaves for it.
        spent = {name: four[key] / four["sent"] * 1000 for name, key in
                 (("senders", "cpu_s"), ("PostgreSQL", "postgres_cpu_s"), ("sink", "sink_cpu_s"))}
        budget = cores / (0.8 * ceilings["smtp-sink"]) * 1000
        print(f"CPU per message with 4 workers against smtp-sink: {sum(spent.values()):.3f} ms ("
              + ", ".join(f"{name} {ms:.3f}" for name, ms in spent.items())
              + f"); 80% of the ceiling on {cores} cores leaves {budget:.3f} ms")
        for sink in sinks:
            one = results[sink.kind][1]["sent"] / results[sink.kind][1]["send_s"]
            for n in (2, 4):
                run = results[sink.kind][n]
                rate = run["sent"] / run["send_s"]
                scaling = rate / (n * one)
                verdict = "meets 0.8 × N" if scaling >= 0.8 else f"below 0.8 × N; the limit: {limit(run, cores)}"
                print(f"scaling, {sink.kind}, {n} workers: {rate:,.0f}/s = {scaling:.2f} × {n} × one worker's "
                      f"{one:,.0f}/s — {verdict}")
        growth = four["worker_peak_mb"] / flat["worker_peak_mb"]
        print(f"memory per worker: {flat['worker_peak_mb']:.1f} MB for {flat['sent']:,.0f} recipients, "
              f"{four['worker_peak_mb']:.1f} MB for {four['sent']:,.0f} (×{growth:.2f}: {'flat' if growth < 1.3 else 'NOT flat'})")
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        for sink in sinks:
            sink.stop()
        postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--send":
        print(json.dumps(send_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))))
    else:
        main()

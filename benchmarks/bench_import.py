"""`addendum subscribers import` of 100,000 rows into SQLite and PostgreSQL: rows per second into an empty store and
into a store that knows every address (all updates), peak memory at 10,000 and 100,000 rows (it must stay flat),
and how fast a file is refused that has one bad row at line 90,008, or an unterminated quote as well.

Runs alone (`.venv/bin/python benchmarks/bench_import.py`) or from benchmarks/run.py (`python benchmarks/run.py
import`, `make bench BENCH=import`). Every import runs in a fresh process, so its peak resident memory is its own;
the time is that of the import call alone, with the CPU time it took beside it (the PostgreSQL server process's
included), which a busy machine does not inflate as much. The file mixes what real ones hold: two languages, three
sites, some rows with two sites, a policy or a consent date, names with accents, twenty domains. Ten of its
addresses were erased before, so the suppression check does its real work. PostgreSQL is a private server started
by the tests' own helper (tests/postgres_server.py), on a Unix socket in a temporary folder; without PostgreSQL
installed, its rows are left out. ADDENDUM_BENCH_ROWS=N changes the large file's size.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROWS = int(os.environ.get("ADDENDUM_BENCH_ROWS", "100000"))
SMALL = ROWS // 10
BAD_LINE = 90_008 * ROWS // 100_000  # a bad address there; the file is refused
QUOTE_LINE = ROWS // 2  # an opening quote there that never closes
TARGET_ROWS_PER_SECOND = 20_000.0
FLAT = 1.10  # peak memory at ROWS may be at most this many times the peak at SMALL
PROJECT = Path(__file__).resolve().parents[1]
SITES = ("selentic", "cavallo", "equihealth")
DOMAINS = tuple(f"{name}.example.{tld}" for name in ("mail", "post", "inbox", "web", "box") for tld in ("org", "com", "net", "be"))
ERASED = tuple(range(7, ROWS, max(1, ROWS // 10)))  # rows whose address was erased before the import
sys.path.insert(0, str(PROJECT / "tests"))  # the private PostgreSQL server the tests start
from postgres_server import PostgresServer, postgres_bindir  # noqa: E402

GIT_ENV = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.org", "GIT_COMMITTER_NAME": "Bench",
           "GIT_COMMITTER_EMAIL": "bench@example.org"}


def address(n: int) -> str:
    return f"person.{n}@{DOMAINS[n % len(DOMAINS)]}"


def row(n: int) -> str:
    name = f"Zoë Ündërberg {n}" if n % 10 == 0 else f"Person {n}"
    sites = f"{SITES[n % 3]};{SITES[(n + 1) % 3]}" if n % 7 == 0 else SITES[n % 3]
    return (f"{address(n)},{name},{('en', 'nl')[n % 2]},{sites},{('subscriber', 'account')[n % 5 == 0]},"
            f"{'privacy' if n % 3 == 0 else ''},{'2024-03-01T10:00:00+01:00' if n % 4 == 0 else ''}\n")


def write_csv(path: Path, count: int, changes: dict[int, str] | None = None) -> Path:
    """`count` rows after the header; `changes` replaces the rows at these (physical) lines."""
    changes = changes or {}
    with path.open("w", encoding="utf-8", newline="") as stream:
        stream.write("email,name,language,sites,audience,policies,consent_at\n")
        for n in range(count):
            stream.write(changes.get(n + 2, row(n)))
    return path


def build_repository(folder: Path) -> Path:
    """The shipped policy (en and nl, three sites) in a fresh git repository; subscribers need nothing published."""
    root = folder / "repo"
    root.mkdir()
    shutil.copy(PROJECT / "addendum.toml", root / "addendum.toml")
    shutil.copytree(PROJECT / "policies" / "privacy", root / "policies" / "privacy")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "Policy"]):
        subprocess.run(["git", *args], cwd=root, env={**os.environ, **GIT_ENV}, check=True, capture_output=True)
    return root


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One measured run in this (fresh) process: erase ERASED's addresses (again, when the store has them), then
    import each file in turn."""
    from addendum.config import open_repo
    from addendum.notify.erasure import forget_subscriber
    from addendum.notify.state import open_state
    from addendum.notify.subscribers import import_subscribers

    os.environ.update(GIT_ENV)
    repo = open_repo(Path(spec["repo"]))
    runs = []
    with open_state(repo, spec["url"]) as state:
        for n in ERASED:
            forget_subscriber(state, address(n))
        engine = state.store.engine
        for file in spec["files"]:
            started, cpu, served = time.perf_counter(), time.process_time(), server_cpu(engine)
            report = import_subscribers(state, Path(file))
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu + server_cpu(engine) - served
            runs.append({"seconds": seconds, "cpu": cpu, "added": report.added, "updated": report.updated,
                         "imported": report.imported, "suppressed": report.suppressed_rows, "bad_rows": report.bad_rows,
                         "problems": [problem.format() for problem in report.problems]})
    return {"runs": runs, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def server_cpu(engine: Any) -> float:
    """CPU seconds the PostgreSQL server processes of this database have used so far (none for SQLite), read from
    /proc: the import's own process cannot count them."""
    if engine.dialect.name != "postgresql":
        return 0.0
    with engine.connect() as connection:
        pids = connection.exec_driver_sql("SELECT pid FROM pg_stat_activity WHERE datname = current_database()").scalars()
        return sum(cpu_seconds(pid) for pid in pids)


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process has used so far; 0 when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_child(repo: Path, url: str, *files: Path) -> dict[str, Any]:
    spec = {"repo": str(repo), "url": url, "files": [str(file) for file in files]}
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                          check=False, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark import into {url} failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def check(run: dict[str, Any], rows: int, updates: bool = False) -> None:
    """The import did what it should: every row but the erased ones added (or updated), nothing bad."""
    erased = sum(1 for n in ERASED if n < rows)
    expected = {"added": 0 if updates else rows - erased, "updated": rows - erased if updates else 0,
                "suppressed": erased, "bad_rows": 0, "imported": True}
    got = {key: run[key] for key in expected}
    if got != expected:
        raise RuntimeError(f"import of {rows:,} rows: expected {expected}, got {got} {run['problems'][:3]}")


def measure(name: str, repo: Path, new_store: Callable[[str], str], files: dict[str, Path]) -> list[tuple[str, str, str, str, bool]]:
    """The table rows of one kind of store (`new_store(name)` gives the URL of a new, empty one): (case, result,
    memory, target, met)."""
    store = new_store("large")
    large = run_child(repo, store, files["large"])
    updates = run_child(repo, store, files["large"])  # the same store again: every address is known now
    small = run_child(repo, new_store("small"), files["small"])
    bad = run_child(repo, new_store("bad"), files["bad"])
    quote = run_child(repo, new_store("quote"), files["quote"])
    fresh, again = large["runs"][0], updates["runs"][0]
    check(fresh, ROWS)
    check(again, ROWS, updates=True)
    check(small["runs"][0], SMALL)
    refused, quoted = bad["runs"][0], quote["runs"][0]
    expected_bad = [f"line {BAD_LINE}: invalid address 'not-an-address': An email address must have an @-sign."]
    if refused["imported"] or refused["problems"] != expected_bad:
        raise RuntimeError(f"{name}: the file with a bad row at line {BAD_LINE:,} gave {refused}")
    expected_quote = [f"line {QUOTE_LINE}: unterminated quote starting at this line", f"line {BAD_LINE}: invalid address"]
    if quoted["imported"] or len(quoted["problems"]) != 2 or not all(
            problem.startswith(prefix) for problem, prefix in zip(quoted["problems"], expected_quote, strict=True)):
        raise RuntimeError(f"{name}: the file with an unterminated quote at line {QUOTE_LINE:,} gave {quoted['problems']}")
    rate, update_rate = ROWS / fresh["seconds"], ROWS / again["seconds"]
    growth = large["peak_mb"] / small["peak_mb"]

    def timing(run: dict[str, Any]) -> str:
        return f"{run['seconds']:.2f} s, CPU {run['cpu']:.2f} s"

    # A refused file is compared by CPU time, which a busy machine disturbs far less than the wall clock.
    as_fast = f"CPU ≤ {fresh['cpu']:.2f} s, the valid file's"
    return [
        (f"{name}: {ROWS:,} rows into an empty store", f"{rate:,.0f} rows/s ({timing(fresh)})",
         f"{large['peak_mb']:.1f} MB", f"≥ {TARGET_ROWS_PER_SECOND:,.0f} rows/s", rate >= TARGET_ROWS_PER_SECOND),
        (f"{name}: the same rows again (all updates)", f"{update_rate:,.0f} rows/s ({timing(again)})",
         f"{updates['peak_mb']:.1f} MB", f"≥ {TARGET_ROWS_PER_SECOND:,.0f} rows/s", update_rate >= TARGET_ROWS_PER_SECOND),
        (f"{name}: memory, {SMALL:,} → {ROWS:,} rows", f"×{growth:.2f}",
         f"{small['peak_mb']:.1f} → {large['peak_mb']:.1f} MB", f"≤ ×{FLAT:.2f} (flat)", growth <= FLAT),
        (f"{name}: bad row at line {BAD_LINE:,}: refused", timing(refused), f"{bad['peak_mb']:.1f} MB", as_fast,
         refused["cpu"] <= fresh["cpu"]),
        (f"{name}: unterminated quote at line {QUOTE_LINE:,}: refused", f"{timing(quoted)}, both rows reported",
         f"{quote['peak_mb']:.1f} MB", as_fast, quoted["cpu"] <= fresh["cpu"]),
    ]


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="addendum-bench-import-"))
    try:
        repo = build_repository(folder)
        bad_row = "not-an-address,Nobody,en,selentic,subscriber,,\n"
        files = {"large": write_csv(folder / "large.csv", ROWS), "small": write_csv(folder / "small.csv", SMALL),
                 "bad": write_csv(folder / "bad.csv", ROWS, {BAD_LINE: bad_row}),
                 "quote": write_csv(folder / "quote.csv", ROWS, {BAD_LINE: bad_row, QUOTE_LINE: '"' + row(QUOTE_LINE - 2)})}
        print(f"== subscribers import: {ROWS:,} rows (2 languages × 3 sites, 20 domains, {len(ERASED)} erased addresses), "
              f"each import in a fresh process")
        stores = repo / ".addendum"
        table = measure("sqlite", repo, lambda name: f"sqlite:///{stores / f'bench-{name}.db'}", files)
        if postgres_bindir() is None:
            print("(PostgreSQL is not installed: its rows are left out)")
        else:
            with PostgresServer(prefix="addendum-bench-pg-") as server:
                table += measure("postgresql", repo, lambda name: server.database(f"bench_{name}"), files)
        width = max(len(case) for case, *_ in table)
        print(f"{'case':<{width}}  {'result':<44} {'peak memory':<20} {'target':<34} verdict")
        for case, result, memory, target, met in table:
            print(f"{case:<{width}}  {result:<44} {memory:<20} {target:<34} {'MET' if met else 'MISSED'}")
        print(f"CPU: the import's own process, and the PostgreSQL server process serving it. Load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (above the core count, the times grow with it)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
    else:
        main()

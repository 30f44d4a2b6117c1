"""`addendum acceptances stats` over 1,000,000 acceptance records on PostgreSQL (target ≤ 1 s), and one user's question.

The records are stored by the library itself (`record_acceptances`, the path of `acceptances import` after its
checks), on the shipped privacy policy's two versions: 1,000,000 acts of 800,000 users on three sites in two
languages, a quarter of the users with a second act (most of them of the material revision). Then the table is
vacuumed and analysed, as autovacuum does after a bulk load, and `stats` runs seven times: the median is compared with
the target. PostgreSQL is a private server started the way the tests start theirs, on a Unix socket in a temporary
folder. Runs alone (`.venv/bin/python benchmarks/bench_acceptances.py`) or from benchmarks/run.py (`make bench
BENCH=acceptances`). ADDENDUM_BENCH_ACCEPTANCES=N changes the number of records.
"""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the private PostgreSQL server the tests start
from postgres_server import PostgresServer  # noqa: E402

RECORDS = int(os.environ.get("ADDENDUM_BENCH_ACCEPTANCES", "1000000"))
RUNS = 7
TARGET_SECONDS = 1.0
PROJECT = Path(__file__).resolve().parents[1]
SITES = ("selentic", "cavallo", "equihealth")
LANGUAGES = ("en", "nl")
FIRST, REVISION = "privacy@2018-05-19", "privacy@2020-09-01"


def build_repository(folder: Path) -> Path:
    """The shipped policy and its history (two published versions); the ledger is all acceptances read."""
    root = folder / "repo"
    root.mkdir()
    shutil.copy(PROJECT / "addendum.toml", root / "addendum.toml")
    for name in ("policies", "history"):
        shutil.copytree(PROJECT / name, root / name)
    return root


def entries(count: int) -> Iterator[object]:
    from addendum.history.ledger import read_ledger
    from addendum.notify.acceptances import METHODS, AcceptanceEntry

    versions = {v.id: v for v in read_ledger(PROJECT / "history", "privacy")}
    users = count * 4 // 5
    start = datetime(2019, 1, 1, tzinfo=UTC)
    for n in range(count):
        user = n if n < users else (n - users) * 4  # the rest: second acts of every fourth user
        version = FIRST if n < users and n % 10 < 7 else REVISION
        site, language = SITES[user % 3], LANGUAGES[user % 2]
        at = start + timedelta(minutes=user) if version == FIRST else datetime(2020, 9, 2, tzinfo=UTC) + timedelta(seconds=n)
        yield AcceptanceEntry(f"u-{user}", "privacy", site, version, str(versions[version].hash_for(site, language)), language,
                              at, METHODS[n % 3])


def main() -> None:
    from addendum.config import open_repo
    from addendum.notify.acceptances import acceptance_stats, needs_acceptance, record_acceptances
    from addendum.notify.state import open_state

    os.environ["ADDENDUM_NOTIFY_KEYS"] = f"1:{secrets.token_urlsafe(32)}"
    folder = Path(tempfile.mkdtemp(prefix="addendum-bench-acceptances-"))
    server = PostgresServer(prefix="addendum-bench-pg-").start()
    try:
        repo = open_repo(build_repository(folder))
        with open_state(repo, server.database("acceptances")) as state:
            started = time.perf_counter()
            stored = record_acceptances(state, entries(RECORDS), "bench")  # type: ignore[arg-type]
            load = time.perf_counter() - started
            print(f"== {stored:,} acceptance records stored in {load:.1f} s ({stored / load:,.0f} records/s)")
            with state.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("VACUUM ANALYZE acceptances")
                connection.exec_driver_sql("VACUUM ANALYZE acceptance_standing")
            times, stats = [], None
            for _ in range(RUNS):
                started = time.perf_counter()
                stats = acceptance_stats(state, "privacy")
                times.append(time.perf_counter() - started)
            assert stats is not None
            users = sum(row.accepted for row in stats.rows)
            must = sum(row.must_accept for row in stats.rows)
            median = statistics.median(times)
            print(f"acceptances stats privacy: {users:,} users on {len(SITES)} sites, {must:,} must accept {stats.target.id}")
            print(f"  median of {RUNS} runs: {median * 1000:.0f} ms (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}); "
                  f"target ≤ {TARGET_SECONDS:.0f} s: {'met' if median <= TARGET_SECONDS else 'MISSED'}")
            asks = []
            for n in range(RUNS):
                started = time.perf_counter()
                needs_acceptance(state, f"u-{n * 1000}", "privacy", SITES[n * 1000 % 3])
                asks.append(time.perf_counter() - started)
            print(f"acceptances needs (one user): median {statistics.median(asks) * 1000:.1f} ms")
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

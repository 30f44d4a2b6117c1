"""`addendum serve`: the draft redline page server-side, and the version-in-force API under load on one worker.

Runs alone (`.venv/bin/python benchmarks/bench_serve.py`) or from benchmarks/run.py (`make bench BENCH=serve`).

1. The workspace of a copy of the shipped repository with a local edit: the draft page (the working tree against the
   last published version, with its suggested class) and the redline document it frames, each timed inside the
   server (from the ASGI call to the last byte of the answer) over ROUNDS requests after a warm-up, so that the
   parsed versions are cached as in a running server. Targets: p50 ≤ 50 ms and p99 ≤ 150 ms for each.
2. `addendum serve --public` in its own process (one uvicorn worker, 127.0.0.1, an ephemeral port), loaded from this
   process by a keep-alive HTTP/1.1 client on CONNECTIONS sockets, bounded by REQUESTS requests and SECONDS
   seconds per endpoint: `GET /api/policies/privacy/at/2020-08-15?site=selentic&lang=nl`, then a static file of the
   archive served by the same server (history/privacy/ledger.toml) for the ratio. Target: ≥ 1,000 requests/s.
   Below it, the API's own work per answer measured in this process, and its share of a request's time: what is
   left to gain in the handler, against the server, the HTTP parsing and the load generator sharing the same cores.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
ROUNDS = 200
WARMUP = 10
CONNECTIONS = 16
REQUESTS = 20_000
SECONDS = 15.0
API_PATH = "/api/policies/privacy/at/2020-08-15?site=selentic&lang=nl"
STATIC_PATH = "/history/privacy/ledger.toml"
TARGET_P50, TARGET_P99, TARGET_RATE = 0.050, 0.150, 1000.0
ANSWERS = 2000  # answers timed in-process, per round


def copy_of_shipped(folder: Path) -> Path:
    root = folder / "repo"
    root.mkdir()
    shutil.copy(PROJECT / "addendum.toml", root / "addendum.toml")
    for name in ("policies", "history"):
        shutil.copytree(PROJECT / name, root / name)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "Shipped policy"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    en = root / "policies" / "privacy" / "en.md"
    en.write_text(en.read_text(encoding="utf-8").replace("Google Analytics", "Google Analytics 4", 1), encoding="utf-8")
    return root


class Timed:
    """An ASGI wrapper that records how long each HTTP request took inside the server."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.durations: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.durations.append(time.perf_counter() - started)

        await self.app(scope, receive, timed_send)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def bench_pages(root: Path) -> list[tuple[str, float, float, bool]]:
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from starlette.testclient import TestClient

    from addendum.config import open_repo
    from addendum.web.app import ServerConfig, build_app
    from addendum.web.auth import Auth

    app = build_app(ServerConfig(open_repo(root), watch=False), Auth(login_token="bench"))
    timed = Timed(app)
    rows = []
    with TestClient(timed, base_url="http://127.0.0.1") as client:
        assert client.get("/login?token=bench", follow_redirects=False).status_code == 303
        for label, path in (("draft page", "/policies/privacy/draft"),
                            ("draft redline document", "/policies/privacy/redline?from=latest&to=worktree&site=selentic&lang=en")):
            for _ in range(WARMUP):
                answer = client.get(path)
                assert answer.status_code == 200, answer.text[:500]
            timed.durations.clear()
            for _ in range(ROUNDS):
                client.get(path)
            p50, p99 = percentile(timed.durations, 0.5), percentile(timed.durations, 0.99)
            rows.append((label, p50, p99, p50 <= TARGET_P50 and p99 <= TARGET_P99))
    return rows


class Server:
    """`addendum serve --public` in its own process on an ephemeral port of 127.0.0.1."""

    def __init__(self, root: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "addendum", "--repo", str(root), "serve", "--public", "--port", "0"],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + 30
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError("addendum serve --public did not start")
            if "/api/policies" in line:
                self.port = int(line.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])
                return

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


async def _client(port: int, path: str, budget: list[int], deadline: float, done: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            status = int(head.split(b" ", 2)[1])
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
            await asyncio.wait_for(reader.readexactly(length), 10)
            if status != 200:
                raise RuntimeError(f"{path}: HTTP {status}")
            done[0] += 1
    finally:
        writer.close()


async def load(port: int, path: str) -> tuple[int, float]:
    """(requests answered, seconds) for `path` from CONNECTIONS keep-alive clients, bounded in count and time."""
    budget, done = [REQUESTS], [0]
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, path, budget, started + SECONDS, done) for _ in range(CONNECTIONS)))
    return done[0], time.perf_counter() - started


def bench_api(root: Path) -> list[tuple[str, int, float]]:
    server = Server(root)
    try:
        asyncio.run(load(server.port, API_PATH))  # warm-up: caches, connections
        rows = []
        for label, path in (("GET /api/…/at/{date}", API_PATH), ("GET static file (history/…/ledger.toml)", STATIC_PATH)):
            count, seconds = asyncio.run(load(server.port, path))
            rows.append((label, count, seconds))
        return rows
    finally:
        server.stop()


def answer_time(root: Path) -> float:
    """Seconds the API's own work takes per answer (the version in force, its JSON and ETag), in this process, warm:
    what the server spends beyond HTTP on each request."""
    import hashlib
    import json
    from datetime import date

    from addendum.config import open_repo
    from addendum.operations.public import version_at

    repo = open_repo(root)
    day = date(2020, 8, 15)

    def answer() -> None:
        body = json.dumps(version_at(repo, "privacy", day, "selentic", "nl"), ensure_ascii=False, separators=(",", ":"),
                          sort_keys=True).encode("utf-8")
        hashlib.sha256(body).hexdigest()

    answer()
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(ANSWERS):
            answer()
        best = min(best, (time.perf_counter() - started) / ANSWERS)
    return best


def main() -> None:
    for name, value in (("GIT_AUTHOR_NAME", "Bench Editor"), ("GIT_AUTHOR_EMAIL", "editor@example.org"),
                        ("GIT_COMMITTER_NAME", "Bench Editor"), ("GIT_COMMITTER_EMAIL", "editor@example.org")):
        os.environ.setdefault(name, value)  # a redline of the working tree names who prepared it
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as folder:
        root = copy_of_shipped(Path(folder))
        print(f"draft pages of the shipped policy with a local edit, {ROUNDS} requests each, timed inside the server")
        print(f"{'page':<26} {'p50':>9} {'p99':>9}  target p50 ≤ {TARGET_P50 * 1000:.0f} ms, p99 ≤ {TARGET_P99 * 1000:.0f} ms")
        for label, p50, p99, met in bench_pages(root):
            print(f"{label:<26} {p50 * 1000:>7.1f}ms {p99 * 1000:>7.1f}ms  {'met' if met else 'MISSED'}")
        print(f"\none uvicorn worker on 127.0.0.1; {CONNECTIONS} keep-alive connections, at most {REQUESTS} requests or "
              f"{SECONDS:.0f} s per endpoint")
        rows = bench_api(root)
        static_rate = rows[1][1] / rows[1][2]
        for label, count, seconds in rows:
            rate = count / seconds
            print(f"{label:<42} {rate:>8.0f} req/s  ({count} in {seconds:.1f} s; {rate / static_rate:.2f}× the static file)")
        api_rate = rows[0][1] / rows[0][2]
        own = answer_time(root)
        print(f"the API's own work per answer (in this process, fastest of 5 × {ANSWERS}): {own * 1e6:.0f} µs, "
              f"{own * api_rate:.0%} of a request's time at {api_rate:.0f} req/s; the rest is HTTP, the server and this client")
        print(f"target ≥ {TARGET_RATE:.0f} req/s for the API: {'met' if api_rate >= TARGET_RATE else 'MISSED'}")


if __name__ == "__main__":
    main()

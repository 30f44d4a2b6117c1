"""The server's background task: every webhooks.tick_interval seconds, what `addendum tick` does (due events, deliveries)."""

from __future__ import annotations

import sys
import threading

from addendum.config import Repo
from addendum.errors import AddendumError
from addendum.operations.webhooks import store_exists, tick

STOP_WAIT = 1.0  # seconds shutdown waits for a round in progress; a delivery cut off is `unknown`, sent again later


class BackgroundTick(threading.Thread):
    """Runs tick rounds in a thread of its own, so that requests never wait for a receiver."""

    def __init__(self, repo: Repo, database: str | None, interval: float) -> None:
        super().__init__(name="webhooks-tick", daemon=True)
        self.repo, self.database, self.interval = repo, database, interval
        self._stopping = threading.Event()
        self._last_problem = ""

    def run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                if store_exists(self.repo, self.database):
                    tick(self.repo, self.database, time_limit=self.interval)
                self._last_problem = ""
            except AddendumError as exc:
                problem = exc.format()
                if problem != self._last_problem:  # said once, not every round
                    print(f"webhooks: {problem}", file=sys.stderr)
                self._last_problem = problem

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=STOP_WAIT)

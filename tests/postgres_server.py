"""A private PostgreSQL server for tests and benchmarks: initdb into a temporary folder, listening only on a Unix socket."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

# A throwaway cluster need not survive a crash of the machine: no fsync, and commits return before the WAL is flushed.
THROWAWAY = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}
NOBODY = 65534  # postgres refuses to run as root; as root, the server runs as `nobody`


def postgres_bindir() -> Path | None:
    """The bin folder of the newest PostgreSQL installed the Debian way, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3].split(".")[0]))
    return found[-1].parent if found else None


class PostgresServer:
    """`with PostgresServer() as server: url = server.database("name")`; the folder is removed when it stops."""

    def __init__(self, settings: Mapping[str, str] = THROWAWAY, prefix: str = "addendum-pg-") -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
        self.bindir, self.settings, self.prefix = bindir, dict(settings), prefix
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PostgresServer:
        import psycopg

        self.base = Path(tempfile.mkdtemp(prefix=self.prefix))
        self.socket = self.base / "socket"
        run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            os.chown(self.base, NOBODY, NOBODY)
            run_as = {"user": NOBODY, "group": NOBODY, "extra_groups": []}
        data = self.base / "data"
        subprocess.run([str(self.bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "addendum", "--no-sync",
                        "-E", "UTF8", "--locale=C"], check=True, capture_output=True, cwd=self.base, **run_as)
        self.socket.mkdir()
        if run_as:
            os.chown(self.socket, NOBODY, NOBODY)
        options = [part for key, value in self.settings.items() for part in ("-c", f"{key}={value}")]
        self.process = subprocess.Popen([str(self.bindir / "postgres"), "-D", str(data), "-k", str(self.socket),
                                         "-c", "listen_addresses=", *options],
                                        cwd=self.base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **run_as)
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(host=str(self.socket), user="addendum", dbname="postgres").close()
                return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("PostgreSQL did not start") from None
                time.sleep(0.1)

    def database(self, name: str) -> str:
        """The SQLAlchemy URL of a new, empty database `name` (one of that name is dropped first)."""
        import psycopg

        with psycopg.connect(host=str(self.socket), user="addendum", dbname="postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://addendum@/{name}?host={self.socket}"

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)  # a fast shutdown: sessions end, the server exits
                self.process.wait(60)
            self.process = None
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()

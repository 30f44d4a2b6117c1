"""Live refresh: a watch on the policy files (watchfiles), announced to open workspace pages as server-sent events."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

KEEPALIVE_SECONDS = 15.0


class ChangeFeed:
    """One watch for the whole server; each open page gets its own queue of changed file names."""

    def __init__(self, root: Path, folders: Sequence[Path]) -> None:
        self.root = root
        self.folders = [f for f in folders if f.is_dir()]
        self._queues: set[asyncio.Queue[list[str] | None]] = set()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.folders:
            self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        self._stop.set()
        for queue in list(self._queues):
            queue.put_nowait(None)  # ends every open stream now, not at its next keepalive
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        from watchfiles import awatch  # only a server that watches needs it

        async for changes in awatch(*self.folders, stop_event=self._stop, debounce=150, step=50):
            names = sorted({self._name(Path(path)) for _, path in changes})
            for queue in list(self._queues):
                queue.put_nowait(names)

    def _name(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.name

    async def stream(self) -> AsyncIterator[str]:
        """The event stream of one page: `change` with the changed files, a comment now and then to keep it open."""
        queue: asyncio.Queue[list[str] | None] = asyncio.Queue()
        self._queues.add(queue)
        try:
            yield "retry: 2000\n: watching for changes\n\n"
            while not self._stop.is_set():
                try:
                    names = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": still here\n\n"
                    continue
                if names is None:
                    break
                yield f"event: change\ndata: {json.dumps(names)}\n\n"
        finally:
            self._queues.discard(queue)

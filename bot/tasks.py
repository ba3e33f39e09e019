"""Work that outlives a callback: a tracked task set the app owns, drained or cancelled on shutdown.

One seam (`spawn`) so the jobs can move to the Redis job queue later without touching the callers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from echain.logs import redact

log = logging.getLogger("echain.bot.tasks")
T = TypeVar("T")


class BackgroundTasks:
    """Keeps a strong reference to every task (asyncio only keeps weak ones) and logs their failures."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, work: Coroutine[Any, Any, T], *, name: str = "bot") -> asyncio.Task[T]:
        """Start `work` in the background."""
        if self._closed:
            work.close()
            raise RuntimeError("background tasks are shut down")
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Task names hold the dedup key, which for events is the sender's openid: masked explicitly.
            log.error("background task %s failed", redact(task.get_name()), exc_info=task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    async def drain(self, within: float = 30.0) -> None:
        """Wait until no task is left, including tasks spawned by tasks (tests await replies this way)."""
        async with asyncio.timeout(within):
            while self._tasks:
                await asyncio.wait(set(self._tasks))

    async def close(self, grace: float = 5.0) -> None:
        """Let running tasks finish for `grace` seconds, then cancel the rest."""
        self._closed = True
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for task in set(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

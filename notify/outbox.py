"""Draining the outbox: queue the notification job of every transition whose job was never queued.

The web process queues each job right after commit; when Redis is unreachable at that moment the transition
still commits (with its outbox row), and this drain, run periodically by every web process, queues the job once
Redis is back. The deterministic job id makes a drain racing the web process's own enqueue harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from arq.connections import ArqRedis
from redis.asyncio import Redis

from echain import metrics
from notify.jobs import NOTIFY_TRANSITION, event_job_id
from workflow import outbox

log = logging.getLogger("echain.notify.outbox")

DRAIN_INTERVAL = 5.0  # seconds between drains in the web process


async def drain(queue: ArqRedis, limit: int = 500) -> int:
    """Queue every pending transition's notification job; returns how many were drained."""
    rows = await outbox.pending(limit)
    for row in rows:
        job = await queue.enqueue_job(NOTIFY_TRANSITION, row.subject, row.version, row.action,
                                      _job_id=event_job_id(row.subject, row.version))
        await metrics.job_queued(queue, job, NOTIFY_TRANSITION)  # None (already queued) is not counted
        await outbox.mark_queued(row.subject, row.version)
    return len(rows)


async def drain_periodically(redis: Redis, interval: float = DRAIN_INTERVAL) -> AsyncIterator[None]:
    """Run `drain` every `interval` seconds while the block is open (an aiohttp cleanup-context body)."""
    queue = ArqRedis(pool_or_conn=redis.connection_pool)
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass
            if stop.is_set():
                return
            try:
                if drained := await drain(queue):
                    log.info("queued %d notification job(s) left over from earlier transitions", drained)
                await outbox.prune()
            except Exception as exc:  # noqa: BLE001 - Redis or the database still down: try again next round
                log.warning("outbox drain failed (%r); retrying in %.0f s", exc, interval)

    task = asyncio.create_task(loop(), name="outbox-drain")
    try:
        yield
    finally:
        stop.set()
        # Let a running drain finish instead of cancelling it mid-query (a cancelled SQLite open keeps its lock).
        await asyncio.wait({task}, timeout=10)
        if not task.done():
            task.cancel()

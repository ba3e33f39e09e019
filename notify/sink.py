"""The web process's side: each committed financing transition becomes one queued job (ids only)."""

from __future__ import annotations

from arq.connections import ArqRedis
from redis.asyncio import Redis

from echain import metrics
from notify.jobs import NOTIFY_TRANSITION, event_job_id
from notify.targets import financing_id
from workflow import outbox
from workflow.events import TransitionEvent


class JobQueueSink:
    """Queues notify_transition for the worker, which works out who to tell from the committed state."""

    def __init__(self, queue: ArqRedis) -> None:
        self.queue = queue

    @classmethod
    def on(cls, redis: Redis) -> JobQueueSink:
        """A sink queueing through an existing client's connection pool (no second pool to open or close)."""
        return cls(ArqRedis(pool_or_conn=redis.connection_pool))

    async def emit(self, event: TransitionEvent) -> None:
        """Queue the fan-out job; the deterministic job id makes a repeated emit a no-op."""
        if financing_id(event.subject) is None:
            return
        job = await self.queue.enqueue_job(NOTIFY_TRANSITION, event.subject, event.version, event.action,
                                           _job_id=event_job_id(event.subject, event.version))
        await metrics.job_queued(self.queue, job, NOTIFY_TRANSITION)
        await outbox.mark_queued(event.subject, event.version)  # queued: nothing left for notify.outbox.drain
